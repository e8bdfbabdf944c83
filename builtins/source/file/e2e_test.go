package file_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	sinkfile "github.com/sluicehq/sluice/builtins/sink/file"
	srcfile "github.com/sluicehq/sluice/builtins/source/file"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// runTask loads a task file through the real loader and runs it with the
// real engine until it ends or ctx ends.
func runTask(t *testing.T, ctx context.Context, dir, toml string) (engine.Stats, error) {
	t.Helper()
	r := component.NewRegistry()
	srcfile.Register(r)
	sinkfile.Register(r)
	lg := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	l := &config.Loader{Registry: r, StateDir: filepath.Join(dir, "state"), Shared: component.NewShared(), Logger: lg}
	file := filepath.Join(dir, "task.toml")
	task, err := l.Load(file, []byte(toml))
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	run := runner.New(task, engine.Options{Logger: lg, ShutdownTimeout: 5 * time.Second})
	err = run.Run(ctx)
	return run.Stats(), err
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// TestEngineReadToFile runs file -> file in read mode with a dead-letter
// file: every good line is delivered once, the bad one is dead-lettered at
// stage decode, and the completed run leaves no checkpoint behind.
func TestEngineReadToFile(t *testing.T) {
	dir := t.TempDir()
	var in strings.Builder
	for i := range 1000 {
		if i == 500 {
			in.WriteString("not json\n")
		}
		fmt.Fprintf(&in, `{"n": %d}`+"\n", i)
	}
	os.WriteFile(filepath.Join(dir, "in.jsonl"), []byte(in.String()), 0o644)
	task := `name = "read-e2e"
max_in_flight = 4
[source]
type = "file"
path = "in.jsonl"
format = "json"
concurrency = 2
batch = { max_events = 64 }
[sink]
type = "file"
path = "out/events.jsonl"
fsync = "never"
[dead_letter]
type = "file"
path = "out/dlq.jsonl"
`
	stats, err := runTask(t, context.Background(), dir, task)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	out := fileLines(t, filepath.Join(dir, "out/events.jsonl"))
	if len(out) != 1000 || stats.Delivered != 1000 || stats.DeadLettered != 1 {
		t.Fatalf("%d lines out, stats %+v", len(out), stats)
	}
	for i, l := range out {
		var ev struct {
			ID   string
			Data struct{ N int }
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Data.N != i {
			t.Fatalf("line %d: %s (%v)", i, l, err)
		}
	}
	dlq := fileLines(t, filepath.Join(dir, "out/dlq.jsonl"))
	if len(dlq) != 1 || !strings.Contains(dlq[0], `"stage":"decode"`) || !strings.Contains(dlq[0], `"not json"`) || !strings.Contains(dlq[0], "line 501") {
		t.Fatalf("dead letters: %q", dlq)
	}
	if _, err := os.Stat(filepath.Join(dir, "state/read-e2e/source.file.json")); !os.IsNotExist(err) {
		t.Fatalf("a completed read-mode run left its checkpoint: %v", err)
	}
}

// TestEngineTailRestart runs a tailing task, stops it (SIGTERM: ctx ends),
// appends while it is stopped, and runs it again: every line is delivered
// exactly once over the two runs.
func TestEngineTailRestart(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "app.log")
	out := filepath.Join(dir, "out.jsonl")
	task := `name = "tail-e2e"
[source]
type = "file"
path = "app.log"
mode = "tail"
poll_interval = "10ms"
batch = { max_events = 7 }
[sink]
type = "file"
path = "out.jsonl"
`
	appendLines := func(from, to int) {
		f, _ := os.OpenFile(in, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		for i := from; i < to; i++ {
			fmt.Fprintf(f, "line %d\n", i)
		}
		f.Close()
	}
	runUntil := func(n int, during func()) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := runTask(t, ctx, dir, task)
			done <- err
		}()
		if during != nil {
			testkit.WaitFor(t, "the task to deliver", func() bool { return len(fileLines(t, out)) > 0 })
			during()
		}
		testkit.WaitFor(t, fmt.Sprintf("%d lines delivered", n), func() bool { return len(fileLines(t, out)) >= n })
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run: %v", err)
		}
	}
	appendLines(0, 100)
	runUntil(100, func() { appendLines(100, 150) })
	appendLines(150, 230)
	runUntil(230, nil)
	got := fileLines(t, out)
	if len(got) != 230 {
		t.Fatalf("%d lines delivered over two runs, want 230 exactly once", len(got))
	}
	for i, l := range got {
		if !strings.Contains(l, fmt.Sprintf(`"data":"line %d"`, i)) {
			t.Fatalf("line %d: %s", i, l)
		}
	}
}
