package makefile

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const root = "../../.."

// TestPluginsRebuildOnlyWhatChanged reads make's database for `make
// plugins`: each Go plugin's module depends on its own sources and on the
// code every plugin shares (the SDK, plugins/internal, the go.mod files),
// and on nothing of another plugin, so `make run` and `make plugins`
// rebuild a plugin only when something it is built from changed.
func TestPluginsRebuildOnlyWhatChanged(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	cmd := exec.Command("make", "-pnq", "plugins")
	cmd.Dir = root
	out, _ := cmd.Output() // -q exits 1 when something is out of date
	rules := map[string][]string{}
	for _, l := range strings.Split(string(out), "\n") {
		target, deps, ok := strings.Cut(l, ": ")
		if ok && strings.HasPrefix(target, "plugins/") && strings.HasSuffix(target, ".wasm") {
			deps, _, _ = strings.Cut(deps, "|") // order-only prerequisites
			rules[target] = strings.Fields(deps)
		}
	}
	var shared []string
	for _, dir := range []string{"sdk", "plugins/internal"} {
		filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go") {
				rel, _ := filepath.Rel(root, p)
				shared = append(shared, filepath.ToSlash(rel))
			}
			return nil
		})
	}
	shared = append(shared, "sdk/go.mod", "plugins/go.mod", "plugins/go.sum")
	mains, _ := filepath.Glob(filepath.Join(root, "plugins", "*", "main.go"))
	if len(mains) < 3 {
		t.Fatalf("found only %v", mains)
	}
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(m))
		target := "plugins/" + name + "/" + name + ".wasm"
		deps, ok := rules[target]
		if !ok {
			t.Errorf("make plugins has no rule for %s", target)
			continue
		}
		own, _ := filepath.Glob(filepath.Join(root, "plugins", name, "*.go"))
		var want []string
		for _, f := range own {
			if !strings.HasSuffix(f, "_test.go") {
				rel, _ := filepath.Rel(root, f)
				want = append(want, filepath.ToSlash(rel))
			}
		}
		for _, w := range append(want, shared...) {
			if !slices.Contains(deps, w) {
				t.Errorf("%s does not depend on %s: a change there would not rebuild it", target, w)
			}
		}
		for _, d := range deps {
			if strings.HasPrefix(d, "plugins/") && !strings.HasPrefix(d, "plugins/"+name+"/") && !strings.HasPrefix(d, "plugins/internal/") && !strings.HasPrefix(d, "plugins/go.") {
				t.Errorf("%s depends on %s: a change to another plugin would rebuild it", target, d)
			}
			if strings.HasSuffix(d, "_test.go") {
				t.Errorf("%s depends on the test file %s", target, d)
			}
		}
	}
}
