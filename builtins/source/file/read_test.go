package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestConfig(t *testing.T) {
	cases := []struct {
		name, src string
		want      []string // problem substrings
	}{
		{"minimal", `path = "a.log"`, nil},
		{"full", `path = "logs/*.log"
mode = "tail"
format = "json"
start = "end"
max_event_size = "64KiB"
batch = { max_events = 10, max_bytes = "1MiB" }
poll_interval = "100ms"
rotate_wait = "1s"
concurrency = 4
order = "none"
multiline = { start_pattern = '^\S', timeout = "2s" }`, nil},
		{"missing path", ``, []string{`missing required key "path"`}},
		{"bad mode", "path = \"a\"\nmode = \"follow\"", []string{`invalid value "follow"`}},
		{"bad glob", `path = "a[.log"`, []string{"invalid glob pattern"}},
		{"bad regexp", "path = \"a\"\nmultiline = { start_pattern = '(' }", []string{"invalid regular expression"}},
		{"tiny poll", "path = \"a\"\npoll_interval = \"1ms\"", []string{"at least 10ms"}},
		{"typo", "path = \"a\"\nfromat = \"json\"", []string{`unknown key "fromat" (did you mean "format"?)`}},
		{"concurrency bounds", "path = \"a\"\nconcurrency = 33", []string{"above the maximum 32"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := decodeConfig(t, c.src)
			if len(probs) != len(c.want) {
				t.Fatalf("problems = %v; want %d", probs, len(c.want))
			}
			for i, w := range c.want {
				if !strings.Contains(probs[i].Msg, w) {
					t.Errorf("problem %d = %q; want it to contain %q", i, probs[i].Msg, w)
				}
			}
		})
	}
}

func TestSpecExampleLoads(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSource, "file")
	body := strings.TrimPrefix(spec.Example, "[source]\n")
	body = strings.Replace(body, "[source.multiline]", "[multiline]", 1)
	if _, probs := decodeConfig(t, body); len(probs) > 0 {
		t.Fatalf("example has problems: %v", probs)
	}
}

func TestReadFormats(t *testing.T) {
	content := `{"a":1}` + "\n" +
		"plain text\n" +
		`{"specversion":"1.0","id":"x","source":"s","type":"t","data":2}` + "\n" +
		`{"broken"` + "\n"
	cases := []struct {
		format string
		want   []string
	}{
		{"auto", []string{`{"a":1}`, "plain text", "2", `{"broken"`}},
		{"json", []string{`{"a":1}`, "ERR:plain text", "2", `ERR:{"broken"`}},
		{"cloudevents", []string{`ERR:{"a":1}`, "ERR:plain text", "2", `ERR:{"broken"`}},
	}
	for _, c := range cases {
		t.Run(c.format, func(t *testing.T) {
			fx := newFixture(t, "path = \"in.jsonl\"\nformat = \""+c.format+"\"")
			writeFile(t, fx.path("in.jsonl"), content)
			s := fx.open()
			ms := msgs(readAll(t, s))
			equal(t, "data", datas(t, ms), c.want)
			offs := []int64{0, 8, 19, 83}
			for i, m := range ms {
				if m.Pos.Offset != offs[i] || m.Pos.Partition != 0 || m.Pos.Stream != fx.path("in.jsonl") {
					t.Errorf("message %d position = %+v", i, m.Pos)
				}
				if m.Err != nil {
					if !errors.Is(m.Err, lineformat.ErrDecode) || !strings.Contains(m.Err.Error(), "in.jsonl line "+itoa(i+1)+":") {
						t.Errorf("message %d error = %v; want a decode error naming the file and line %d", i, m.Err, i+1)
					}
					if string(m.Event) != string(m.Payload) {
						t.Errorf("message %d: event %q differs from payload %q", i, m.Event, m.Payload)
					}
				}
				if m.Time.IsZero() {
					t.Errorf("message %d has no time", i)
				}
			}
		})
	}
}

