package redis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/builtins/internal/tlstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func openSink(t *testing.T, src string) *Sink {
	t.Helper()
	s := buildSink(t, src)
	if err := s.Open(redistest.Ctx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func record(id, payload string) message.Message {
	ev := fmt.Sprintf(`{"specversion":"1.0","id":%q,"data":{"user":"u-%s","region":"eu"}}`, id, id)
	return message.Message{Payload: []byte(payload), Event: []byte(ev), Pos: message.Position{Stream: "in", Offset: 1}}
}

func TestStreamModeFieldsAndTrim(t *testing.T) {
	srv := redistest.Local(t)
	stream := srv.Key(t, "s")
	s := openSink(t, fmt.Sprintf(`url = %q
stream = "%s:${region}"
field = "body"
fields = { id = "${id}", fixed = "f" }
variables = { region = "$.data.region", id = "$.id" }
max_len = 10
`, srv.URL, stream))
	msgs := make([]message.Message, 500)
	for i := range msgs {
		msgs[i] = record(fmt.Sprint(i), fmt.Sprintf(`{"n":%d}`, i))
	}
	if err := s.Write(redistest.Ctx(t), msgs); err != nil {
		t.Fatal(err)
	}
	es := srv.Entries(t, stream+":eu")
	// Trimming is approximate: whole nodes of about 100 entries go.
	if len(es) >= 500 || len(es) < 10 {
		t.Fatalf("the stream holds %d entries after max_len = 10", len(es))
	}
	last := es[len(es)-1].Values
	if last["body"] != `{"n":499}` || last["id"] != "499" || last["fixed"] != "f" || len(last) != 3 {
		t.Fatalf("last entry %v", last)
	}
}

func TestHashMode(t *testing.T) {
	srv := redistest.Local(t)
	prefix := srv.Key(t, "user")
	s := openSink(t, fmt.Sprintf(`url = %q
mode = "hash"
key = "%s:${user}"
variables = { user = "$.data.user" }
ttl = "1h"
`, srv.URL, prefix))
	ctx := redistest.Ctx(t)
	err := s.Write(ctx, []message.Message{
		record("1", `{"name":"Ann","tags":["a","b"], "age": 41, "esc\u00e9":"caf\u00e9\n", "nested":{"x":null}}`),
		record("2", `{"name":"Bob"}`),
		record("3", `[1,2]`),
		record("4", `{}`),
		record("5", `{"name": "broken"`),
	})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 2 || component.ClassOf(re.Errs[2]) != component.ClassEventPermanent || component.ClassOf(re.Errs[4]) != component.ClassEventPermanent {
		t.Fatalf("Write: %v", err)
	}
	if !strings.Contains(re.Errs[2].Error(), "not one (a transform can shape it)") {
		t.Fatalf("%v", re.Errs[2])
	}
	h := srv.HGetAll(t, prefix+":u-1")
	want := map[string]string{"name": "Ann", "tags": `["a","b"]`, "age": "41", "escé": "café\n", "nested": `{"x":null}`}
	if fmt.Sprint(h) != fmt.Sprint(want) {
		t.Fatalf("hash\n got %v\nwant %v", h, want)
	}
	if ttl := time.Duration(srv.Int(t, "PTTL", prefix+":u-1")) * time.Millisecond; ttl < 59*time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
	if n := srv.Int(t, "EXISTS", prefix+":u-4"); n != 0 {
		t.Fatal("an empty object wrote a key")
	}
	// HSET merges; JSON null deletes.
	if err := s.Write(ctx, []message.Message{record("1", `{"age":42}`), record("2", ` null `)}); err != nil {
		t.Fatal(err)
	}
	if h := srv.HGetAll(t, prefix+":u-1"); h["age"] != "42" || h["name"] != "Ann" {
		t.Fatalf("merged hash %v", h)
	}
	if n := srv.Int(t, "EXISTS", prefix+":u-2"); n != 0 {
		t.Fatal("null did not delete the key")
	}
}

func TestSetMode(t *testing.T) {
	srv := redistest.Local(t)
	prefix := srv.Key(t, "kv")
	s := openSink(t, fmt.Sprintf("url = %q\nmode = \"set\"\nkey = \"%s:${id}\"\nvariables = { id = \"$.id\" }\nttl = \"90s\"\n", srv.URL, prefix))
	ctx := redistest.Ctx(t)
	if err := s.Write(ctx, []message.Message{record("a", `{"v":1}`), record("b", "plain text")}); err != nil {
		t.Fatal(err)
	}
	if v := srv.String(t, "GET", prefix+":a"); v != `{"v":1}` {
		t.Fatalf("%q", v)
	}
	if ttl := time.Duration(srv.Int(t, "PTTL", prefix+":b")) * time.Millisecond; ttl <= 80*time.Second || ttl > 90*time.Second {
		t.Fatalf("ttl %v", ttl)
	}
	if err := s.Write(ctx, []message.Message{record("a", "null")}); err != nil {
		t.Fatal(err)
	}
	if n := srv.Int(t, "EXISTS", prefix+":a"); n != 0 {
		t.Fatal("null did not delete the key")
	}
	// A key rendered empty fails its record only.
	s2 := openSink(t, fmt.Sprintf("url = %q\nmode = \"set\"\nkey = \"${nothing}\"\nvariables = { nothing = \"$.data.missing\" }\n", srv.URL))
	err := s2.Write(ctx, []message.Message{record("a", "1")})
	var re *component.RecordErrors
	if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassEventPermanent || !strings.Contains(re.Errs[0].Error(), "rendered an empty key") {
		t.Fatalf("Write: %v", err)
	}
}

func TestWrongTypeFailsTheRecord(t *testing.T) {
	srv := redistest.Local(t)
	prefix := srv.Key(t, "wt")
	ctx := redistest.Ctx(t)
	srv.Must(t, "SET", prefix+":str", "x")
	s := openSink(t, fmt.Sprintf("url = %q\nstream = \"%s:${id}\"\nvariables = { id = \"$.id\" }\n", srv.URL, prefix))
	err := s.Write(ctx, []message.Message{record("ok", "1"), record("str", "2")})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "WRONGTYPE") {
		t.Fatalf("Write: %v", err)
	}
	if len(srv.Entries(t, prefix+":ok")) != 1 {
		t.Fatal("the good record was not written")
	}
}

func TestBadCredentials(t *testing.T) {
	auth := redistest.AuthServer(t, "right")
	s := buildSink(t, fmt.Sprintf("url = %q\npassword = \"wrong\"\nstream = \"s\"\n", auth.URL))
	err := s.Open(redistest.Ctx(t))
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "refused the credentials") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("Open: %v", err)
	}
	s = openSink(t, fmt.Sprintf("url = %q\npassword = \"right\"\nstream = \"s\"\n", auth.URL))
	if err := s.Write(redistest.Ctx(t), []message.Message{record("a", "1")}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigProblems(t *testing.T) {
	for src, want := range map[string]string{
		`mode = "stream"`:                              `sink: mode = "stream" needs the stream key`,
		"mode = \"hash\"":                              `sink: mode = "hash" needs the key key`,
		"stream = \"s\"\nttl = \"1m\"":                 `sink.ttl: ttl is used only with mode = "hash" or "set"`,
		"mode = \"set\"\nkey = \"k\"\nmax_len = 5":     `sink.max_len: max_len is used only with mode = "stream"`,
		"stream = \"s\"\nfields = { payload = \"x\" }": `sink.fields.payload: field "payload" holds the payload`,
		"stream = \"s:${nope}\"":                       `sink.stream: unknown variable "nope"`,
	} {
		_, p := componenttest.Decode(t, Register, component.KindSink, "redis", "url = \"redis://127.0.0.1:6379/0\"\n"+src)
		var msgs []string
		for _, pr := range p.List() {
			msgs = append(msgs, pr.PathString()+": "+pr.Msg)
		}
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0], want) {
			t.Errorf("%s:\n got %q\nwant %s", src, msgs, want)
		}
	}
	_, p := componenttest.Decode(t, Register, component.KindSink, "redis", "url = \"http://x\"\nstream = \"s\"\n")
	if p.Len() != 1 || !strings.Contains(p.List()[0].Msg, "invalid Redis URL") {
		t.Fatalf("%v", p.List())
	}
}

