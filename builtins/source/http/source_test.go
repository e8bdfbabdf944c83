package http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// want describes one expected message of a batch.
type want struct {
	id   string         // expected event id ("" : don't check)
	data any            // expected data, decoded (nil with raw == "": not checked)
	ce   map[string]any // expected attributes (subset)
	err  error          // expected decode failure (sentinel)
	raw  string         // raw bytes of a failed element
}

func checkMsgs(t *testing.T, got []message.Message, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		for i, m := range got {
			t.Logf("got[%d] = %s (err %v)", i, m.Payload, m.Err)
		}
		t.Fatalf("got %d messages, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		m := got[i]
		if m.Pos.Offset != int64(i) {
			t.Errorf("msg %d: offset %d, want %d", i, m.Pos.Offset, i)
		}
		if w.err != nil {
			if !errors.Is(m.Err, w.err) {
				t.Errorf("msg %d: err %v, want %v", i, m.Err, w.err)
			}
			if string(m.Payload) != w.raw || string(m.Event) != w.raw {
				t.Errorf("msg %d: raw %q, want %q", i, m.Payload, w.raw)
			}
			continue
		}
		if m.Err != nil {
			t.Errorf("msg %d: unexpected err %v", i, m.Err)
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Errorf("msg %d: payload is not JSON: %v: %s", i, err, m.Payload)
			continue
		}
		if string(m.Event) != string(m.Payload) {
			t.Errorf("msg %d: Event differs from Payload", i)
		}
		if ev["specversion"] != "1.0" {
			t.Errorf("msg %d: specversion %v in %s", i, ev["specversion"], m.Payload)
		}
		if w.id != "" && ev["id"] != w.id {
			t.Errorf("msg %d: id %v, want %s", i, ev["id"], w.id)
		}
		if w.data != nil && !reflect.DeepEqual(ev["data"], w.data) {
			t.Errorf("msg %d: data %#v, want %#v (event %s)", i, ev["data"], w.data, m.Payload)
		}
		for k, v := range w.ce {
			if !reflect.DeepEqual(ev[k], v) {
				t.Errorf("msg %d: %s = %#v, want %#v (event %s)", i, k, ev[k], v, m.Payload)
			}
		}
	}
}

type answer struct {
	Accepted  int    `json:"accepted"`
	Rejected  int    `json:"rejected"`
	RequestID string `json:"request_id"`
	Error     string `json:"error"`
}

func decodeAnswer(t *testing.T, body string) answer {
	t.Helper()
	var a answer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, body)
	}
	return a
}