func TestReadEventShapeAndStableIDs(t *testing.T) {
	fx := newFixture(t, `path = "in.jsonl"`)
	writeFile(t, fx.path("in.jsonl"), "one\ntwo\n")
	var ids [2][]string
	for run := range 2 {
		s := fx.open()
		for _, m := range msgs(readAll(t, s)) {
			e := parse(t, m)
			ids[run] = append(ids[run], e.ID)
			if e.Source != "file://"+fx.path("in.jsonl") || e.Type != EventType || e.CT != "text/plain" || e.Time == "" {
				t.Errorf("event attributes: %+v", e)
			}
		}
		closeSource(t, s)
	}
	p := fx.path("in.jsonl")
	equal(t, "ids of run 1", ids[0], []string{p + "-0-0", p + "-0-4"})
	equal(t, "ids of run 2", ids[1], ids[0])
}

func TestReadLineEndings(t *testing.T) {
	cases := []struct {
		name, content string
		want          []string
	}{
		{"crlf", "a\r\n{\"b\":1}\r\n", []string{"a", `{"b":1}`}},
		{"no final newline", "a\nlast", []string{"a", "last"}},
		{"blank lines skipped", "\n\na\n   \n\t\r\nb\n\n", []string{"a", "b"}},
		{"only blank", "\n\n \n", nil},
		{"empty file", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t, `path = "in.txt"`)
			writeFile(t, fx.path("in.txt"), c.content)
			s := fx.open()
			equal(t, "data", datas(t, msgs(readAll(t, s))), c.want)
		})
	}
}

func TestReadOverSize(t *testing.T) {
	fx := newFixture(t, "path = \"in.txt\"\nmax_event_size = \"100\"\nformat = \"json\"")
	huge := strings.Repeat("y", 3<<20)
	at100 := strings.Repeat("z", 100)
	writeFile(t, fx.path("in.txt"), "1\n"+strings.Repeat("x", 101)+"\n"+huge+"\n"+`"`+at100[:98]+`"`+"\r\n"+"1\n")
	s := fx.open()
	ms := msgs(readAll(t, s))
	if len(ms) != 5 {
		t.Fatalf("got %d messages: %q", len(ms), datas(t, ms))
	}
	if ms[0].Err != nil || ms[3].Err != nil || ms[4].Err != nil {
		t.Fatalf("lines within the limit failed: %v, %v, %v", ms[0].Err, ms[3].Err, ms[4].Err)
	}
	for i, size := range map[int]int{1: 101, 2: len(huge)} {
		m := ms[i]
		if !errors.Is(m.Err, lineformat.ErrTooLarge) || !strings.Contains(m.Err.Error(), itoa(size)+" bytes") {
			t.Errorf("message %d: error = %v; want ErrTooLarge with its size", i, m.Err)
		}
		if len(m.Payload) > 101 {
			t.Errorf("message %d: raw payload of %d bytes; want it cut to the limit", i, len(m.Payload))
		}
	}
	if ms[4].Pos.Offset != int64(2+102+len(huge)+1+100+2) {
		t.Errorf("offset after a huge line = %d", ms[4].Pos.Offset)
	}
}

func TestReadGlob(t *testing.T) {
	fx := newFixture(t, `path = "logs/*.log"`)
	os.MkdirAll(fx.path("logs"), 0o755)
	writeFile(t, fx.path("logs/b.log"), "b1\nb2\n")
	writeFile(t, fx.path("logs/a.log"), "a1\n")
	writeFile(t, fx.path("logs/skip.txt"), "no\n")
	os.MkdirAll(fx.path("logs/dir.log"), 0o755)
	s := fx.open()
	bs := readAll(t, s)
	lanes := map[string][]string{}
	for _, b := range bs {
		lanes[b.Lane] = append(lanes[b.Lane], datas(t, b.Messages)...)
	}
	equal(t, "a.log", lanes[fx.path("logs/a.log")], []string{"a1"})
	equal(t, "b.log", lanes[fx.path("logs/b.log")], []string{"b1", "b2"})
	if len(lanes) != 2 {
		t.Errorf("lanes: %v", lanes)
	}
}

func TestReadMissing(t *testing.T) {
	for _, path := range []string{"nope.log", "*.nope"} {
		fx := newFixture(t, `path = "`+path+`"`)
		s := fx.build()
		err := s.Open(context.Background())
		if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), filepath.Base(strings.TrimPrefix(path, "*"))) {
			t.Errorf("%s: Open = %v; want a task-permanent error naming it", path, err)
		}
		closeSource(t, s)
	}
}

