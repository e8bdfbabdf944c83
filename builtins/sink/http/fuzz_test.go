package http

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// FuzzEncode frames arbitrary payloads (split from the input at 0x1e) in
// both batch formats and cuts them by a small max_bytes: it must never
// panic, each payload must either fail alone or keep its framing, and every
// chunk must be a well-formed body. It also feeds the input to the
// Retry-After parser, which must never return a negative delay.
func FuzzEncode(f *testing.F) {
	f.Add([]byte("{\"a\": 1}\x1etext\x1etwo\nlines\x1e  [1, 2] \n"), uint16(40))
	f.Add([]byte("\"q\\\"\"\x1e\x00\xff\x1e"), uint16(1))
	f.Add([]byte("Fri, 02 Jan 2026 03:05:05 GMT"), uint16(1000))
	f.Fuzz(func(t *testing.T, in []byte, maxBytes uint16) {
		if d := component.ParseRetryAfter(string(in), time.Unix(1e9, 0)); d < 0 {
			t.Fatalf("negative Retry-After %v", d)
		}
		var ms []message.Message
		for p := range bytes.SplitSeq(in, []byte{0x1e}) {
			ms = append(ms, message.Message{Payload: p})
		}
		for _, format := range []string{FormatNDJSON, FormatJSONArray} {
			s := &Sink{format: format, maxBytes: int(maxBytes) + 1}
			ws := &writeState{}
			s.encode(ws, ms)
			if len(ws.idx)+len(ws.errs) != len(ms) {
				t.Fatalf("%s: %d encoded + %d failed != %d records", format, len(ws.idx), len(ws.errs), len(ms))
			}
			for i, e := range ws.errs {
				if format != FormatNDJSON || jsonscan.Valid(ms[i].Payload) || bytes.IndexByte(ms[i].Payload, '\n') < 0 || e == nil {
					t.Fatalf("%s: record %d failed unexpectedly: %v", format, i, e)
				}
			}
			total := 0
			for _, c := range s.chunks(ws) {
				first, last := ws.spans[ws.idx[c.a]], ws.spans[ws.idx[c.b-1]]
				region := ws.enc[first.s:last.e]
				if c.b-c.a > 1 && len(region)+1 > s.maxBytes {
					t.Fatalf("%s: chunk of %d records, %d bytes, over max_bytes %d", format, c.b-c.a, len(region), s.maxBytes)
				}
				if format == FormatJSONArray {
					body := append(append([]byte{'['}, region[:len(region)-1]...), ']')
					if !jsonscan.Valid(body) {
						t.Fatalf("json_array body is not JSON: %q", body)
					}
					n := 0
					it := jsonscan.ElementsOf(body, 0)
					for it.Next() {
						n++
					}
					if n != c.b-c.a {
						t.Fatalf("json_array body holds %d elements, want %d", n, c.b-c.a)
					}
				} else if got := bytes.Count(region, []byte{'\n'}); got != c.b-c.a {
					t.Fatalf("ndjson body holds %d lines, want %d: %q", got, c.b-c.a, region)
				}
				total += c.b - c.a
			}
			if total != len(ws.idx) {
				t.Fatalf("%s: chunks cover %d of %d records", format, total, len(ws.idx))
			}
		}
	})
}
