package plugintest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
)

// TestPluginsStayLean keeps fmt, encoding/json and reflect out of every
// first-party Go plugin's WASM build: each is a large part of a Go
// module's WebAssembly, and the host's compiled code, memory and start
// time grow with it (docs/edge.md, "What a Go plugin links"). Errors are
// built with strconv and concatenation, configs declared with sdk.Param's
// Into.
func TestPluginsStayLean(t *testing.T) {
	mains, err := filepath.Glob(filepath.Join(plugintest.ModuleDir(), "*", "main.go"))
	if err != nil || len(mains) < 5 {
		t.Fatalf("found %d plugins (%v)", len(mains), err)
	}
	args := []string{"list", "-deps", "-f", "{{.ImportPath}}"}
	for _, m := range mains {
		args = append(args, "./"+filepath.Base(filepath.Dir(m)))
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = plugintest.ModuleDir()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, h := range []string{"fmt", "encoding/json", "reflect"} {
		if slices.Contains(deps, h) {
			who := exec.Command("go", append([]string{"list", "-deps", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}"}, args[4:]...)...)
			who.Dir, who.Env = cmd.Dir, cmd.Env
			wout, _ := who.CombinedOutput()
			var importers []string
			for _, l := range strings.Split(string(wout), "\n") {
				if path, imports, ok := strings.Cut(l, ": "); ok && slices.Contains(strings.Fields(imports), h) {
					importers = append(importers, path)
				}
			}
			t.Errorf("a first-party plugin's WASM build links %s (imported by %s)", h, strings.Join(importers, ", "))
		}
	}
}
