package file

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// decodeConfig runs the loader's path for a table written as TOML.
func decodeConfig(t testing.TB, src string) (*Config, []component.Problem) {
	t.Helper()
	cfg, p := componenttest.Decode(t, Register, component.KindSource, "file", src)
	return cfg.(*Config), p.List()
}

// fixture is a task folder with a state directory.
type fixture struct {
	t     testing.TB
	dir   string
	state string
	keys  string
}

func newFixture(t testing.TB, keys string) *fixture {
	dir := t.TempDir()
	return &fixture{t: t, dir: dir, state: filepath.Join(dir, "state"), keys: keys}
}

func (fx *fixture) path(name string) string { return filepath.Join(fx.dir, name) }

// build builds (without opening) a source from the fixture's keys.
func (fx *fixture) build() *Source {
	t := fx.t
	t.Helper()
	cfg, probs := decodeConfig(t, fx.keys)
	if len(probs) > 0 {
		t.Fatalf("config problems: %v", probs)
	}
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSource, "file")
	level := zerolog.WarnLevel
	if _, bench := t.(*testing.B); bench {
		level = zerolog.Disabled
	}
	v, err := spec.Build(cfg, component.Env{
		Task: "t1", Dir: fx.dir, StateDir: fx.state, MaxEvent: 1 << 20,
		Logger:   zerolog.New(zerolog.NewTestWriter(t)).Level(level),
		Problems: component.NewProblems("source"),
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return v.(*Source)
}

// open builds and opens a source; it is closed at the end of the test
// unless the test closes it first.
func (fx *fixture) open() *Source {
	fx.t.Helper()
	s := fx.build()
	if err := s.Open(context.Background()); err != nil {
		fx.t.Fatalf("open: %v", err)
	}
	fx.t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func closeSource(t testing.TB, s *Source) {
	t.Helper()
	if err := s.Close(context.Background()); err != nil {
		t.Fatalf("close: %v", err)
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t testing.TB, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// readAll reads a read-mode source to io.EOF, acking every batch with nil.
func readAll(t testing.TB, s *Source) []component.Batch {
	t.Helper()
	var out []component.Batch
	for {
		b, err := s.Read(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		checkBatch(t, b)
		out = append(out, b)
		b.Ack(nil)
	}
}

// readBatches reads until n messages arrived (or fails after a while),
// without acking.
func readBatches(t testing.TB, s *Source, n int) []component.Batch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []component.Batch
	got := 0
	for got < n {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("read after %d of %d messages: %v", got, n, err)
		}
		checkBatch(t, b)
		out = append(out, b)
		got += len(b.Messages)
	}
	if got != n {
		t.Fatalf("read %d messages, want %d", got, n)
	}
	return out
}

// readOne reads one batch and acks it; nil when none came within d (a
// backstop: tail-mode polls run far more often).
func readOne(t testing.TB, s *Source, d time.Duration) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b, err := s.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	checkBatch(t, b)
	b.Ack(nil)
	return datas(t, b.Messages)
}

// readN reads and acks batches until n events came (or a batch did not
// come within d), and returns them.
func readN(t testing.TB, s *Source, n int, d time.Duration) []string {
	t.Helper()
	var got []string
	for len(got) < n {
		b := readOne(t, s, d)
		if b == nil {
			break
		}
		got = append(got, b...)
	}
	return got
}

// expectQuiet checks that no batch arrives within d.
func expectQuiet(t testing.TB, s *Source, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	b, err := s.Read(ctx)
	if err == nil {
		t.Fatalf("unexpected batch: %v", datas(t, b.Messages))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read: %v", err)
	}
}

// checkBatch checks the invariants every batch must keep.
func checkBatch(t testing.TB, b component.Batch) {
	t.Helper()
	if len(b.Messages) == 0 || b.Ack == nil || b.Lane == "" {
		t.Fatalf("malformed batch: %d messages, lane %q, ack %v", len(b.Messages), b.Lane, b.Ack != nil)
	}
	for _, m := range b.Messages {
		if m.Pos.Stream != b.Lane {
			t.Fatalf("message stream %q in lane %q", m.Pos.Stream, b.Lane)
		}
		if m.Err == nil && !json.Valid(m.Payload) {
			t.Fatalf("payload is not JSON: %s", m.Payload)
		}
		if &m.Payload[0] != &m.Event[0] && string(m.Payload) != string(m.Event) {
			t.Fatalf("payload and event differ at the source")
		}
	}
}

func msgs(bs []component.Batch) []message.Message {
	var out []message.Message
	for _, b := range bs {
		out = append(out, b.Messages...)
	}
	return out
}

// event is the part of a wrapped event the tests look at.
type event struct {
	ID     string          `json:"id"`
	Source string          `json:"source"`
	Type   string          `json:"type"`
	Time   string          `json:"time"`
	CT     string          `json:"datacontenttype"`
	Data   json.RawMessage `json:"data"`
}

func parse(t testing.TB, m message.Message) event {
	t.Helper()
	var e event
	if err := json.Unmarshal(m.Payload, &e); err != nil {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	return e
}

// datas returns each message's data as text: a string's content, other
// JSON as it is, or "ERR:<raw>" for a message carrying an error.
func datas(t testing.TB, ms []message.Message) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		if m.Err != nil {
			out = append(out, "ERR:"+string(m.Payload))
			continue
		}
		e := parse(t, m)
		var s string
		if json.Unmarshal(e.Data, &s) == nil {
			out = append(out, s)
		} else {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func lines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(prefix)
		b.WriteString(itoa(i))
		b.WriteByte('\n')
	}
	return b.String()
}

func want(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, prefix+itoa(i))
	}
	return out
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func equal(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d items, want %d\n got %q\nwant %q", what, len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: item %d = %q, want %q\n got %q\nwant %q", what, i, got[i], want[i], got, want)
		}
	}
}
