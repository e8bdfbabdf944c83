package abi

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func testMsgs() []message.Message {
	ev := []byte(`{"id":"1"}`)
	return []message.Message{
		{Payload: ev, Event: ev, Key: []byte("k"), Pos: message.Position{Stream: "orders", Partition: 2, Offset: 7},
			Time: time.Unix(0, 123), Headers: []message.Header{{Key: "a", Value: []byte("b")}}},
		{Payload: []byte("out"), Event: ev, Pos: message.Position{Stream: "orders", Partition: 2, Offset: 8}},
	}
}

func TestEncodeLayout(t *testing.T) {
	in := testMsgs()
	buf := make([]byte, EncodedSize(in))
	n := Encode(buf, in)
	if n > len(buf) {
		t.Fatalf("wrote %d of %d", n, len(buf))
	}
	u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(buf[off:]) }
	str := func(offAt int) string { o, l := u32(offAt), u32(offAt+4); return string(buf[o : o+l]) }
	if u32(0) != 1 || u32(4) != 2 || int(u32(8)) != n || u32(12) != CursorNone {
		t.Fatalf("header %x", buf[:16])
	}
	r0, r1 := BatchHeaderSize, BatchHeaderSize+RecordSize
	if str(r0+RecPayloadOff) != `{"id":"1"}` || str(r0+RecEventOff) != `{"id":"1"}` || u32(r0+RecPayloadOff) != u32(r0+RecEventOff) {
		t.Error("record 0 payload/event")
	}
	if str(r0+RecKeyOff) != "k" || str(r0+RecStreamOff) != "orders" || u32(r0+RecPartition) != 2 ||
		binary.LittleEndian.Uint64(buf[r0+RecOffset:]) != 7 || binary.LittleEndian.Uint64(buf[r0+RecTime:]) != 123 {
		t.Error("record 0 metadata")
	}
	if f := u32(r0 + RecFlags); f != FlagHasKey|FlagHasTime|FlagPayloadIsE {
		t.Errorf("record 0 flags %b", f)
	}
	h := int(u32(r0 + RecHeadersOff))
	if h%4 != 0 || u32(r0+RecHeadersN) != 1 || str(h) != "a" || str(h+8) != "b" {
		t.Error("record 0 headers")
	}
	if str(r1+RecPayloadOff) != "out" || str(r1+RecEventOff) != `{"id":"1"}` || u32(r1+RecFlags) != 0 {
		t.Error("record 1")
	}
	if u32(r1+RecStreamOff) != u32(r0+RecStreamOff) {
		t.Error("stream not shared")
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	in := testMsgs()
	buf := make([]byte, EncodedSize(in))
	if n := testing.AllocsPerRun(100, func() { Encode(buf, in) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

// result builds guest memory holding a result for n records.
type result struct{ mem []byte }

func (r *result) put32(off int, v uint32) { binary.LittleEndian.PutUint32(r.mem[off:], v) }

// at is where testResult puts the result.
const at = 100

// testResult is a valid result for testMsgs at address at: record 0
// emits one output with a new key, record 1 fails with a message.
func testResult() *result {
	r := &result{mem: make([]byte, 1024)}
	r.put32(at, 1)
	r.put32(at+4, 2)
	r.put32(at+8, 400) // outputs
	r.put32(at+12, 1)
	r.put32(at+16, OutcomeEmit)
	r.put32(at+20, 0)
	r.put32(at+24, 1)
	r.put32(at+32, OutcomeFail)
	r.put32(at+36, 5)
	r.put32(at+40, 600)
	r.put32(at+44, 4)
	copy(r.mem[600:], "oops")
	copy(r.mem[500:], "newkey")
	copy(r.mem[520:], "NEW")
	r.put32(400, 520)
	r.put32(404, 3)
	r.put32(408, 500)
	r.put32(412, 6)
	r.put32(424, OutSetKey)
	return r
}

func TestDecode(t *testing.T) {
	in := testMsgs()
	r := testResult()
	out := &component.Output{}
	if err := Decode(r.mem, at<<32|48, in, out, Limits{}); err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 1 || string(out.Messages[0].Payload) != "NEW" || string(out.Messages[0].Key) != "newkey" ||
		len(out.Messages[0].Headers) != 1 {
		t.Errorf("outputs %+v", out.Messages)
	}
	var re *RecordError
	if len(out.Failures) != 1 || !errors.As(out.Failures[0].Err, &re) || re.Code != 5 || re.Msg != "oops" ||
		component.ClassOf(out.Failures[0].Err) != component.ClassEventPermanent {
		t.Errorf("failures %+v", out.Failures)
	}
	// The output cap rolls everything back.
	out.Reset()
	if err := Decode(r.mem, at<<32|48, in, out, Limits{MaxOutput: 5}); !errors.Is(err, ErrOutputTooLarge) || len(out.Messages)+len(out.Failures)+len(out.Buf) != 0 {
		t.Errorf("cap: %v, %d outputs", err, len(out.Messages))
	}
	for name, mutate := range map[string]func(){
		"version": func() { r.put32(at, 2) },
		"count":   func() { r.put32(at+4, 3) },
		"kind":    func() { r.put32(at+16, 9) },
		"range":   func() { r.put32(at+24, 5) },
		"outside": func() { r.put32(400, 5000) },
		"message": func() { r.put32(at+44, 5000) },
	} {
		t.Run(name, func(t *testing.T) {
			saved := append([]byte(nil), r.mem...)
			defer copy(r.mem, saved)
			mutate()
			out.Reset()
			var re *ResultError
			if err := Decode(r.mem, at<<32|48, in, out, Limits{}); !errors.As(err, &re) || !strings.Contains(err.Error(), "broke the ABI") {
				t.Errorf("err = %v", err)
			}
		})
	}
}

// FuzzDecode feeds arbitrary guest memory to the result decoder: it must
// never panic nor read outside memory.
func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, 256), uint64(16)<<32|48)
	// A valid result: what the decoder walks past its header checks.
	f.Add(testResult().mem, uint64(at)<<32|48)
	f.Fuzz(func(t *testing.T, mem []byte, packed uint64) {
		in := testMsgs()
		out := &component.Output{}
		Decode(mem, packed, in, out, Limits{MaxOutput: 1 << 16})
		if n := Cursor(mem, 2); n < -1 || n > 1 {
			t.Fatalf("cursor %d", n)
		}
	})
}

