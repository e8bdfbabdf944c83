package wasmhost

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/runtime/statedir"
	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
)

// rewriteVersion names the instrumenter's output format: bump it whenever
// the rewrite changes, so that stale rewritten modules are not reused.
const rewriteVersion = "rw6"

// rewrite instruments wasm for the memory cap in key. With a cache
// directory the result is kept on disk next to wazero's compiled code, so
// a restart skips the rewrite as it skips the compilation, and need not
// read the original module at all. A rewritten module read from the cache
// may be mapped from its file (mapped, released by the caller with
// unmapFile once nothing points into it).
func (h *Host) rewrite(key modKey, wasm func() ([]byte, error)) (res instrument.Result, mapped []byte, err error) {
	path := ""
	if h.dir != "" {
		path = rewrittenPath(h.dir, key)
		// What the cache holds is checked as the rewrite checks its input
		// (rw4 entries may hold what the rewrite now refuses, and a file
		// may be damaged); a bad entry is rewritten again.
		if res, mapped, ok := readRewritten(path); ok {
			if instrument.Check(res.Module) == nil {
				touch(path) // in use (pruneCache)
				return res, mapped, nil
			}
			if mapped != nil {
				unmapFile(mapped)
			}
		}
	}
	b, err := wasm()
	if err != nil {
		return res, nil, err
	}
	res, err = instrument.Instrument(b, instrumentOptions(key.pages))
	if err != nil || path == "" {
		return res, nil, err
	}
	writeRewritten(path, res) // a cache: failing to write only costs time
	return res, nil, nil
}

func rewrittenPath(dir string, key modKey) string {
	return filepath.Join(dir, "sluice-"+rewriteVersion, fmt.Sprintf("%s-%d.wasm", hex.EncodeToString(key.sum[:]), key.pages))
}

// The cached file: "SLRW", then u32 Funcs, Checked, Loops, MemoryMin,
// MemoryMax, HasMemory (0/1), Bulk, then the module.
const rewriteHeader = 4 + 7*4

func readRewritten(path string) (res instrument.Result, mapped []byte, ok bool) {
	b, mapped, err := mapFile(path)
	if err != nil {
		return res, nil, false
	}
	if len(b) < rewriteHeader+8 || string(b[:4]) != "SLRW" || string(b[rewriteHeader:rewriteHeader+4]) != "\x00asm" {
		if mapped != nil {
			unmapFile(mapped)
		}
		return res, nil, false
	}
	u := func(i int) uint32 { return binary.LittleEndian.Uint32(b[4+4*i:]) }
	return instrument.Result{Funcs: int(u(0)), Checked: int(u(1)), Loops: int(u(2)), MemoryMin: u(3), MemoryMax: u(4),
		HasMemory: u(5) == 1, Bulk: int(u(6)), Module: b[rewriteHeader:]}, mapped, true
}

func writeRewritten(path string, res instrument.Result) {
	if err := os.MkdirAll(filepath.Dir(path), statedir.DirMode); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return
	}
	defer os.Remove(f.Name())
	hdr := make([]byte, rewriteHeader)
	copy(hdr, "SLRW")
	has := uint32(0)
	if res.HasMemory {
		has = 1
	}
	for i, v := range []uint32{uint32(res.Funcs), uint32(res.Checked), uint32(res.Loops), res.MemoryMin, res.MemoryMax, has, uint32(res.Bulk)} {
		binary.LittleEndian.PutUint32(hdr[4+4*i:], v)
	}
	_, err1 := f.Write(hdr)
	_, err2 := f.Write(res.Module)
	if err := f.Close(); err != nil || err1 != nil || err2 != nil {
		return
	}
	os.Rename(f.Name(), path)
}

// instrumentOptions is how the host rewrites every module. WASI functions
// run in Go, where the budget cannot be checked, and some cost what their
// arguments say (random_get and fd_write of the whole memory, poll_oneoff
// of a million subscriptions): a check follows each of their calls, so
// that their time counts. The functions of the sluice module check the
// budget themselves (checkHost).
func instrumentOptions(pages uint32) instrument.Options {
	return instrument.Options{MaxMemoryPages: pages, CheckAfter: func(module, _ string) bool {
		return module == "wasi_snapshot_preview1"
	}}
}
