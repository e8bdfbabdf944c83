package wasmhost_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// ReadModule returns a regular file's bytes exactly, whatever its size
// relative to the buffer it sizes from the file (empty, small, a few MiB).
func TestReadModuleExact(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []int{0, 1, 4095, 4096, 3<<20 + 17} {
		want := bytes.Repeat([]byte{0, 'a', 's', 'm', 7}, n/5+1)[:n]
		path := filepath.Join(dir, "m.wasm")
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := wasmhost.ReadModule(path)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: read %d bytes that differ from the file", n, len(got))
		}
	}
}
