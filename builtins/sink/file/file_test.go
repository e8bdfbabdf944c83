package file

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// decodeConfig runs the loader's path for a table written as TOML.
func decodeConfig(t testing.TB, src string) (*Config, []component.Problem) {
	t.Helper()
	cfg, p := componenttest.Decode(t, Register, component.KindSink, "file", src)
	return cfg.(*Config), p.List()
}

// openSink builds and opens a sink in dir from TOML keys.
func openSink(t testing.TB, dir, keys string, shared *component.Shared) *Sink {
	t.Helper()
	cfg, probs := decodeConfig(t, keys)
	if len(probs) > 0 {
		t.Fatalf("config problems: %v", probs)
	}
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "file")
	v, err := spec.Build(cfg, component.Env{
		Task: "t1", Dir: dir, MaxEvent: 1 << 20, Shared: shared,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	s := v.(*Sink)
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func payloads(ps ...string) []message.Message {
	out := make([]message.Message, len(ps))
	for i, p := range ps {
		out[i] = message.Message{Payload: []byte(p)}
	}
	return out
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil
	}
	if data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}
	return strings.Split(string(data[:len(data)-1]), "\n")
}

func equal(t testing.TB, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\x00") != strings.Join(want, "\x00") || len(got) != len(want) {
		t.Fatalf("%s:\n got %q\nwant %q", what, got, want)
	}
}

func TestConfig(t *testing.T) {
	cfg, probs := decodeConfig(t, `path = "out.jsonl"`)
	if len(probs) > 0 || cfg.Fsync != "batch" || cfg.MaxFiles != 5 || cfg.MaxSize != 0 || cfg.FileMode != "0644" || !cfg.CreateDirs {
		t.Fatalf("defaults: %+v %v", cfg, probs)
	}
	cases := []struct{ src, want string }{
		{"path = \"a\"\nfile_mode = \"0999\"", "invalid file mode"},
		{"path = \"a\"\nfile_mode = \"rw-r--r--\"", "invalid file mode"},
		{"path = \"a\"\nmax_files = 0", "below the minimum 1"},
		{"path = \"a\"\nfsync = \"always\"", `invalid value "always"`},
		{"path = \"a\"\nmax_size = \"lots\"", "invalid size"},
		{"", `missing required key "path"`},
	}
	for _, c := range cases {
		_, probs := decodeConfig(t, c.src)
		if len(probs) != 1 || !strings.Contains(probs[0].Msg, c.want) {
			t.Errorf("%q: problems %v; want one containing %q", c.src, probs, c.want)
		}
	}
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "file")
	if _, probs := decodeConfig(t, strings.TrimPrefix(spec.Example, "[sink]\n")); len(probs) > 0 {
		t.Errorf("spec example: %v", probs)
	}
}

func TestWriteLines(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, `path = "out/events.jsonl"`, nil)
	err := s.Write(context.Background(), payloads(
		`{"a":1}`,
		"{ \"a\" :\n [1, 2],\r\n \"s\": \"x  y\\n\" }\n",
		"  7 ",
		"plain text",
		"two\nlines",
		"",
		`{"broken":`,
		"broken\n{",
	))
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 2 || re.Errs[4] == nil || re.Errs[7] == nil {
		t.Fatalf("Write = %v; want RecordErrors for records 4 and 7", err)
	}
	for i, e := range re.Errs {
		if component.ClassOf(e) != component.ClassEventPermanent || !strings.Contains(e.Error(), "newline") {
			t.Errorf("record %d: %v (class %v); want an event-permanent newline error", i, e, component.ClassOf(e))
		}
	}
	equal(t, "file", readLines(t, filepath.Join(dir, "out/events.jsonl")), []string{
		`{"a":1}`, `{"a":[1,2],"s":"x  y\n"}`, `7`, `plain text`, ``, `{"broken":`,
	})
	// Appends to what is there, across sinks.
	s.Close(context.Background())
	s = openSink(t, dir, `path = "out/events.jsonl"`, nil)
	if err := s.Write(context.Background(), payloads(`"more"`)); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, filepath.Join(dir, "out/events.jsonl")); len(got) != 7 || got[6] != `"more"` {
		t.Fatalf("after reopen: %q", got)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, "path = \"r.log\"\nmax_size = \"100\"\nmax_files = 2\nfsync = \"never\"", nil)
	var all []string
	for i := range 12 {
		rec := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", 10)) // 28 bytes + newline
		all = append(all, rec)
		if err := s.Write(context.Background(), payloads(rec)); err != nil {
			t.Fatal(err)
		}
	}
	// 3 records fit in 100 bytes: 12 records made 4 files, the oldest deleted.
	p := filepath.Join(dir, "r.log")
	equal(t, "r.log.2", readLines(t, p+".2"), all[3:6])
	equal(t, "r.log.1", readLines(t, p+".1"), all[6:9])
	equal(t, "r.log", readLines(t, p), all[9:12])
	if _, err := os.Stat(p + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("r.log.3 exists beyond max_files: %v", err)
	}

	// Rotation inside one batch, and a record larger than max_size alone.
	big := `"` + strings.Repeat("b", 150) + `"`
	if err := s.Write(context.Background(), payloads(`1`, big, `2`)); err != nil {
		t.Fatal(err)
	}
	equal(t, "before big", readLines(t, p+".2"), append(append([]string(nil), all[9:12]...), "1"))
	equal(t, "big alone", readLines(t, p+".1"), []string{big})
	equal(t, "after big", readLines(t, p), []string{"2"})
}