// A FAIL or RETRY message is kept up to MaxMessage bytes, cut without
// splitting a character, and made valid UTF-8: the reason ends up in
// dead-letter records, which are UTF-8. The reason names the module.
func TestDecodeFailMessage(t *testing.T) {
	euro := "\u20ac" // 3 bytes
	cases := []struct{ name, msg, want string }{
		{"fits", "oops", "oops"},
		{"cut inside a character", strings.Repeat("a", MaxMessage-1) + euro, strings.Repeat("a", MaxMessage-1)},
		{"cut after a character", strings.Repeat("a", MaxMessage-3) + euro + "b", strings.Repeat("a", MaxMessage-3) + euro},
		{"invalid bytes", "a\xffb\xc3", "a\uFFFDb\uFFFD"},
		{"repair past the cap", strings.Repeat("\xffa", MaxMessage/2), strings.Repeat("\uFFFDa", MaxMessage/4)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := testMsgs()[:1]
			mem := make([]byte, 64+2*MaxMessage)
			r := &result{mem: mem}
			r.put32(0, 1)
			r.put32(4, 1)
			r.put32(16, OutcomeRetry)
			r.put32(20, 7)
			r.put32(24, 64)
			r.put32(28, uint32(len(c.msg)))
			copy(mem[64:], c.msg)
			out := &component.Output{}
			if err := Decode(mem, 32, in, out, Limits{Module: "m.wasm"}); err != nil {
				t.Fatal(err)
			}
			var re *RecordError
			if len(out.Failures) != 1 || !errors.As(out.Failures[0].Err, &re) {
				t.Fatalf("failures %+v", out.Failures)
			}
			if re.Msg != c.want {
				t.Errorf("message of %d bytes %q..., want %d bytes %q...", len(re.Msg), tail(re.Msg), len(c.want), tail(c.want))
			}
			if want := "wasm module m.wasm: module asked to retry the record (code 7): " + c.want; out.Failures[0].Err.Error() != want {
				t.Errorf("reason %q..., want %q...", tail(out.Failures[0].Err.Error()), tail(want))
			}
		})
	}
}

func tail(s string) string {
	if len(s) > 20 {
		return s[len(s)-20:]
	}
	return s
}
