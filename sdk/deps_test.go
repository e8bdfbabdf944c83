package sdk_test

import (
	"os/exec"
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
