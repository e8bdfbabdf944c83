package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// The CLIs these tests run (here and in e2e_test.go) compile WASM modules
// into the compilation cache every test binary of the repository shares,
// not into each test's state directory.
func init() { os.Setenv(wasmhost.CacheEnv, wasmtest.CacheDir()) }

// TestEmbeddedSDKIsCurrent checks that the SDK `sluice plugin new` writes
// is the one in sdk/.
func TestEmbeddedSDKIsCurrent(t *testing.T) {
	got, err := sdkFiles()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join("..", "..", "sdk")
	want := map[string][]byte{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && ((strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")) || d.Name() == "go.mod") {
			rel, _ := filepath.Rel(root, p)
			want[filepath.ToSlash(rel)], _ = os.ReadFile(p)
		}
		return nil
	})
	stale := len(got) != len(want)
	for name, b := range want {
		stale = stale || !bytes.Equal(got[name], b)
	}
	if stale || len(want) == 0 {
		t.Fatalf("cmd/sluice/plugin_sdk.tgz is stale (%d files, sdk/ has %d): run 'go generate ./cmd/sluice' and commit it", len(got), len(want))
	}
}

// sluiceIn runs the built CLI in dir with extra environment.
func sluiceIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(append(os.Environ(), "SLUICE_STATE_DIR="+t.TempDir()), env...)
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

// offline is the environment of a machine with only Go and no network:
// the module proxy is off, so a scaffold must carry everything it needs.
var offline = []string{"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off"}

