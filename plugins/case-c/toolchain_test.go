package casec

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestToolchainCheck runs build.sh --check against stand-ins of clang and
// wasm-ld (the machines that run the suite need not have the real ones):
// clang and wasi-libc without the wasm32 compiler runtime is the case that
// used to break `make plugins` with a link error; the check names the
// missing package instead.
func TestToolchainCheck(t *testing.T) {
	bin, sysroot, rtdir := t.TempDir(), t.TempDir(), t.TempDir()
	rt := filepath.Join(rtdir, "libclang_rt.builtins-wasm32.a")
	// The stand-in clang answers the queries build.sh makes, and "links"
	// by writing its -o file only when the runtime exists.
	clang := `#!/bin/sh
case "$*" in
*-dumpversion*) echo 14.0.6; exit 0 ;;
*-print-libgcc-file-name*) echo "` + rt + `"; exit 0 ;;
esac
[ -f "` + rt + `" ] || { echo "wasm-ld: error: undefined symbol: __multi3" >&2; exit 1; }
while [ $# -gt 0 ]; do [ "$1" = -o ] && { : > "$2"; exit 0; }; shift; done
exit 1
`
	write := func(p, s string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(bin, "clang"), clang, 0o755)
	write(filepath.Join(bin, "wasm-ld"), "#!/bin/sh\nexit 0\n", 0o755)
	// PATH holds only the stand-ins and the utilities build.sh uses, so a
	// real clang on the machine does not interfere.
	for _, tool := range []string{"cut", "mktemp", "rm", "cat", "dirname"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("%s not found", tool)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	check := func() (string, int) {
		cmd := exec.Command("sh", "build.sh", "--check")
		cmd.Env = append(os.Environ(), "PATH="+bin, "WASI_SYSROOT="+sysroot)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}

	out, code := check()
	if code != 3 || !strings.Contains(out, "apt-get install wasi-libc libclang-rt-14-dev-wasm32") {
		t.Fatalf("no wasi-libc, no runtime: exit %d, %q", code, out)
	}
	write(filepath.Join(sysroot, "lib", "wasm32-wasi", "crt1-reactor.o"), "", 0o644)
	out, code = check()
	if code != 3 || !strings.Contains(out, "apt-get install libclang-rt-14-dev-wasm32 (the compiler runtime would be "+rt+")") {
		t.Fatalf("clang and wasi-libc without the compiler runtime: exit %d, %q", code, out)
	}
	write(rt, "", 0o644)
	if out, code = check(); code != 0 || out != "" {
		t.Fatalf("complete toolchain: exit %d, %q", code, out)
	}
	os.Remove(filepath.Join(bin, "clang"))
	if out, code = check(); code != 3 || !strings.Contains(out, "clang is not installed") {
		t.Fatalf("no clang: exit %d, %q", code, out)
	}
}
