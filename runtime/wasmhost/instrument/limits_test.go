package instrument_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluicehq/sluice/runtime/wasmhost/instrument"
)

// withSection is a module of one section: id, then body as is.
func withSection(t *testing.T, id byte, body []byte) []byte {
	t.Helper()
	if len(body) > 127 {
		t.Fatal("a one-byte size only")
	}
	return append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0, id, byte(len(body))}, body...)
}

// Modules of a few bytes that declare more than they hold are refused
// with what is wrong, before a decoder allocates what they declare: the
// first one, found by FuzzInstrument, made wazero ask for 52 GB and took
// the process down.
func TestDeclaredSizesBeyondTheModule(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"data count", withSection(t, 11, []byte("\xdb\xdb\xdb\xdb\x03\xe8\xdb\xdb0\x000")), "data section: declares 997649883 entries in 6 bytes"},
		{"data bytes", withSection(t, 11, []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f, 'x'}), "data section: unexpected end of data"},
		{"tag count", withSection(t, 13, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}), "tag section: declares 4294967295 entries in 0 bytes"},
		{"function names", withSection(t, 0, append([]byte("\x04name"), 1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f)), `custom section "name": subsection 1: declares 4294967295 entries in 0 bytes`},
		{"local names", withSection(t, 0, append([]byte("\x04name"), 2, 7, 1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f)), `custom section "name": subsection 2: declares 4294967295 entries in 0 bytes`},
		{"table size", withSection(t, 4, []byte{1, 0x70, 0, 0x80, 0x80, 0x80, 0x40}), "table section: table 0 starts with 134217728 elements (at most 1048576)"},
		{"shared table", withSection(t, 4, []byte{1, 0x70, 3, 1, 1}), "unsupported flags 0x03"},
		// A typed reference (ref null ht) takes two bytes: read as one, what
		// follows was a result count of four billion to wazero, which asked
		// for 33 GB (found by FuzzInstrument).
		{"typed reference param", withSection(t, 1, []byte("\x01`\x01c\x00\xc8\xc8\xc8\xc8\x0f0000000000000")), "type section: unsupported value type 0x63"},
		{"type section tail", withSection(t, 1, []byte{1, 0x60, 0, 1, 0x7f, 0xc8, 0x0f}), "type section: 2 bytes after the last of 1 types"},
		{"typed reference local", append(append(withSection(t, 1, []byte{1, 0x60, 0, 0}), 3, 2, 1, 0),
			10, 7, 1, 5, 1, 1, 0x63, 0x00, 0x0b), "function 0: local of unsupported value type 0x63"},
		// The rewrite adds a countdown local, a fuel global and functions
		// after the module's own: code naming them, invalid as written,
		// became valid rewritten, and a loop could reset its own countdown
		// (found in review).
		{"local past the function's", append(append(withSection(t, 1, []byte{1, 0x60, 0, 0}), 3, 2, 1, 0),
			10, 8, 1, 6, 0, 0x41, 1, 0x21, 0, 0x0b), "function 0, byte 3 of its body: local 0 does not exist (the function has 0)"},
		{"global past the module's", append(append(withSection(t, 1, []byte{1, 0x60, 0, 0}), 3, 2, 1, 0),
			10, 8, 1, 6, 0, 0x41, 1, 0x24, 0, 0x0b), "global 0 does not exist (the module has 0)"},
		{"function past the module's", append(append(withSection(t, 1, []byte{1, 0x60, 0, 0}), 3, 2, 1, 0),
			10, 6, 1, 4, 0, 0x10, 1, 0x0b), "function 1 does not exist (the module has 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := instrument.Instrument(tc.in, instrument.Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// A table's maximum is capped at MaxTableSize (table.grow stops there),
// as the memory's is at its limit; a declared maximum below stays.
func TestTableMaximumCapped(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		section []byte
		wantMax uint32
	}{
		{"no maximum", []byte{1, 0x70, 0, 4}, instrument.MaxTableSize},
		{"larger maximum", []byte{1, 0x70, 1, 4, 0x80, 0x80, 0x80, 0x40}, instrument.MaxTableSize},
		{"smaller maximum", []byte{1, 0x70, 1, 4, 16}, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := instrument.Instrument(withSection(t, 4, tc.section), instrument.Options{})
			if err != nil {
				t.Fatal(err)
			}
			rt := wazero.NewRuntime(ctx)
			defer rt.Close(ctx)
			cm, err := rt.CompileModule(ctx, res.Module)
			if err != nil {
				t.Fatalf("the instrumented module does not compile: %v", err)
			}
			_ = cm
			if got := tableMax(t, res.Module); got != tc.wantMax {
				t.Errorf("table maximum %d, want %d", got, tc.wantMax)
			}
		})
	}
}

// tableMax reads the first table's maximum from a module's table section.
func tableMax(t *testing.T, mod []byte) uint32 {
	t.Helper()
	i := 8
	for i < len(mod) {
		id := mod[i]
		size, n := uleb(mod[i+1:])
		body := mod[i+1+n : i+1+n+int(size)]
		if id == 4 {
			j := 3 // count 1, reference type, flags
			if body[2] != 1 {
				t.Fatalf("table without a maximum: % x", body)
			}
			_, k := uleb(body[j:])
			max, _ := uleb(body[j+k:])
			return max
		}
		i += 1 + n + int(size)
	}
	t.Fatal("no table section")
	return 0
}

func uleb(b []byte) (uint32, int) {
	var v uint32
	for i, c := range b {
		v |= uint32(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, i + 1
		}
	}
	return v, len(b)
}