// TestStringAtIsAString checks stringAt's interface values: each holds its
// own string, type switches and comparisons see a string, and making one
// allocates nothing.
func TestStringAtIsAString(t *testing.T) {
	ab := &argBuf{}
	a, b := ab.text([]byte("alpha")), ab.text([]byte("beta"))
	for i := range 100 { // texts grows: the earlier values keep theirs
		ab.text(fmt.Appendf(nil, "x%d", i))
	}
	if s, ok := a.(string); !ok || s != "alpha" || b != any("beta") {
		t.Fatalf("got %#v and %#v", a, b)
	}
	ab.reset()
	ab.texts = make([]string, 0, 8)
	buf := []byte("payload")
	if n := testing.AllocsPerRun(100, func() {
		ab.texts = ab.texts[:0]
		if ab.text(buf) != any("payload") {
			t.Fatal("wrong value")
		}
	}); n != 0 {
		t.Fatalf("%v allocations per argument", n)
	}
}

// TestTLS writes over TLS to a redis-server that accepts only TLS, with the
// server's CA from ca_file and, where the server asks for one, a client
// certificate; a client that does not trust the server's certificate, or
// has no certificate where one is required, fails to start with a message
// that says so.
func TestTLS(t *testing.T) {
	for _, clientAuth := range []bool{false, true} {
		t.Run(fmt.Sprintf("client_auth=%v", clientAuth), func(t *testing.T) {
			srv, files := redistest.TLSServer(t, clientAuth)
			tlsTable := fmt.Sprintf("[tls]\nca_file = %q\n", files.CA)
			if clientAuth {
				tlsTable += fmt.Sprintf("cert_file = %q\nkey_file = %q\n", files.ClientCert, files.ClientKey)
			}
			s := openSink(t, fmt.Sprintf("url = %q\nstream = \"s\"\n%s", srv.URL, tlsTable))
			for round := range 2 { // the second round reuses the pooled TLS connection
				if err := s.Write(redistest.Ctx(t), []message.Message{record(fmt.Sprint(round), fmt.Sprint("p", round))}); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
			}
			es := srv.Entries(t, "s")
			if len(es) != 2 || es[0].Values["payload"] != "p0" || es[1].Values["payload"] != "p1" {
				t.Fatalf("entries %+v", es)
			}

			other, err := tlstest.Generate(t.TempDir(), false)
			if err != nil {
				t.Fatal(err)
			}
			bad := map[string]string{"an unknown CA": fmt.Sprintf("[tls]\nca_file = %q\n", other.CA)}
			if clientAuth {
				bad["no client certificate"] = fmt.Sprintf("[tls]\nca_file = %q\n", files.CA)
			}
			for name, table := range bad {
				s := buildSink(t, fmt.Sprintf("url = %q\nstream = \"s\"\ndial_timeout = \"5s\"\n%s", srv.URL, table))
				err := s.Open(redistest.Ctx(t))
				_ = s.Close(context.Background())
				switch {
				case err == nil:
					t.Fatalf("%s: Open succeeded", name)
				case name == "an unknown CA" && (component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "set tls.ca_file")):
					t.Fatalf("%s: Open: %v (class %s), want task-permanent naming tls.ca_file", name, err, component.ClassOf(err))
				}
				// Without a client certificate the server resets the
				// connection, which a client cannot tell from a network
				// failure: it is retried.
			}
		})
	}
}