func TestBodies(t *testing.T) {
	const ce1 = `{"specversion":"1.0","id":"abc","source":"/s","type":"t.x","data":{"k":1}}`
	const ce2 = `{"specversion":"1.0","id":"def","source":"/s","type":"t.y"}`
	wrapped := map[string]any{"source": "sluice/t1/http", "type": "sluice.http"}
	cases := []struct {
		name     string
		keys     string
		ct       string
		body     string
		code     int
		wants    []want
		errMatch string
	}{
		{name: "json object", ct: "application/json", body: `{"a": 1}`, code: 200,
			wants: []want{{id: "req1-0-0", data: map[string]any{"a": 1.0}, ce: map[string]any{"datacontenttype": "application/json", "source": "sluice/t1/http", "type": "sluice.http"}}}},
		{name: "json with charset", ct: "Application/JSON; charset=utf-8", body: `{"a":1}`, code: 200,
			wants: []want{{id: "req1-0-0", data: map[string]any{"a": 1.0}}}},
		{name: "json array", ct: "application/json", body: " [ {\"a\":1},\n 2, \"x\", [true] ] ", code: 200,
			wants: []want{{id: "req1-0-0", data: map[string]any{"a": 1.0}}, {id: "req1-0-1", data: 2.0}, {id: "req1-0-2", data: "x"}, {id: "req1-0-3", data: []any{true}}}},
		{name: "json array holding a cloudevent", ct: "application/json", body: `[` + ce1 + `,{"b":2}]`, code: 200,
			wants: []want{{id: "abc", data: map[string]any{"k": 1.0}, ce: map[string]any{"type": "t.x"}}, {id: "req1-0-1", data: map[string]any{"b": 2.0}, ce: wrapped}}},
		{name: "json string", ct: "application/json", body: `"hi"`, code: 200, wants: []want{{data: "hi"}}},
		{name: "vendor json type", ct: "application/vnd.acme+json", body: `[1,2]`, code: 200, wants: []want{{data: 1.0}, {data: 2.0}}},
		{name: "empty array", ct: "application/json", body: `[]`, code: 200},
		{name: "empty body", ct: "application/json", body: "  \n", code: 200},
		{name: "invalid json in auto is text", ct: "application/json", body: "[1, 2\n", code: 200,
			wants: []want{{data: "[1, 2", ce: map[string]any{"datacontenttype": "text/plain"}}}},
		{name: "invalid json in json format", keys: `format = "json"`, ct: "application/json", body: `[1, 2`, code: 400, errMatch: "not valid JSON"},
		{name: "ndjson", ct: "application/x-ndjson", body: "{\"a\":1}\n\n{\"a\":2}\r\nplain text\n   \n", code: 200,
			wants: []want{{id: "req1-0-0", data: map[string]any{"a": 1.0}}, {id: "req1-0-1", data: map[string]any{"a": 2.0}}, {id: "req1-0-2", data: "plain text"}}},
		{name: "ndjson without final newline", ct: "application/x-ndjson", body: "1\n2", code: 200, wants: []want{{data: 1.0}, {data: 2.0}}},
		{name: "jsonl type", ct: "application/jsonl", body: "1\n" + ce2, code: 200, wants: []want{{data: 1.0}, {id: "def"}}},
		{name: "text lines", ct: "text/plain", body: "hello\nworld", code: 200, wants: []want{{data: "hello"}, {data: "world"}}},
		{name: "text single json line", ct: "text/plain; charset=utf-8", body: `{"a":1}`, code: 200, wants: []want{{data: map[string]any{"a": 1.0}}}},
		{name: "no content type json", ct: "", body: `[1,{"b":2}]`, code: 200, wants: []want{{data: 1.0}, {data: map[string]any{"b": 2.0}}}},
		{name: "no content type ndjson", ct: "", body: "{\"a\":1}\n{\"a\":2}\n", code: 200, wants: []want{{data: map[string]any{"a": 1.0}}, {data: map[string]any{"a": 2.0}}}},
		{name: "form type sniffed (curl -d)", ct: "application/x-www-form-urlencoded", body: `{"a":1}`, code: 200, wants: []want{{data: map[string]any{"a": 1.0}}}},
		{name: "structured cloudevent", ct: "application/cloudevents+json; charset=UTF-8", body: ce1, code: 200,
			wants: []want{{id: "abc", data: map[string]any{"k": 1.0}, ce: map[string]any{"source": "/s"}}}},
		{name: "structured not a cloudevent", ct: "application/cloudevents+json", body: `{"a":1}`, code: 200,
			wants: []want{{err: lineformat.ErrDecode, raw: `{"a":1}`}}},
		{name: "structured lacking id", ct: "application/cloudevents+json", body: `{"specversion":"1.0","source":"s","type":"t"}`, code: 200,
			wants: []want{{err: lineformat.ErrDecode, raw: `{"specversion":"1.0","source":"s","type":"t"}`}}},
		{name: "structured array", ct: "application/cloudevents+json", body: `[` + ce1 + `]`, code: 400, errMatch: "cloudevents-batch"},
		{name: "structured not json", ct: "application/cloudevents+json", body: `nope`, code: 400, errMatch: "not valid JSON"},
		{name: "batch", ct: "application/cloudevents-batch+json", body: `[` + ce1 + `, {"not":"ce"}, ` + ce2 + `]`, code: 200,
			wants: []want{{id: "abc"}, {err: lineformat.ErrDecode, raw: `{"not":"ce"}`}, {id: "def"}}},
		{name: "batch not array", ct: "application/cloudevents-batch+json", body: ce1, code: 400, errMatch: "not a JSON array"},
		{name: "batch broken", ct: "application/cloudevents-batch+json", body: `[` + ce1 + `,`, code: 400, errMatch: "not a JSON array"},
		{name: "unsupported type", ct: "application/octet-stream", body: "xx", code: 415, errMatch: "unsupported Content-Type"},
		{name: "strict json bad line", keys: `format = "json"`, ct: "application/x-ndjson", body: "1\nnot json\n3", code: 200,
			wants: []want{{data: 1.0}, {err: lineformat.ErrDecode, raw: "not json"}, {data: 3.0}}},
		{name: "strict cloudevents line", keys: `format = "cloudevents"`, ct: "application/x-ndjson", body: ce1 + "\n{\"a\":1}\n", code: 200,
			wants: []want{{id: "abc"}, {err: lineformat.ErrDecode, raw: `{"a":1}`}}},
		{name: "strict cloudevents json array", keys: `format = "cloudevents"`, ct: "application/json", body: `[` + ce2 + `,5]`, code: 200,
			wants: []want{{id: "def"}, {err: lineformat.ErrDecode, raw: `5`}}},
		{name: "over max_event_size", keys: `max_event_size = "40B"`, ct: "application/x-ndjson", body: "short\n" + strings.Repeat("x", 41) + "\n", code: 200,
			wants: []want{{data: "short"}, {err: lineformat.ErrTooLarge, raw: strings.Repeat("x", 41)}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, base := startSource(t, c.keys)
			e := runEngine(t, s, nil)
			headers := []string{"X-Request-Id: req1"}
			if c.ct != "" {
				headers = append(headers, "Content-Type: "+c.ct)
			}
			resp, body := post(t, base+"/", c.body, headers...)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.code, body)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("answer Content-Type %q", resp.Header.Get("Content-Type"))
			}
			a := decodeAnswer(t, body)
			if c.code != 200 {
				if !strings.Contains(a.Error, c.errMatch) {
					t.Errorf("error %q does not mention %q", a.Error, c.errMatch)
				}
				if got := e.all(); len(got) != 0 {
					t.Errorf("a refused request produced %d batches", len(got))
				}
				return
			}
			rejected := 0
			for _, w := range c.wants {
				if w.err != nil {
					rejected++
				}
			}
			if a.Accepted != len(c.wants)-rejected || a.Rejected != rejected || a.RequestID != "req1" {
				t.Errorf("answer %+v, want accepted %d rejected %d request_id req1", a, len(c.wants)-rejected, rejected)
			}
			batches := e.all()
			if len(c.wants) == 0 {
				if len(batches) != 0 {
					t.Fatalf("an empty body produced %d batches", len(batches))
				}
				return
			}
			if len(batches) != 1 {
				t.Fatalf("got %d batches, want 1", len(batches))
			}
			checkMsgs(t, batches[0], c.wants)
			for _, m := range batches[0] {
				if m.Pos.Stream != "req1" || m.Pos.Partition != 0 {
					t.Errorf("position %+v, want stream req1 partition 0", m.Pos)
				}
				if time.Since(m.Time) > time.Minute {
					t.Errorf("message time %v is not the ingest time", m.Time)
				}
			}
		})
	}
}

