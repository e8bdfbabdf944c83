package wasmtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
)

// CacheDir is the wazero compilation cache every test binary of the
// repository shares, so a Go guest is compiled once per machine rather
// than once per package. wazero keys entries by its own version and the
// module's hash, so one directory serves every version.
func CacheDir() string { return filepath.Join(os.TempDir(), "sluice-test-wazero-cache") }

var (
	guestMu   sync.Mutex
	guestOnce = map[string]*guestBuild{}
)

type guestBuild struct {
	once sync.Once
	wasm []byte
	path string
	err  error
}

// GuestsDir is the folder of the test guests' Go module.
func GuestsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "guests")
}

// SDKDir is the folder of the Go SDK module.
func SDKDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "sdk")
}

// GoGuest builds the Go guest testdata/guests/<name> with
// GOOS=wasip1 GOARCH=wasm -buildmode=c-shared and returns its bytes and
// path. It builds at most once per test binary, and keeps the result under
// os.TempDir() keyed by the hash of the Go version and every source file it
// depends on, so other test binaries reuse it.
func GoGuest(t testing.TB, name string) ([]byte, string) {
	t.Helper()
	guestMu.Lock()
	b := guestOnce[name]
	if b == nil {
		b = &guestBuild{}
		guestOnce[name] = b
	}
	guestMu.Unlock()
	b.once.Do(func() { b.wasm, b.path, b.err = buildGuest(name) })
	if b.err != nil {
		t.Fatalf("build Go guest %s: %v", name, b.err)
	}
	return b.wasm, b.path
}

func buildGuest(name string) ([]byte, string, error) {
	dir := GuestsDir()
	return BuildCached(dir, name, []string{"-buildmode=c-shared", "-trimpath"},
		[]string{filepath.Join(dir, name), SDKDir()}, []string{filepath.Join(dir, "go.mod")})
}

// BuildCached builds the Go package ./pkg of the module in moduleDir to
// WASM (GOOS=wasip1 GOARCH=wasm) with flags, once per content: the module
// is kept under os.TempDir(), keyed by the Go version, the flags and a hash
// of the sources in roots (folders) and files, so every test binary and
// every run after the first reuse it. It returns the bytes and the path.
func BuildCached(moduleDir, pkg string, flags, roots, files []string) ([]byte, string, error) {
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), pkg, flags)
	for _, root := range roots {
		if err := hashTree(h, root); err != nil {
			return nil, "", err
		}
	}
	for _, f := range files {
		if err := hashFile(h, f); err != nil {
			return nil, "", err
		}
	}
	outDir := filepath.Join(os.TempDir(), "sluice-test-guests")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, "", err
	}
	base := filepath.Base(pkg)
	out := filepath.Join(outDir, base+"-"+hex.EncodeToString(h.Sum(nil))[:16]+".wasm")
	if wasm, err := os.ReadFile(out); err == nil {
		return wasm, out, nil
	}
	tmp, err := os.CreateTemp(outDir, base+".*.tmp")
	if err != nil {
		return nil, "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	// go test puts its own GOROOT/bin first on the PATH of the test
	// binary, so "go" is the toolchain that built the host.
	args := append(append([]string{"build"}, flags...), "-o", tmp.Name(), "./"+pkg)
	cmd := exec.Command("go", args...)
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	if outp, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("%v\n%s", err, outp)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, "", err
	}
	wasm, err := os.ReadFile(out)
	return wasm, out, err
}

func hashTree(h io.Writer, root string) error {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".go") || d.Name() == "go.mod") && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		fmt.Fprintln(h, rel)
		if err := hashFile(h, f); err != nil {
			return err
		}
	}
	return nil
}

func hashFile(h io.Writer, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = h.Write(b)
	return err
}
