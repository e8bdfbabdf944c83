package http

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"errors"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
)

func compress(t *testing.T, coding string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	var w interface {
		Write([]byte) (int, error)
		Close() error
	}
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "zlib":
		w = zlib.NewWriter(&b)
	case "raw-deflate":
		w, _ = flate.NewWriter(&b, flate.DefaultCompression)
	case "zstd":
		zw, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestContentEncoding: a compressed body is decoded before it is cut into
// events, so the events are the client's JSON, never compressed bytes.
func TestContentEncoding(t *testing.T) {
	s, base := startSource(t, "")
	e := runEngine(t, s, nil)
	plain := []byte("{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n")
	for _, c := range []struct{ header, coding string }{
		{"gzip", "gzip"}, {"x-gzip", "gzip"}, {"deflate", "zlib"}, {"deflate", "raw-deflate"}, {"zstd", "zstd"}, {"identity", ""}, {"GZIP", "gzip"},
	} {
		body := plain
		if c.coding != "" {
			body = compress(t, c.coding, plain)
		}
		before := len(e.all())
		resp, answer := post(t, base+"/", string(body), "Content-Type: application/x-ndjson", "Content-Encoding: "+c.header)
		if resp.StatusCode != 200 || !strings.Contains(answer, `"accepted":3,`) {
			t.Fatalf("%s (%s): %d %s", c.header, c.coding, resp.StatusCode, answer)
		}
		all := e.all()
		if len(all) != before+1 {
			t.Fatalf("%s: %d batches", c.header, len(all)-before)
		}
		for i, m := range all[before] {
			var ev struct{ Data struct{ N int } }
			if err := json.Unmarshal(m.Payload, &ev); err != nil || ev.Data.N != i+1 {
				t.Fatalf("%s: event %d is %q", c.header, i, m.Payload)
			}
		}
	}

	refused := []struct {
		name, encoding string
		body           []byte
		code           int
	}{
		{"unknown encoding", "br", compress(t, "gzip", plain), 415},
		{"two encodings", "gzip, gzip", compress(t, "gzip", compress(t, "gzip", plain)), 415},
		{"not gzip at all", "gzip", plain, 400},
		{"truncated gzip", "gzip", compress(t, "gzip", bytes.Repeat(plain, 100))[:40], 400},
		{"corrupt zstd", "zstd", []byte("\x28\xb5\x2f\xfd garbage"), 400},
	}
	for _, c := range refused {
		before := len(e.all())
		resp, answer := post(t, base+"/", string(c.body), "Content-Type: application/x-ndjson", "Content-Encoding: "+c.encoding)
		if resp.StatusCode != c.code || !strings.Contains(answer, `"error"`) {
			t.Errorf("%s: %d %s, want %d", c.name, resp.StatusCode, answer, c.code)
		}
		if n := len(e.all()) - before; n != 0 {
			t.Errorf("%s: %d batches reached the task", c.name, n)
		}
	}
}

// TestCompressionBomb: 1 GiB of zeros compressed to a few MiB is cut off
// at max_body_size once decoded (413), after decoding little more than
// that: memory stays bounded by max_body_size, not by the ratio.
func TestCompressionBomb(t *testing.T) {
	s, base := startSource(t, `max_body_size = "4MiB"`)
	e := runEngine(t, s, nil)
	for _, coding := range []string{"gzip", "zstd"} {
		// 1 GiB of zeros: 1024 members (gzip) or frames (zstd) of 1 MiB
		// each, concatenated, as a decoder must take them.
		var one []byte
		if coding == "gzip" {
			one = compress(t, "gzip", make([]byte, 1<<20))
		} else {
			one = compress(t, "zstd", make([]byte, 1<<20))
		}
		bomb := bytes.Repeat(one, 1024)

		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		req, _ := http.NewRequest(http.MethodPost, base+"/", bytes.NewReader(bomb))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Content-Encoding", coding)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s bomb: %.1f MiB compressed, 1 GiB decoded: status %d, %.1f MiB allocated while handling it", coding, float64(len(bomb))/(1<<20), resp.StatusCode, float64(allocated)/(1<<20))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s bomb: status %d, want 413", coding, resp.StatusCode)
		}
		// The decoded body is cut at 4 MiB; its buffer grows by doubling
		// (8 MiB allocated in all), plus decoder state. 1 GiB would be the
		// failure.
		if allocated > 64<<20 {
			t.Fatalf("%s bomb: %d MiB allocated, want well under 64 MiB", coding, allocated>>20)
		}
	}
	if n := len(e.all()); n != 0 {
		t.Fatalf("%d batches reached the task", n)
	}
}

// TestInvalidUTF8: bytes that are not UTF-8, in NDJSON lines, in a JSON
// array, in binary-mode data and attributes, never reach an event as they
// are: each becomes U+FFFD by default, and with invalid_utf8 = "reject"
// the element is dead-lettered at decode with its exact bytes.
func TestInvalidUTF8(t *testing.T) {
	body := "caf\xe9\n{\"n\":\"Jos\xc3\"}\n{\"ok\":1}\n"
	for _, policy := range []string{"replace", "reject"} {
		s, base := startSource(t, `invalid_utf8 = "`+policy+`"`)
		e := runEngine(t, s, nil)
		resp, answer := post(t, base+"/", body, "Content-Type: application/x-ndjson")
		want := `"accepted":3,"rejected":0`
		if policy == "reject" {
			want = `"accepted":1,"rejected":2`
		}
		if resp.StatusCode != 200 || !strings.Contains(answer, want) {
			t.Fatalf("%s: %d %s", policy, resp.StatusCode, answer)
		}
		resp, answer = post(t, base+"/", "{\"d\":\"\xff\"}", "Content-Type: application/json", "Ce-Specversion: 1.0", "Ce-Id: 1", "Ce-Source: s", "Ce-Type: t", "Ce-Who: caf\xe9")
		if resp.StatusCode != 200 {
			t.Fatalf("%s binary: %d %s", policy, resp.StatusCode, answer)
		}
		for _, b := range e.all() {
			for _, m := range b {
				if m.Err != nil {
					if policy != "reject" || !errors.Is(m.Err, lineformat.ErrDecode) {
						t.Fatalf("%s: unexpected failure %v", policy, m.Err)
					}
					continue
				}
				if !utf8.Valid(m.Payload) || !json.Valid(m.Payload) {
					t.Fatalf("%s: event %q is not JSON in valid UTF-8", policy, m.Payload)
				}
			}
		}
		if policy == "replace" && !strings.Contains(string(e.all()[0][0].Payload), "caf\ufffd") {
			t.Fatalf("replace: %s", e.all()[0][0].Payload)
		}
	}
}