func TestBinaryMode(t *testing.T) {
	ceHeaders := []string{"ce-specversion: 1.0", "ce-id: b-1", "ce-source: /sensors/7", "ce-type: reading"}
	cases := []struct {
		name    string
		keys    string
		headers []string
		body    string
		code    int
		want    map[string]any // the whole event
		err     error
	}{
		{name: "json data", headers: append([]string{"Content-Type: application/json", "ce-subject: s1", "ce-time: 2024-01-02T03:04:05Z", "Ce-Traceparent: 00-ab"}, ceHeaders...),
			body: "{ \"t\" : 21.5 }\n", code: 200,
			want: map[string]any{"specversion": "1.0", "id": "b-1", "source": "/sensors/7", "type": "reading", "subject": "s1",
				"time": "2024-01-02T03:04:05Z", "traceparent": "00-ab", "datacontenttype": "application/json", "data": map[string]any{"t": 21.5}}},
		{name: "text data", headers: append([]string{"Content-Type: text/plain; charset=utf-8"}, ceHeaders...), body: "line1\nline2", code: 200,
			want: map[string]any{"specversion": "1.0", "id": "b-1", "source": "/sensors/7", "type": "reading", "datacontenttype": "text/plain; charset=utf-8", "data": "line1\nline2"}},
		{name: "binary data", headers: append([]string{"Content-Type: application/octet-stream"}, ceHeaders...), body: "\x00\x01\xff", code: 200,
			want: map[string]any{"specversion": "1.0", "id": "b-1", "source": "/sensors/7", "type": "reading", "datacontenttype": "application/octet-stream", "data_base64": "AAH/"}},
		{name: "no body", headers: ceHeaders, body: "", code: 200,
			want: map[string]any{"specversion": "1.0", "id": "b-1", "source": "/sensors/7", "type": "reading"}},
		{name: "percent-encoded value", headers: append([]string{"ce-comment: caf%C3%A9%20ok"}, ceHeaders...), body: "", code: 200,
			want: map[string]any{"specversion": "1.0", "id": "b-1", "source": "/sensors/7", "type": "reading", "comment": "café ok"}},
		{name: "bad json data in auto", headers: append([]string{"Content-Type: application/json"}, ceHeaders...), body: "{nope", code: 200,
			want: map[string]any{"specversion": "1.0", "id": "b-1", "source": "/sensors/7", "type": "reading", "datacontenttype": "application/json", "data": "{nope"}},
		{name: "bad json data in json format", keys: `format = "json"`, headers: append([]string{"Content-Type: application/json"}, ceHeaders...), body: "{nope", code: 200,
			err: lineformat.ErrDecode},
		{name: "too large", keys: `max_event_size = "100B"`, headers: append([]string{"Content-Type: text/plain"}, ceHeaders...), body: strings.Repeat("y", 100), code: 200,
			err: lineformat.ErrTooLarge},
		// The source's max_event_size may be over the task's event limit
		// (1 MiB here), which the engine holds every event to: the event
		// is the source's own rejection, not accepted then dead-lettered.
		{name: "over the task's limit", keys: `max_event_size = "4MiB"`, headers: append([]string{"Content-Type: text/plain"}, ceHeaders...), body: strings.Repeat("y", 1<<20), code: 200,
			err: lineformat.ErrTooLarge},
		{name: "missing id", headers: []string{"ce-specversion: 1.0", "ce-source: s", "ce-type: t"}, code: 400},
		{name: "old specversion", headers: []string{"ce-specversion: 0.3", "ce-id: 1", "ce-source: s", "ce-type: t"}, code: 400},
		{name: "bad attribute name", headers: append([]string{"ce-my-ext: 1"}, ceHeaders...), code: 400},
		{name: "datacontenttype header", headers: append([]string{"ce-datacontenttype: text/plain"}, ceHeaders...), code: 400},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, base := startSource(t, c.keys)
			e := runEngine(t, s, nil)
			resp, body := post(t, base+"/", c.body, c.headers...)
			if resp.StatusCode != c.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.code, body)
			}
			if c.code != 200 {
				return
			}
			b := e.all()
			if len(b) != 1 || len(b[0]) != 1 {
				t.Fatalf("got %d batches, want 1 with 1 event", len(b))
			}
			m := b[0][0]
			if c.err != nil {
				if !errors.Is(m.Err, c.err) {
					t.Fatalf("err %v, want %v", m.Err, c.err)
				}
				if a := decodeAnswer(t, body); a.Rejected != 1 {
					t.Errorf("answer %+v, want rejected 1", a)
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(m.Payload, &got); err != nil {
				t.Fatalf("event is not JSON: %v: %s", err, m.Payload)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("event\n got %s\nwant %v", m.Payload, c.want)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	s, base := startSource(t, `token = "s3cret"`+"\npath = \"/in\"")
	runEngine(t, s, nil)
	cases := []struct {
		name   string
		auth   string
		status int
	}{
		{"none", "", 401},
		{"wrong", "Authorization: Bearer nope", 401},
		{"prefix of token", "Authorization: Bearer s3cre", 401},
		{"basic", "Authorization: Basic czNjcmV0", 401},
		{"right", "Authorization: Bearer s3cret", 200},
		{"lowercase scheme", "Authorization: bearer s3cret", 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := []string{"Content-Type: application/json"}
			if c.auth != "" {
				h = append(h, c.auth)
			}
			resp, body := post(t, base+"/in", `{"a":1}`, h...)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if strings.Contains(body, "s3cret") {
				t.Error("answer leaks the token")
			}
		})
	}
	t.Run("health needs no token", func(t *testing.T) {
		resp, err := http.Get(base + "/in")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET status %d", resp.StatusCode)
		}
	})
	t.Run("other path", func(t *testing.T) {
		resp, _ := post(t, base+"/other", `{}`, "Authorization: Bearer s3cret")
		if resp.StatusCode != 404 {
			t.Fatalf("status %d, want 404", resp.StatusCode)
		}
	})
	t.Run("method", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodDelete, base+"/in", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
			t.Fatalf("status %d allow %q, want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})
	if fmt.Sprint(s.hasToken) != "true" || strings.Contains(fmt.Sprintf("%v %+v %#v", Secret("s3cret"), Secret("s3cret"), Secret("s3cret")), "s3cret") {
		t.Error("Secret prints its value")
	}
}

func TestBodyLimit(t *testing.T) {
	s, base := startSource(t, `max_body_size = "1KiB"`)
	e := runEngine(t, s, nil)
	big := strings.Repeat("a", 1025)
	t.Run("content-length", func(t *testing.T) {
		resp, body := post(t, base+"/", big, "Content-Type: text/plain")
		if resp.StatusCode != 413 {
			t.Fatalf("status %d, want 413: %s", resp.StatusCode, body)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		// A reader without a length makes the client send chunks, so the
		// limit is found while reading.
		req, _ := http.NewRequest(http.MethodPost, base+"/", io.MultiReader(strings.NewReader(big[:600]), strings.NewReader(big[600:])))
		req.Header.Set("Content-Type", "text/plain")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	})
	t.Run("at the limit", func(t *testing.T) {
		resp, body := post(t, base+"/", big[:1024], "Content-Type: text/plain")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200: %s", resp.StatusCode, body)
		}
	})
	if n := len(e.all()); n != 1 {
		t.Errorf("%d batches, want 1 (only the request within the limit)", n)
	}
}

func TestConcurrentPosts(t *testing.T) {
	s, base := startSource(t, "concurrency = 4")
	var n atomic.Int64
	e := runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
		// Every third batch is slow, to let requests pile up.
		if n.Add(1)%3 == 0 {
			return 20 * time.Millisecond, true, nil
		}
		return 0, true, nil
	})
	const clients, perClient = 50, 4
	var wg sync.WaitGroup
	errs := make(chan string, clients*perClient)
	for c := range clients {
		wg.Go(func() {
			for r := range perClient {
				var body strings.Builder
				for i := range 10 {
					fmt.Fprintf(&body, "{\"c\":%d,\"r\":%d,\"i\":%d}\n", c, r, i)
				}
				resp, ans := post(t, base+"/", body.String(), "Content-Type: application/x-ndjson")
				if resp.StatusCode != 200 || !strings.Contains(ans, `"accepted":10`) {
					errs <- fmt.Sprintf("client %d request %d: %d %s", c, r, resp.StatusCode, ans)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.batches) != clients*perClient {
		t.Fatalf("%d batches, want %d", len(e.batches), clients*perClient)
	}
	lanes := map[string]bool{}
	seen := map[string]bool{}
	for i, b := range e.batches {
		if lanes[b.Lane] {
			t.Errorf("lane %q used twice", b.Lane)
		}
		lanes[b.Lane] = true
		for j, m := range e.events[i] {
			var ev struct {
				ID   string
				Data struct{ C, R, I int }
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Data.I != j {
				t.Errorf("batch %d: element %d holds i=%d: order lost", i, j, ev.Data.I)
			}
			if seen[ev.ID] {
				t.Errorf("event id %s repeated", ev.ID)
			}
			seen[ev.ID] = true
		}
	}
	if len(seen) != clients*perClient*10 {
		t.Errorf("%d distinct events, want %d", len(seen), clients*perClient*10)
	}
}

func TestResponseTimeout(t *testing.T) {
	t.Run("never acknowledged", func(t *testing.T) {
		s, base := startSource(t, `response_timeout = "150ms"`)
		var held []component.Batch
		var mu sync.Mutex
		runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
			mu.Lock()
			held = append(held, b)
			mu.Unlock()
			return 0, false, nil
		})
		start := time.Now()
		resp, body := post(t, base+"/", `{"a":1}`, "Content-Type: application/json", "X-Request-Id: r-9")
		if resp.StatusCode != 503 {
			t.Fatalf("status %d, want 503: %s", resp.StatusCode, body)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Errorf("answered after %v, before response_timeout", d)
		}
		if resp.Header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q, want \"1\"", resp.Header.Get("Retry-After"))
		}
		a := decodeAnswer(t, body)
		if a.RequestID != "r-9" || !strings.Contains(a.Error, "may still be delivered") {
			t.Errorf("answer %+v", a)
		}
		// The engine delivers the batch after all: the source counts it.
		mu.Lock()
		b := held[0]
		mu.Unlock()
		b.Ack(nil)
		b.Ack(nil) // a second Ack is ignored
		if got := s.abandoned.WithLabelValues("t1", "handled").Value(); got != 1 {
			t.Errorf("unconfirmed handled = %v, want 1", got)
		}
	})
	t.Run("never read", func(t *testing.T) {
		s, base := startSource(t, `response_timeout = "1s"`)
		resp, body := post(t, base+"/", `{"first":1}`, "Content-Type: application/json")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "nothing was kept") {
			t.Fatalf("status %d %s, want 503 nothing kept", resp.StatusCode, body)
		}
		// The dropped batch still sits in the queue; Read must skip it and
		// return the next request's batch.
		e := runEngine(t, s, nil)
		resp, body = post(t, base+"/", `{"second":2}`, "Content-Type: application/json")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		got := e.all()
		if len(got) != 1 || !strings.Contains(string(got[0][0].Payload), "second") {
			t.Fatalf("engine got %d batches (%v), want only the second request", len(got), got)
		}
	})
	t.Run("ack error", func(t *testing.T) {
		s, base := startSource(t, "")
		runEngine(t, s, func(component.Batch) (time.Duration, bool, error) {
			return 0, true, errors.New("task blocked")
		})
		resp, body := post(t, base+"/", `1`, "Content-Type: application/json")
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("status %d, want 503 with Retry-After: %s", resp.StatusCode, body)
		}
		if strings.Contains(body, "task blocked") {
			t.Errorf("answer exposes the task's internal error: %s", body)
		}
	})
	t.Run("slow ack within the timeout", func(t *testing.T) {
		s, base := startSource(t, `response_timeout = "2s"`)
		runEngine(t, s, func(component.Batch) (time.Duration, bool, error) { return 50 * time.Millisecond, true, nil })
		resp, body := post(t, base+"/", `1`, "Content-Type: application/json")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("request slots", func(t *testing.T) {
		s, base := startSource(t, "response_timeout = \"1s\"\nmax_requests = 1\nbatch = { max_events = 1 }")
		// The first request holds the only slot while the task handles its
		// events, batch after batch, each within response_timeout (a body
		// being received holds none: see TestSlowSenders).
		var firstBatches atomic.Int32
		runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
			if b.Messages[0].Pos.Stream == "first" {
				firstBatches.Add(1)
				return 200 * time.Millisecond, true, nil
			}
			return 0, true, nil
		})
		done := make(chan string)
		go func() {
			_, body := post(t, base+"/", strings.Repeat("1\n", 30), "Content-Type: application/x-ndjson", "X-Request-Id: first")
			done <- body
		}()
		testkit.WaitFor(t, "the first request to hold the slot", func() bool { return firstBatches.Load() > 0 })
		resp, body := post(t, base+"/", `2`, "Content-Type: application/json")
		if resp.StatusCode != 503 || !strings.Contains(body, "max_requests") || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("second request: %d %s, want 503 max_requests", resp.StatusCode, body)
		}
		if body := <-done; !strings.Contains(body, `"accepted":30,`) {
			t.Fatalf("first request: %s, want 30 accepted", body)
		}
		if n := firstBatches.Load(); n != 30 {
			t.Fatalf("first request came in %d batches, want 30 (batch.max_events = 1)", n)
		}
	})
}