// TestJSONFieldTemplateFailsItsRecordOnly: a stream field whose template is
// a JSON template renders JSON or fails. An event it cannot render (the path
// finds nothing, or a string that is not one JSON value) failed nothing: the
// entry was written with an empty field. That record now fails alone,
// event-permanent, naming the field; the others are written.
func TestJSONFieldTemplateFailsItsRecordOnly(t *testing.T) {
	srv := redistest.Local(t)
	stream := srv.Key(t, "jf")
	s := openSink(t, fmt.Sprintf(`url = %q
stream = %q
fields = { meta = '{"amount": ${amt}}' }
variables = { amt = "$.data.amount" }
`, srv.URL, stream))
	ev := func(data string) message.Message {
		return message.Message{Payload: []byte(`{}`), Event: []byte(`{"id":"x","data":` + data + `}`), Pos: message.Position{Stream: "in", Offset: 1}}
	}
	err := s.Write(redistest.Ctx(t), []message.Message{ev(`{"amount":12.5}`), ev(`{}`), ev(`{"amount":"12 EUR"}`), ev(`{"amount":{"v":3}}`)})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 2 || re.Errs[1] == nil || re.Errs[2] == nil {
		t.Fatalf("Write = %v; want records 1 and 2 alone failed", err)
	}
	for _, i := range []int{1, 2} {
		if c := component.ClassOf(re.Errs[i]); c != component.ClassEventPermanent || !strings.Contains(re.Errs[i].Error(), `field "meta" template`) {
			t.Fatalf("record %d: %s %v; want event_permanent, naming the field", i, c, re.Errs[i])
		}
	}
	es := srv.Entries(t, stream)
	if len(es) != 2 || es[0].Values["meta"] != `{"amount": 12.5}` || es[1].Values["meta"] != `{"amount": {"v":3}}` {
		t.Fatalf("the stream holds %v; want records 0 and 3 with their meta", es)
	}
}