func TestReadBatchBounds(t *testing.T) {
	fx := newFixture(t, "path = \"in.txt\"\nbatch = { max_events = 3, max_bytes = \"1MiB\" }")
	writeFile(t, fx.path("in.txt"), lines("l", 0, 10))
	s := fx.open()
	bs := readAll(t, s)
	if len(bs) != 4 || len(bs[0].Messages) != 3 || len(bs[3].Messages) != 1 {
		t.Fatalf("batches of %d", len(bs))
	}
	fx = newFixture(t, "path = \"in.txt\"\nbatch = { max_bytes = \"1\" }")
	writeFile(t, fx.path("in.txt"), lines("l", 0, 3))
	s = fx.open()
	if bs := readAll(t, s); len(bs) != 3 {
		t.Fatalf("max_bytes = 1: %d batches, want one event each", len(bs))
	}
}

func TestReadMultiline(t *testing.T) {
	fx := newFixture(t, "path = \"app.log\"\nmax_event_size = \"60\"\n[multiline]\nstart_pattern = '^\\d{4}-'")
	writeFile(t, fx.path("app.log"), "preamble\n"+
		"2026-01-01 error\r\n  at a()\n\n  at b()\n"+
		"2026-01-02 ok\n"+
		"2026-01-03 long\n"+strings.Repeat("  at x()\n", 10)+
		"2026-01-04 last\n  at z()")
	s := fx.open()
	ms := msgs(readAll(t, s))
	d := datas(t, ms)
	if len(d) != 5 {
		t.Fatalf("got %q", d)
	}
	equal(t, "events", []string{d[0], d[1], d[2], d[4]}, []string{"preamble", "2026-01-01 error\n  at a()\n\n  at b()", "2026-01-02 ok", "2026-01-04 last\n  at z()"})
	if !errors.Is(ms[3].Err, lineformat.ErrTooLarge) || !strings.HasPrefix(string(ms[3].Payload), "2026-01-03 long\n  at x()") || len(ms[3].Payload) > 60 {
		t.Errorf("over-size multiline event: %v %q", ms[3].Err, ms[3].Payload)
	}
	if !strings.Contains(ms[3].Err.Error(), "line 7:") {
		t.Errorf("over-size event error should name line 7: %v", ms[3].Err)
	}
	if ms[1].Pos.Offset != 9 {
		t.Errorf("multiline event offset = %d, want 9", ms[1].Pos.Offset)
	}
}

// TestReadResume: an interrupted read-mode run resumes after its last
// acknowledged batch; a completed run removes its checkpoint, so the next
// run reads everything again.
func TestReadResume(t *testing.T) {
	fx := newFixture(t, "path = \"in.txt\"\nbatch = { max_events = 2 }")
	writeFile(t, fx.path("in.txt"), lines("l", 0, 10))
	s := fx.open()
	bs := readBatches(t, s, 6) // three batches
	bs[0].Ack(nil)
	bs[1].Ack(nil)
	closeSource(t, s) // the third was never acknowledged

	s = fx.open()
	equal(t, "resumed", datas(t, msgs(readAll(t, s))), want("l", 4, 10))
	closeSource(t, s)
	if _, err := os.Stat(filepath.Join(fx.state, "t1", "source.file.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("checkpoint of a completed run still there: %v", err)
	}
	s = fx.open()
	equal(t, "after completion", datas(t, msgs(readAll(t, s))), want("l", 0, 10))
}

// TestNackRewinds: a failed batch is not committed, and the same source
// instance reads it again (the task was blocked and resumed).
func TestNackRewinds(t *testing.T) {
	fx := newFixture(t, "path = \"in.txt\"\nbatch = { max_events = 2 }")
	writeFile(t, fx.path("in.txt"), lines("l", 0, 6))
	s := fx.open()
	bs := readBatches(t, s, 6)
	bs[0].Ack(nil)
	bs[1].Ack(errors.New("blocked"))
	bs[2].Ack(errors.New("blocked"))
	equal(t, "re-read", datas(t, msgs(readAll(t, s))), want("l", 2, 6))
	closeSource(t, s)
	if _, err := os.Stat(filepath.Join(fx.state, "t1", "source.file.json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("run completed after the rewind, checkpoint should be gone: %v", err)
	}
}