// TestE2EPluginWalkthrough follows docs/plugins.md from a folder outside
// the repository, offline: scaffold, native test, build, inspect, and run
// the plugin in a task.
func TestE2EPluginWalkthrough(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go plugin to WASM")
	}
	work := t.TempDir()
	if r := sluiceIn(t, work, offline, "plugin", "new", "shout"); r.code != 0 || !strings.Contains(r.stdout, "created plugin shout in shout") {
		t.Fatalf("plugin new: %+v", r)
	}
	dir := filepath.Join(work, "shout")
	for _, f := range []string{"go.mod", "main.go", "main_test.go", "task.toml", "events.jsonl", "README.md", "sluice-sdk/go.mod", "sluice-sdk/sdktest/sdktest.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("scaffold lacks %s", f)
		}
	}
	gotest := exec.Command("go", "test", "./...")
	gotest.Dir = dir
	gotest.Env = append(os.Environ(), offline...)
	if out, err := gotest.CombinedOutput(); err != nil {
		t.Fatalf("go test in the scaffold: %v\n%s", err, out)
	}
	r := sluiceIn(t, dir, offline, "plugin", "build", ".")
	if r.code != 0 || !strings.Contains(r.stdout, "shout.wasm") || !strings.Contains(r.stdout, "shout 0.1.0, 1 parameter(s)") {
		t.Fatalf("plugin build: %+v", r)
	}
	// The build prints the same build as a command to paste in a shell; it
	// makes the same bytes (the build is reproducible).
	_, shell, ok := strings.Cut(r.stdout, "the same by hand: ")
	if !ok {
		t.Fatalf("plugin build printed no command:\n%s", r.stdout)
	}
	built := readFile(t, filepath.Join(dir, "shout.wasm"))
	os.Remove(filepath.Join(dir, "shout.wasm"))
	sh := exec.Command("sh", "-c", strings.TrimSpace(shell))
	sh.Env = append(os.Environ(), offline...)
	if out, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the printed command %s: %v\n%s", shell, err, out)
	}
	if readFile(t, filepath.Join(dir, "shout.wasm")) != built {
		t.Fatalf("the printed command %s built other bytes", shell)
	}
	r = sluiceIn(t, dir, nil, "plugin", "inspect", "shout.wasm")
	for _, want := range []string{"ABI version  1", "name         shout 0.1.0", "field        string, default \"name\"", "wasi_snapshot_preview1.fd_write", "sluice_process"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("inspect output lacks %q:\n%s", want, r.stdout)
		}
	}
	r = sluiceIn(t, dir, nil, "test", "task.toml", "--input", "events.jsonl")
	if r.code != 0 || !strings.Contains(r.stdout, `"name":"ADA LOVELACE"`) || !strings.Contains(r.stdout, `"name":"GRACE HOPPER"`) ||
		!strings.Contains(r.stdout, `"name":"ÉMILE \"THE ACE\" ZOLA"`) {
		t.Fatalf("sluice test: %+v", r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("the scaffold's plugin wrote invalid JSON: %s", l)
		}
	}
	r = sluiceIn(t, dir, nil, "validate", "task.toml")
	if r.code != 0 {
		t.Fatalf("validate: %+v", r)
	}
	// A config key the plugin does not declare is caught offline.
	bad := strings.Replace(readFile(t, filepath.Join(dir, "task.toml")), "field = ", "feild = ", 1)
	os.WriteFile(filepath.Join(dir, "bad.toml"), []byte(bad), 0o644)
	if r := sluiceIn(t, dir, nil, "validate", "bad.toml"); r.code == 0 || !strings.Contains(r.stderr, `has no parameter "feild" (did you mean "field"?)`) {
		t.Errorf("validate bad.toml: %+v", r)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestE2EPluginInRepository: a scaffold inside a checkout uses its sdk/.
func TestE2EPluginInRepository(t *testing.T) {
	dir, err := os.MkdirTemp(filepath.Join("..", ".."), ".plugin-new-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if r := sluiceIn(t, dir, nil, "plugin", "new", "x", "--module", "example.com/x"); r.code != 0 {
		t.Fatalf("%+v", r)
	}
	gomod := readFile(t, filepath.Join(dir, "x", "go.mod"))
	if !strings.Contains(gomod, "module example.com/x\n") || !strings.Contains(gomod, "=> ../../sdk\n") {
		t.Errorf("go.mod:\n%s", gomod)
	}
	if _, err := os.Stat(filepath.Join(dir, "x", "sluice-sdk")); err == nil {
		t.Error("the SDK was copied inside the repository")
	}
}

func TestE2EPluginErrors(t *testing.T) {
	work := t.TempDir()
	os.WriteFile(filepath.Join(work, "text.wasm"), []byte("hello"), 0o644)
	os.MkdirAll(filepath.Join(work, "full"), 0o755)
	os.WriteFile(filepath.Join(work, "full", "x"), nil, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"plugin"}, exitUsage, "Usage: sluice plugin new NAME"},
		{[]string{"plugin", "make"}, exitUsage, `unknown subcommand "make"`},
		{[]string{"plugin", "new", "Bad_Name"}, exitUsage, "use lower-case letters, digits and dashes"},
		{[]string{"plugin", "new", "x", "--dir", "full"}, exitFailed, "full exists and is not empty"},
		{[]string{"plugin", "build", "nowhere"}, exitFailed, "nowhere is not a folder with a Go plugin"},
		{[]string{"plugin", "inspect", "text.wasm"}, exitFailed, "text.wasm: not a WebAssembly module"},
		{[]string{"plugin", "inspect", "missing.wasm"}, exitFailed, "no such file"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := sluiceIn(t, work, nil, tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
}

// buildPlugins builds first-party plugins with `sluice plugin build`, as
// `make plugins` does, for tests of tasks that use them (the quickstart).
func buildPlugins(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		// -mod=mod: the plugins module follows the root go.mod by a
		// replace, and may lag behind a dependency bump.
		r := sluiceIn(t, ".", []string{"GOFLAGS=-mod=mod"}, "plugin", "build", filepath.Join("..", "..", "plugins", n))
		if r.code != 0 {
			t.Fatalf("sluice plugin build plugins/%s: %+v", n, r)
		}
	}
}

// TestE2EPluginInspectFirstParty inspects the committed C plugin.
func TestE2EPluginInspectFirstParty(t *testing.T) {
	r := sluiceIn(t, ".", nil, "plugin", "inspect", "--json", filepath.Join("..", "..", "plugins", "case-c", "case-c.wasm"))
	if r.code != 0 || !strings.Contains(r.stdout, `"name": "case-c"`) || !strings.Contains(r.stdout, `"abi_version": 1`) ||
		!strings.Contains(r.stdout, "\"memories\": [\n    \"memory\"\n  ]") {
		t.Fatalf("%+v", r)
	}
	// The text form lists the memory export, and each import once.
	for _, wasm := range []string{filepath.Join("..", "..", "plugins", "case-c", "case-c.wasm"), goGuest(t)} {
		r = sluiceIn(t, ".", nil, "plugin", "inspect", wasm)
		if r.code != 0 || !strings.Contains(r.stdout, "\n  memory (memory)\n") {
			t.Fatalf("%s: %+v", wasm, r)
		}
		seen := map[string]bool{}
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "  wasi_snapshot_preview1.") || strings.HasPrefix(l, "  sluice.") {
				if seen[l] {
					t.Errorf("%s: import listed twice: %s", wasm, l)
				}
				seen[l] = true
			}
		}
		if len(seen) == 0 && strings.HasSuffix(wasm, "upper.wasm") { // the C module imports nothing
			t.Errorf("%s: no imports listed:\n%s", wasm, r.stdout)
		}
	}
}

// goGuest writes a Go guest (which imports fd_write twice) for inspection.
func goGuest(t *testing.T) string {
	wasm, _ := wasmtest.GoGuest(t, "upper")
	p := filepath.Join(t.TempDir(), "upper.wasm")
	if err := os.WriteFile(p, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