// TestFieldTemplateOutputIsBounded: a field template repeating a value had
// no bound on what it rendered for one event. A render over 4 ×
// max_event_size + 64 KiB (the task's limit reaches the sink as
// Env.MaxEvent) fails that record alone, event-permanent, naming the field,
// the size reached and the limit; the others are written.
func TestFieldTemplateOutputIsBounded(t *testing.T) {
	srv := redistest.Local(t)
	stream := srv.Key(t, "big")
	env := componenttest.Env(t, zerolog.WarnLevel, "sink")
	env.MaxEvent = 1024 // a rendered template may hold 4 × 1024 + 64 KiB = 69,632 bytes
	s := componenttest.Build(t, Register, component.KindSink, "redis", fmt.Sprintf(`url = %q
stream = %q
fields = { copies = "${a}${a}${a}${a}${a}" }
variables = { a = "$.a" }
`, srv.URL, stream), env).(*Sink)
	if err := s.Open(redistest.Ctx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	ev := func(n int) message.Message {
		return message.Message{Payload: []byte(`{}`), Event: []byte(`{"a":"` + strings.Repeat("x", n) + `"}`), Pos: message.Position{Stream: "in", Offset: int64(n)}}
	}
	err := s.Write(redistest.Ctx(t), []message.Message{ev(13000), ev(15000)})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || re.Errs[1] == nil || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
		t.Fatalf("Write = %v; want record 1 alone failed, event_permanent", err)
	}
	if want := `field "copies" template: template: the output reached 75000 bytes after ${a}, over the limit of 69632 bytes`; !strings.Contains(re.Errs[1].Error(), want) {
		t.Fatalf("%v; want it to say %q", re.Errs[1], want)
	}
	if es := srv.Entries(t, stream); len(es) != 1 || len(es[0].Values["copies"]) != 65000 {
		t.Fatalf("the stream holds %d entries; want record 0 with its 65,000 bytes", len(es))
	}
}

// In hash mode with a ttl, a record whose key holds another type fails
// alone (WRONGTYPE) and leaves that key as it was: the PEXPIRE that follows
// the HSET ran though the HSET was refused, so the other key (a string the
// application keeps there) expired after ttl.
func TestHashModeWrongTypeLeavesTheKeyWithoutExpiry(t *testing.T) {
	srv := redistest.Local(t)
	prefix := srv.Key(t, "hwt")
	ctx := redistest.Ctx(t)
	srv.Must(t, "SET", prefix+":u-str", "keep me")
	s := openSink(t, fmt.Sprintf("url = %q\nmode = \"hash\"\nkey = \"%s:${user}\"\nvariables = { user = \"$.data.user\" }\nttl = \"1h\"\n", srv.URL, prefix))
	err := s.Write(ctx, []message.Message{record("ok", `{"a":1}`), record("str", `{"a":2}`), record("ok2", `{"a":3}`)})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "WRONGTYPE") {
		t.Fatalf("Write: %v", err)
	}
	if ttl := srv.Int(t, "PTTL", prefix+":u-str"); ttl != -1 {
		t.Fatalf("the string the refused record named has a ttl of %d ms, want none (-1)", ttl)
	}
	for _, k := range []string{"u-ok", "u-ok2"} {
		if ttl := time.Duration(srv.Int(t, "PTTL", prefix+":"+k)) * time.Millisecond; ttl < 59*time.Minute {
			t.Fatalf("%s: ttl %v, want about 1h", k, ttl)
		}
	}
}
