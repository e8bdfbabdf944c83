package wasmhost

import (
	"context"
	"crypto/sha256"
	"time"
)

// Unprotected returns opt with the runaway instrumentation off, for
// benchmarks that measure its cost.
func Unprotected(opt LoadOptions) LoadOptions {
	opt.unprotected = true
	return opt
}

// Live reports the instances of t (idle or in a call).
func (t *Transformer) Live() int { return len(t.slots) }

// Hold takes n instances out of t's pool at once, starting those it needs,
// as n concurrent calls would; the returned func gives them back.
func (t *Transformer) Hold(ctx context.Context, n int) (func(), error) {
	var held []*instance
	put := func() {
		for _, inst := range held {
			t.release(inst)
		}
	}
	for range n {
		inst, err := t.acquire(ctx)
		if err != nil {
			put()
			return nil, err
		}
		held = append(held, inst)
	}
	return put, nil
}

// RewrittenPath is where h keeps the rewritten module of wasm for a
// memory cap of pages 64 KiB pages ("" without a cache directory).
func (h *Host) RewrittenPath(wasm []byte, pages uint32) string {
	if h.dir == "" {
		return ""
	}
	return rewrittenPath(h.dir, modKey{sum: sha256.Sum256(wasm), pages: pages})
}

// CodeFile is why m's machine code is not mapped from a file (nil: it is).
func (m *Module) CodeFile() error { return m.c.codeFile }

// Code is m's machine code (nil: none, the interpreter).
func (m *Module) Code() []byte { code, _ := compiledCode(m.c.cm); return code }

// CompileWorkers is compileWorkers, for its test.
var CompileWorkers = compileWorkers

// SetClock makes kv read the time from now.
func (kv *KV) SetClock(now func() time.Time) { kv.now = now }

// AfterRelease makes f run each time t puts an instance back, once it let
// go of its lock (before it closes an instance it retires).
func (t *Transformer) AfterRelease(f func()) { t.afterRelease = f }

func (m *Module) ReleaseCode() { m.host.releaseCode(m.c) }
