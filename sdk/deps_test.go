package sdk_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestStandardLibraryOnly keeps the SDK free of dependencies: a plugin
// must build offline with only Go installed.
func TestStandardLibraryOnly(t *testing.T) {
	for _, goos := range []string{"", "wasip1"} {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./...")
		if goos != "" {
			cmd.Env = append(cmd.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		for _, p := range strings.Fields(string(out)) {
			if p != "github.com/sluicehq/sluice/sdk" && !strings.HasPrefix(p, "github.com/sluicehq/sluice/sdk/") {
				t.Errorf("GOOS=%s: the SDK depends on %s; it may import only the standard library", goos, p)
			}
		}
	}
}

// heavy are the standard packages that make up half of a Go plugin's
// WebAssembly (docs/edge.md, "What a Go plugin links"): the host's
// compiled code, memory and start time grow with them.
var heavy = []string{"fmt", "encoding/json", "reflect"}

// TestLeanDefaultPath keeps fmt, encoding/json and reflect out of what a
// plugin links through the SDK: the core package and jsonfield import none
// of them in a WASM build, and sdk/structconfig, the opt-in decoding by
// struct tags, imports only reflect.
func TestLeanDefaultPath(t *testing.T) {
	for pkg, allowed := range map[string]string{".": "", "./jsonfield": "", "./structconfig": "reflect"} {
		cmd := exec.Command("go", "list", "-deps", pkg)
		cmd.Env = append(cmd.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		deps := strings.Fields(string(out))
		for _, h := range heavy {
			if h != allowed && slices.Contains(deps, h) {
				t.Errorf("package %s depends on %s in a WASM build (go list -deps); the SDK keeps it out of plugins, see docs/edge.md", pkg, h)
			}
		}
	}
}