// TestClose: Close answers the requests still waiting for their batch with
// 503 at once, rather than leaving them to response_timeout (ten minutes
// here, so that waiting for it cannot pass within Close's deadline).
func TestClose(t *testing.T) {
	s, base := startSource(t, `response_timeout = "10m"`)
	var taken atomic.Int32
	e := runEngine(t, s, func(component.Batch) (time.Duration, bool, error) {
		taken.Add(1)
		return 0, false, nil // hold every batch
	})
	const n = 5
	codes := make(chan int, n)
	for range n {
		go func() {
			resp, _ := post(t, base+"/", `1`, "Content-Type: application/json")
			codes <- resp.StatusCode
		}()
	}
	testkit.WaitFor(t, "requests to wait", func() bool { return len(s.slots) == n })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	for range n {
		if c := <-codes; c != 503 {
			t.Errorf("pending request answered %d, want 503", c)
		}
	}
	<-e.done // Read returned io.EOF
	if _, err := s.Read(context.Background()); !errors.Is(err, io.EOF) {
		t.Errorf("Read after Close: %v, want io.EOF", err)
	}
	if err := s.Open(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v, want ErrClosed", err)
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Error("the server still answers after Close")
	}
}

func TestReadContext(t *testing.T) {
	s, _ := startSource(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := s.Read(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read: %v, want deadline exceeded", err)
	}
}

func TestGeneratedRequestIDs(t *testing.T) {
	s, base := startSource(t, "")
	e := runEngine(t, s, nil)
	ids := map[string]bool{}
	for _, rid := range []string{"", "", "bad id with spaces", strings.Repeat("x", 129)} {
		h := []string{"Content-Type: application/json"}
		if rid != "" {
			h = append(h, "X-Request-Id: "+rid)
		}
		resp, body := post(t, base+"/", `[1,2]`, h...)
		a := decodeAnswer(t, body)
		if a.RequestID == "" || a.RequestID == rid || resp.Header.Get("X-Request-Id") != a.RequestID {
			t.Fatalf("request id %q (header %q) for client id %q", a.RequestID, resp.Header.Get("X-Request-Id"), rid)
		}
		if ids[a.RequestID] {
			t.Fatalf("generated request id %q twice", a.RequestID)
		}
		ids[a.RequestID] = true
	}
	for _, b := range e.all() {
		checkMsgs(t, b, []want{{id: b[0].Pos.Stream + "-0-0"}, {id: b[0].Pos.Stream + "-0-1"}})
	}
}

func TestSlowBody(t *testing.T) {
	s, base := startSource(t, `read_timeout = "200ms"`)
	e := runEngine(t, s, nil)
	pr, pw := io.Pipe()
	defer pw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/", pr)
	req.Header.Set("Content-Type", "application/x-ndjson")
	go pw.Write([]byte("1\n2\n")) // then nothing more
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("status %d, want 408: %s", resp.StatusCode, body)
	}
	if n := len(e.all()); n != 0 {
		t.Errorf("a broken-off body produced %d batches", n)
	}
}