// TestConcurrentWrites: several workers write at once (fsync shared,
// rotation happening): no line is torn or lost and each worker's records
// keep their order.
func TestConcurrentWrites(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, "path = \"c.log\"\nmax_size = \"16KiB\"\nmax_files = 1000", nil)
	const workers, writes, per = 6, 100, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range writes {
				var ms []message.Message
				for j := range per {
					ms = append(ms, message.Message{Payload: fmt.Appendf(nil, `{"w": %d, "seq": %d}`, w, i*per+j)})
				}
				if err := s.Write(context.Background(), ms); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s.Close(context.Background())
	files, _ := filepath.Glob(filepath.Join(dir, "c.log*"))
	if len(files) < 3 {
		t.Fatalf("expected rotation, got files %v", files)
	}
	// Oldest first: c.log.N .. c.log.1, then c.log.
	next := map[int]int{}
	total := 0
	for i := len(files) - 1; i >= 0; i-- {
		name := filepath.Join(dir, "c.log")
		if i > 0 {
			name = fmt.Sprintf("%s.%d", name, i)
		}
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var rec struct{ W, Seq int }
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("%s: torn line %q", name, sc.Text())
			}
			if rec.Seq != next[rec.W] {
				t.Fatalf("worker %d: record %d after %d", rec.W, rec.Seq, next[rec.W]-1)
			}
			next[rec.W]++
			total++
		}
		f.Close()
		if fi, _ := os.Stat(name); fi.Size() > 16<<10 {
			t.Errorf("%s is %d bytes, over max_size", name, fi.Size())
		}
	}
	if total != workers*writes*per {
		t.Fatalf("%d records, want %d", total, workers*writes*per)
	}
}

func TestSharedFile(t *testing.T) {
	dir := t.TempDir()
	shared := component.NewShared()
	a := openSink(t, dir, `path = "dlq.jsonl"`, shared)
	b := openSink(t, dir, `path = "./dlq.jsonl"`, shared)
	if a.w != b.w {
		t.Fatal("two sinks of one process on the same file should share its writer")
	}
	a.Write(context.Background(), payloads(`"a"`))
	b.Write(context.Background(), payloads(`"b"`))
	a.Close(context.Background())
	if err := b.Write(context.Background(), payloads(`"c"`)); err != nil {
		t.Fatalf("write after the other sink closed: %v", err)
	}
	equal(t, "shared", readLines(t, filepath.Join(dir, "dlq.jsonl")), []string{`"a"`, `"b"`, `"c"`})

	cfg, _ := decodeConfig(t, "path = \"dlq.jsonl\"\nfsync = \"never\"")
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "file")
	v, _ := spec.Build(cfg, component.Env{Dir: dir, Shared: shared, Logger: zerolog.Nop()})
	err := v.(*Sink).Open(context.Background())
	if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "different settings") {
		t.Fatalf("conflicting settings: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	cfg, _ := decodeConfig(t, "path = \"missing/out.jsonl\"\ncreate_dirs = false")
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSink, "file")
	v, _ := spec.Build(cfg, component.Env{Dir: dir, Logger: zerolog.Nop()})
	err := v.(*Sink).Open(context.Background())
	if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "missing/out.jsonl") {
		t.Fatalf("Open without the folder = %v; want a task-permanent error naming the file", err)
	}
	cfg, _ = decodeConfig(t, `path = "."`)
	v, _ = spec.Build(cfg, component.Env{Dir: dir, Logger: zerolog.Nop()})
	if err := v.(*Sink).Open(context.Background()); err == nil || component.ClassOf(err) != component.ClassTaskPermanent {
		t.Fatalf("Open of a directory = %v", err)
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	openSink(t, dir, "path = \"secret.jsonl\"\nfile_mode = \"0600\"", nil)
	fi, err := os.Stat(filepath.Join(dir, "secret.jsonl"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestWriteDoesNotRetain(t *testing.T) {
	dir := t.TempDir()
	s := openSink(t, dir, `path = "o.jsonl"`, nil)
	ms := payloads(`{"x":1}`)
	s.Write(context.Background(), ms)
	ms[0].Payload[2] = 'y'
	s.Write(context.Background(), payloads(`2`))
	equal(t, "file", readLines(t, filepath.Join(dir, "o.jsonl")), []string{`{"x":1}`, `2`})
}

// TestTornTailCutOnOpen: a crash can cut a write short and leave the file
// ending in half a line; the next run removes it (its records were never
// acknowledged, so they come again) instead of running on from it.
func TestTornTailCutOnOpen(t *testing.T) {
	for _, tc := range []struct{ name, before, want string }{
		{"whole lines", "{\"a\":1}\n", "{\"a\":1}\n{\"b\":2}\n"},
		{"torn last line", "{\"a\":1}\n{\"a\":2,\"x\":", "{\"a\":1}\n{\"b\":2}\n"},
		{"only a torn line", "{\"a\":", "{\"b\":2}\n"},
		{"torn line longer than a read", "{\"a\":1}\n" + strings.Repeat("x", 200<<10), "{\"a\":1}\n{\"b\":2}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.jsonl")
			if err := os.WriteFile(path, []byte(tc.before), 0o644); err != nil {
				t.Fatal(err)
			}
			s := openSink(t, dir, `path = "out.jsonl"`, nil)
			if err := s.Write(context.Background(), payloads(`{"b":2}`)); err != nil {
				t.Fatal(err)
			}
			if data, _ := os.ReadFile(path); string(data) != tc.want {
				t.Fatalf("file holds %q, want %q", data, tc.want)
			}
		})
	}
}
