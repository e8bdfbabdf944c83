package http

import (
	"bytes"
	"errors"
	"net/http"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

var fuzzTypes = []string{
	"", "application/json", "application/x-ndjson", "text/plain", "application/cloudevents+json",
	"application/cloudevents-batch+json", "application/x-www-form-urlencoded", "application/octet-stream",
	"application/vnd.x+json; charset=utf-8",
}

var fuzzFormats = []lineformat.Format{lineformat.Auto, lineformat.JSON, lineformat.CloudEvents}

// FuzzSplit cuts arbitrary bodies under every content type and format: it
// must never panic, and each element must become either a CloudEvent (a
// JSON object with specversion) or a message carrying a decode error.
func FuzzSplit(f *testing.F) {
	f.Add([]byte(`[{"a":1}, 2, "x"]`), uint8(1), uint8(0), false)
	f.Add([]byte("{\"a\":1}\n\nplain\r\n"), uint8(2), uint8(1), false)
	f.Add([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t"}`), uint8(4), uint8(2), false)
	f.Add([]byte(`[{"specversion":"1.0","id":"1","source":"s","type":"t"},{}]`), uint8(5), uint8(0), false)
	f.Add([]byte("\x00\xff binary"), uint8(7), uint8(0), true)
	f.Add([]byte(`{"t":1}`), uint8(1), uint8(1), true)
	f.Add([]byte("{\"t\":\"\xff\"}\ncaf\xe9"), uint8(2), uint8(0), false)
	f.Add([]byte("{\"t\":\"\xc3\"}"), uint8(1), uint8(0), true)
	f.Fuzz(func(t *testing.T, body []byte, ct, format uint8, binary bool) {
		h := http.Header{}
		media := mediaType(fuzzTypes[int(ct)%len(fuzzTypes)])
		if media != "" {
			h.Set("Content-Type", fuzzTypes[int(ct)%len(fuzzTypes)])
		}
		if binary {
			h.Set("Ce-Specversion", "1.0")
			h.Set("Ce-Id", "x")
			h.Set("Ce-Source", "s")
			h.Set("Ce-Type", "t")
			h.Set("Ce-Ext", string(body[:min(len(body), 8)]))
		}
		fr, serr := classify(media, binary)
		if serr != nil {
			if serr.code != http.StatusUnsupportedMediaType {
				t.Fatalf("classify: status %d", serr.code)
			}
			return
		}
		b := &builder{w: lineformat.Wrapper{Source: "s", Type: "t", MaxEvent: 64}}
		b.body = body
		b.reset("req", time.Unix(0, 0))
		if serr := b.split(fr, fuzzFormats[int(format)%len(fuzzFormats)], h, media); serr != nil {
			if serr.code != http.StatusBadRequest || serr.msg == "" {
				t.Fatalf("split: status %d %q", serr.code, serr.msg)
			}
			return
		}
		msgs := b.finish()
		rejected := 0
		for i, m := range msgs {
			if m.Pos.Stream != "req" || m.Pos.Offset != int64(i) {
				t.Fatalf("msg %d: position %+v", i, m.Pos)
			}
			if m.Err != nil {
				rejected++
				if !errors.Is(m.Err, lineformat.ErrDecode) && !errors.Is(m.Err, lineformat.ErrTooLarge) {
					t.Fatalf("msg %d: error %v is neither a decode nor a size error", i, m.Err)
				}
				if len(m.Payload) == 0 {
					t.Fatalf("msg %d: failed element without its raw bytes", i)
				}
				continue
			}
			p := m.Payload
			if !jsonscan.Valid(p) || !utf8.Valid(p) {
				t.Fatalf("msg %d: event is not JSON in valid UTF-8: %q", i, p)
			}
			s := jsonscan.SkipSpace(p, 0)
			if p[s] != '{' {
				t.Fatalf("msg %d: event is not an object: %q", i, p)
			}
			found := false
			it := jsonscan.MembersOf(p, s)
			for it.Next() {
				found = found || it.KeyIs("specversion")
			}
			if !found {
				t.Fatalf("msg %d: event has no specversion: %q", i, p)
			}
			if !bytes.Equal(m.Event, m.Payload) {
				t.Fatalf("msg %d: Event differs from Payload", i)
			}
		}
		if rejected != b.rejected {
			t.Fatalf("rejected count %d, messages with errors %d", b.rejected, rejected)
		}
		if fr == frameLines {
			lines := 0
			for l := range bytes.SplitSeq(body, []byte("\n")) {
				if jsonscan.SkipSpace(bytes.TrimSuffix(l, []byte("\r")), 0) < len(bytes.TrimSuffix(l, []byte("\r"))) {
					lines++
				}
			}
			if lines != len(msgs) {
				t.Fatalf("%d non-blank lines became %d messages", lines, len(msgs))
			}
		}
		if fr == frameBinary && len(msgs) != 1 {
			t.Fatalf("binary mode gave %d messages", len(msgs))
		}

		// Cut into batches, the body gives the same messages in order.
		c := &builder{w: lineformat.Wrapper{Source: "s", Type: "t", MaxEvent: 64}}
		c.body = body
		c.reset("req", time.Unix(0, 0))
		var got []message.Message
		c.flush = func(ch *chunk) bool {
			got = append(got, ch.finish()...)
			return true
		}
		c.maxEvents, c.maxBytes = 1+len(body)%4, 1+len(body)%300
		if serr := c.split(fr, fuzzFormats[int(format)%len(fuzzFormats)], h, media); serr != nil {
			t.Fatalf("split in batches failed where the whole split did not: %v", serr)
		}
		got = append(got, c.finish()...)
		if len(got) != len(msgs) || c.rejected != b.rejected {
			t.Fatalf("in batches: %d messages (%d rejected), whole: %d (%d)", len(got), c.rejected, len(msgs), b.rejected)
		}
		for i := range got {
			if !bytes.Equal(got[i].Payload, msgs[i].Payload) || got[i].Pos != msgs[i].Pos || (got[i].Err == nil) != (msgs[i].Err == nil) {
				t.Fatalf("message %d differs in batches: %q %+v, whole: %q %+v", i, got[i].Payload, got[i].Pos, msgs[i].Payload, msgs[i].Pos)
			}
		}
	})
}