// TestConcurrentMixed has 50 clients while the engine acknowledges some
// batches at once, some slowly and some never: exactly the unacknowledged
// requests get 503 with Retry-After, the others 200.
func TestConcurrentMixed(t *testing.T) {
	s, base := startSource(t, "concurrency = 4\nresponse_timeout = \"1s\"")
	e := runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
		id := b.Messages[0].Pos.Stream
		switch {
		case strings.HasSuffix(id, "-never"):
			return 0, false, nil
		case strings.HasSuffix(id, "-slow"):
			return 50 * time.Millisecond, true, nil
		}
		return 0, true, nil
	})
	const clients = 50
	var wg sync.WaitGroup
	var ok, unavailable atomic.Int32
	for c := range clients {
		wg.Go(func() {
			for _, kind := range []string{"fast", "slow", "never"} {
				if kind == "never" && c%5 != 0 {
					continue
				}
				rid := fmt.Sprintf("c%d-%s", c, kind)
				resp, body := post(t, base+"/", fmt.Sprintf(`[{"c":%d},{"c":%d}]`, c, c), "Content-Type: application/json", "X-Request-Id: "+rid)
				want := 200
				if kind == "never" {
					want = 503
				}
				if resp.StatusCode != want {
					t.Errorf("%s: status %d, want %d: %s", rid, resp.StatusCode, want, body)
				}
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 503:
					unavailable.Add(1)
					if resp.Header.Get("Retry-After") == "" || !strings.Contains(body, rid) {
						t.Errorf("%s: 503 without Retry-After or request id: %s", rid, body)
					}
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 2*clients || unavailable.Load() != clients/5 {
		t.Errorf("%d answered 200 and %d 503, want %d and %d", ok.Load(), unavailable.Load(), 2*clients, clients/5)
	}
	if n := len(e.all()); n != 2*clients+clients/5 {
		t.Errorf("engine read %d batches, want %d", n, 2*clients+clients/5)
	}
}

// TestLargeBodyInBatches: a body with more elements than batch.max_events
// reaches the task as several batches of one lane, in order, with
// positions and ids running on across them; at most two are in the task at
// once; the answer counts them all.
func TestLargeBodyInBatches(t *testing.T) {
	s, base := startSource(t, "format = \"json\"\nbatch = { max_events = 10 }")
	var outstanding, most atomic.Int32
	e := runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
		n := outstanding.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		go func() {
			time.Sleep(5 * time.Millisecond) // a task that takes a while
			outstanding.Add(-1)
			b.Ack(nil)
		}()
		return 0, false, nil
	})
	var body strings.Builder
	for i := range 95 {
		if i%20 == 7 {
			body.WriteString("not json\n")
			continue
		}
		fmt.Fprintf(&body, "{\"i\":%d}\n", i)
	}
	resp, answer := post(t, base+"/", body.String(), "Content-Type: application/x-ndjson", "X-Request-Id: big-1")
	if resp.StatusCode != 200 || !strings.Contains(answer, `"accepted":90,"rejected":5`) {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	if m := most.Load(); m > maxPipeline {
		t.Errorf("%d batches of the request were in the task at once, want at most %d", m, maxPipeline)
	}
	batches := e.all()
	if len(batches) != 10 {
		t.Fatalf("%d batches, want 10", len(batches))
	}
	e.mu.Lock()
	lanes := map[string]bool{}
	for _, b := range e.batches {
		lanes[b.Lane] = true
	}
	e.mu.Unlock()
	if len(lanes) != 1 {
		t.Fatalf("batches in %d lanes, want one", len(lanes))
	}
	next := 0
	for _, b := range batches {
		for _, m := range b {
			if m.Pos.Stream != "big-1" || m.Pos.Offset != int64(next) {
				t.Fatalf("element %d: position %+v", next, m.Pos)
			}
			if m.Err == nil && !strings.Contains(string(m.Payload), fmt.Sprintf(`"id":"big-1-0-%d"`, next)) {
				t.Fatalf("element %d: %s", next, m.Payload)
			}
			next++
		}
	}
	if next != 95 {
		t.Fatalf("%d elements, want 95", next)
	}
}

// TestLargeBodyFailsMidway: when the task refuses the third batch of a
// request, the answer is 503 and says that earlier events may have been
// delivered; no later batch is handed over.
func TestLargeBodyFailsMidway(t *testing.T) {
	s, base := startSource(t, "batch = { max_events = 10 }")
	var n atomic.Int32
	e := runEngine(t, s, func(component.Batch) (time.Duration, bool, error) {
		if n.Add(1) == 3 {
			return 0, true, errors.New("task blocked")
		}
		return 0, true, nil
	})
	resp, answer := post(t, base+"/", strings.Repeat("1\n", 100), "Content-Type: application/x-ndjson")
	if resp.StatusCode != 503 || !strings.Contains(answer, "may have been delivered") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	// The source stops at the failure: at most the batch built meanwhile
	// follows it.
	if got := len(e.all()); got > 4 {
		t.Fatalf("%d batches handed over after the third failed", got)
	}
}

// TestUnconfirmedCountedPerRequest: sluice_http_source_unconfirmed_total
// counts requests answered 503 whose events the task handled after all,
// once per request. A large request has several batches in the task when
// it gives up; each was counted (and warned about) on its own, so one
// request read as two.
func TestUnconfirmedCountedPerRequest(t *testing.T) {
	for _, c := range []struct {
		name    string
		errs    [2]error
		outcome string
	}{
		{"handled", [2]error{nil, nil}, "handled"},
		{"not handled", [2]error{errors.New("stopped"), errors.New("stopped")}, "not_handled"},
		// A retry duplicates what was handled: that is what the count warns of.
		{"partly handled", [2]error{nil, errors.New("stopped")}, "handled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, base := startSource(t, "batch = { max_events = 1 }\nresponse_timeout = \"60s\"")
			var mu sync.Mutex
			var held []component.Batch
			runEngine(t, s, func(b component.Batch) (time.Duration, bool, error) {
				mu.Lock()
				held = append(held, b)
				mu.Unlock()
				return 0, false, nil
			})
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/", strings.NewReader("1\n2\n3\n"))
			req.Header.Set("Content-Type", "application/x-ndjson")
			errc := make(chan error, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
				}
				errc <- err
			}()
			testkit.WaitFor(t, "the task to take two batches of the request", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(held) == 2
			})
			cancel() // the client goes away: the request gives up with both batches in the task
			<-errc
			testkit.WaitFor(t, "the request to be answered 503", func() bool {
				return s.requests.WithLabelValues("t1", "503").Value() == 1
			})
			for i, b := range held {
				b.Ack(c.errs[i])
			}
			handled := s.abandoned.WithLabelValues("t1", "handled").Value()
			notHandled := s.abandoned.WithLabelValues("t1", "not_handled").Value()
			want := map[string]float64{"handled": 0, "not_handled": 0}
			want[c.outcome] = 1
			if handled != want["handled"] || notHandled != want["not_handled"] {
				t.Errorf("unconfirmed: handled %v, not_handled %v; want %v for one request", handled, notHandled, want)
			}
		})
	}
}
