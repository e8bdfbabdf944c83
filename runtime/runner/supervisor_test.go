package runner_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// genTask is a task file: generated events at a low rate to a file sink.
func genTask(dir, name string, extra string) string {
	return fmt.Sprintf(`name = %q
[source]
type = "generate"
rate = 50
[sink]
type = "file"
path = %q
fsync = "never"
%s`, name, filepath.Join(dir, name+".jsonl"), extra)
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newLoader(t *testing.T) *config.Loader {
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	shared := component.NewShared()
	t.Cleanup(func() { shared.Close() })
	return &config.Loader{Registry: r, BuildFilter: builtins.BuildFilter, TaskChecks: builtins.TaskChecks, StateDir: t.TempDir(), Shared: shared, Logger: zerolog.Nop()}
}

// startSupervisor runs the tasks of dir until the test ends.
func startSupervisor(t *testing.T, dir string, keep bool) (*runner.Supervisor, <-chan []error, context.CancelFunc) {
	return startSupervisorWith(t, dir, keep, metrics.New())
}

func startSupervisorWith(t *testing.T, dir string, keep bool, ms *metrics.Set) (*runner.Supervisor, <-chan []error, context.CancelFunc) {
	t.Helper()
	s, err := runner.NewSupervisor(newLoader(t), []string{dir}, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	s.KeepAlive = keep
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []error, 1)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		done <- s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return s, done, cancel
}

func byName(s *runner.Supervisor) map[string]*engine.Task {
	m := map[string]*engine.Task{}
	for _, t := range s.Tasks() {
		m[t.Name()] = t
	}
	return m
}

func waitRunning(t *testing.T, tasks ...*engine.Task) {
	t.Helper()
	for _, task := range tasks {
		testkit.WaitFor(t, task.Name()+" to run and deliver", func() bool {
			return task.State() == engine.Running && task.Stats().Delivered > 0
		})
	}
}

func TestReloadRejectsInvalidFilesAndKeepsTasks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.toml"), genTask(dir, "a", ""))
	s, _, _ := startSupervisor(t, dir, false)
	before := byName(s)["a"]
	waitRunning(t, before)

	// Two broken files: every problem comes back, each with its position.
	writeFile(t, filepath.Join(dir, "a.toml"), genTask(dir, "a", "[[transform]]\ntype = \"nope\"\n"))
	writeFile(t, filepath.Join(dir, "b.toml"), "name = \"b\"\n[source]\ntype = \"generate\"\nrate = -1\n[sink]\ntype = \"stdout\"\n")
	res, err := s.Reload(context.Background())
	var inv *runner.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("reload of invalid files: %v, %+v; want an *InvalidError", err, res)
	}
	want := []string{filepath.Join(dir, "a.toml") + ":10:8: transform[0].type", filepath.Join(dir, "b.toml") + ":4:8: source.rate"}
	if len(inv.Problems) != len(want) {
		t.Fatalf("problems %q, want %d", inv.Problems, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(inv.Problems[i], w) {
			t.Errorf("problem %d = %q, want it to start with %q", i, inv.Problems[i], w)
		}
	}
	after := byName(s)
	if len(after) != 1 || after["a"] != before {
		t.Fatalf("tasks after a refused reload: %v; want a alone, the same task", after)
	}
	n := before.Stats().Delivered
	testkit.WaitFor(t, "a to go on delivering", func() bool { return before.Stats().Delivered > n && before.State() == engine.Running })
}

func TestReloadStartsStopsRestartsAndLeavesTheRest(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "keep.toml"), genTask(dir, "keep", ""))
	writeFile(t, filepath.Join(dir, "change.toml"), genTask(dir, "change", ""))
	writeFile(t, filepath.Join(dir, "drop.toml"), genTask(dir, "drop", ""))
	ms := metrics.New()
	s, _, _ := startSupervisorWith(t, dir, false, ms)
	old := byName(s)
	waitRunning(t, old["keep"], old["change"], old["drop"])
	keepFile, changeFile := s.Loaded("keep"), s.Loaded("change")
	// A series only the old run of a task fed, as a component the new
	// file no longer has would leave.
	stale := ms.Gauge("test_component_pending", "A series of a component of the old run.", "task")
	stale.WithLabelValues("change").Set(7)
	stale.WithLabelValues("keep").Set(3)
	testkit.WaitFor(t, "the changed task's first events", func() bool { return old["change"].Stats().Delivered > 0 })

	writeFile(t, filepath.Join(dir, "change.toml"), genTask(dir, "change", "[[transform]]\ntype = \"constant\"\nvalue = \"v2\"\n"))
	if err := os.Remove(filepath.Join(dir, "drop.toml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "new.toml"), genTask(dir, "new", ""))
	res, err := s.Reload(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Started, []string{"new"}) || !slices.Equal(res.Restarted, []string{"change"}) ||
		!slices.Equal(res.Stopped, []string{"drop"}) || !slices.Equal(res.Unchanged, []string{"keep"}) {
		t.Fatalf("reload result %+v", res)
	}
	now := byName(s)
	if len(now) != 3 || now["keep"] != old["keep"] || now["change"] == old["change"] || now["new"] == nil {
		t.Fatalf("tasks after the reload: %v", now)
	}
	if s.Loaded("keep") != keepFile || s.Loaded("change") == changeFile || s.Loaded("change").Digest == changeFile.Digest || s.Loaded("drop") != nil {
		t.Fatal("Loaded does not follow the reload")
	}
	// The replaced and the removed tasks drained and stopped before the
	// reload returned; the unchanged one never stopped.
	for _, n := range []string{"change", "drop"} {
		if st := old[n].State(); st != engine.Stopped {
			t.Errorf("old %s: %s, want Stopped", n, st)
		}
	}
	if st := old["keep"].State(); st != engine.Running {
		t.Errorf("keep: %s, want Running", st)
	}
	waitRunning(t, now["change"], now["new"])
	// The removed task's series are gone; the others' go on.
	tasksIn := map[string]bool{}
	for _, m := range metricstest.Gather(t, ms)["sluice_events_in_total"].Samples {
		tasksIn[m.Labels["task"]] = true
	}
	if tasksIn["drop"] || !tasksIn["keep"] || !tasksIn["change"] || !tasksIn["new"] {
		t.Errorf("tasks with sluice_events_in_total after the reload: %v; want keep, change and new", tasksIn)
	}
	// The restarted task's series started again: the old run's stale
	// one is gone, and its counters count the new run alone.
	fams := metricstest.Gather(t, ms)
	for _, m := range fams["sluice_test_component_pending"].Samples {
		if m.Labels["task"] != "keep" {
			t.Errorf("a series of the old run of %q is still in /metrics: %v", m.Labels["task"], m.Labels)
		}
	}
	if len(fams["sluice_test_component_pending"].Samples) != 1 {
		t.Errorf("test_component_pending: %d series, want the unchanged task's one", len(fams["sluice_test_component_pending"].Samples))
	}
	// Had it gone on from the old run's count (more than 0), it would
	// stay above what the new run read.
	testkit.WaitFor(t, "sluice_events_in_total of the changed task to count its new run alone", func() bool {
		for _, m := range metricstest.Gather(t, ms)["sluice_events_in_total"].Samples {
			if m.Labels["task"] == "change" {
				return m.Value > 0 && m.Value <= float64(now["change"].Stats().In)
			}
		}
		return false
	})
	testkit.WaitFor(t, "the changed task's outputs", func() bool {
		data, _ := os.ReadFile(filepath.Join(dir, "change.jsonl"))
		return strings.Contains(string(data), "v2\n")
	})

	// Nothing changed: nothing is touched.
	res, err = s.Reload(context.Background())
	if err != nil || len(res.Unchanged) != 3 || len(res.Started)+len(res.Stopped)+len(res.Restarted) != 0 {
		t.Fatalf("second reload: %+v, %v", res, err)
	}
}

func TestSupervisorRunEndsWithItsTasks(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.toml"), strings.Replace(genTask(dir, "a", ""), "rate = 50", "count = 10", 1))
	s, done, _ := startSupervisor(t, dir, false)
	errs := <-done
	if len(errs) != 0 {
		t.Fatalf("Run: %v", errs)
	}
	if _, err := s.Reload(context.Background()); !errors.Is(err, runner.ErrStopping) {
		t.Fatalf("reload after Run ended: %v, want ErrStopping", err)
	}

	// KeepAlive: Run waits for ctx even with every task ended, and a
	// reload that changes the file runs the task again.
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "a.toml"), strings.Replace(genTask(dir, "a", ""), "rate = 50", "count = 10", 1))
	s, done, cancel := startSupervisor(t, dir, true)
	first := byName(s)["a"]
	testkit.WaitFor(t, "the finite task to end", func() bool { return first.State() == engine.Stopped })
	writeFile(t, filepath.Join(dir, "a.toml"), strings.Replace(genTask(dir, "a", ""), "rate = 50", "count = 5", 1))
	res, err := s.Reload(context.Background())
	if err != nil || !slices.Equal(res.Restarted, []string{"a"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	second := byName(s)["a"]
	testkit.WaitFor(t, "the task to run again and end", func() bool {
		return second.State() == engine.Stopped && second.Stats().Delivered == 5
	})
	select {
	case errs := <-done:
		t.Fatalf("Run ended with KeepAlive before its context: %v", errs)
	default:
	}
	cancel()
	if errs := <-done; len(errs) != 0 {
		t.Fatalf("Run: %v", errs)
	}
}

// stateful is a transform that reads a number from a file at Build and
// writes it plus the batches it saw at Close, as a WASM module with
// persist_state keeps its state (a load that never ran writes back what it
// read).
type stateful struct {
	path    string
	loaded  int
	batches atomic.Int64
}

func (s *stateful) Apply(ctx context.Context, in []message.Message, out *component.Output) error {
	s.batches.Add(1)
	for i := range in {
		out.Emit(&in[i], in[i].Payload)
	}
	return nil
}

func (s *stateful) Close(context.Context) error {
	return os.WriteFile(s.path, fmt.Appendf(nil, "%d", s.loaded+int(s.batches.Load())), 0o644)
}

// TestReloadBuildsAChangedTaskAfterItsOldRunClosed: the new run of a
// changed task sees what the old run saved when it closed.
func TestReloadBuildsAChangedTaskAfterItsOldRunClosed(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.txt")
	writeFile(t, state, "0")
	var mu sync.Mutex
	var loads []int
	l := newLoader(t)
	type cfg struct {
		Label string `toml:"label" doc:"changes the file"`
	}
	l.Registry.Register(component.Spec{
		Kind: component.KindTransform, Name: "stateful", Summary: "test", New: func() any { return &cfg{} },
		Build: func(any, component.Env) (any, error) {
			data, err := os.ReadFile(state)
			if err != nil {
				return nil, err
			}
			var n int
			fmt.Sscan(string(data), &n)
			mu.Lock()
			loads = append(loads, n)
			mu.Unlock()
			return &stateful{path: state, loaded: n}, nil
		},
	})
	file := filepath.Join(dir, "a.toml")
	writeFile(t, file, genTask(dir, "a", "[[transform]]\ntype = \"stateful\"\nlabel = \"1\"\n"))
	s, err := runner.NewSupervisor(l, []string{dir}, engine.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []error, 1)
	go func() { done <- s.Run(ctx) }()
	waitRunning(t, byName(s)["a"])

	writeFile(t, file, genTask(dir, "a", "[[transform]]\ntype = \"stateful\"\nlabel = \"2\"\n"))
	if res, err := s.Reload(context.Background()); err != nil || !slices.Equal(res.Restarted, []string{"a"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	waitRunning(t, byName(s)["a"])
	cancel()
	if errs := <-done; len(errs) != 0 {
		t.Fatal(errs)
	}
	// Loads: the first run (0), the reload's validation (0), the new run,
	// built after the old one saved what it saw (and after the
	// validation's load, released unused, wrote back its 0).
	mu.Lock()
	defer mu.Unlock()
	if len(loads) != 3 || loads[0] != 0 || loads[1] != 0 || loads[2] == 0 {
		t.Fatalf("Build read %v, want [0 0 N>0]: the new run must be built after the old one closed", loads)
	}
	data, _ := os.ReadFile(state)
	var final int
	fmt.Sscan(string(data), &final)
	if final <= loads[2] {
		t.Fatalf("state after the second run: %d, want more than the %d it started from", final, loads[2])
	}
}

// TestFailedRestartKeepsTheTaskInMetrics: a reload that cannot build the
// changed task's new run keeps the old, stopped run, and /metrics still
// shows it, in state Stopped (an alert on a stopped task must see it),
// though the reload dropped the old run's series to restart it.
func TestFailedRestartKeepsTheTaskInMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "change.toml"), genTask(dir, "change", ""))
	// Built once when the reload validates the changed file, then again
	// for the new run: the second build fails.
	loader, builds := failingRebuild(t)
	ms := metrics.New()
	s, err := runner.NewSupervisor(loader, []string{dir}, engine.Options{Logger: zerolog.Nop(), Metrics: ms})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { defer close(ended); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ended })
	<-s.Started()
	old := byName(s)["change"]
	waitRunning(t, old)

	writeFile(t, filepath.Join(dir, "change.toml"), genTask(dir, "change", "[[transform]]\ntype = \"second_build_fails\"\nvalue = \"v2\"\n"))
	res, err := s.Reload(context.Background())
	if err != nil || !slices.Equal(res.Restarted, []string{"change"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	if builds.Load() != 2 {
		t.Fatalf("the changed transform was built %d times, want 2 (validation, then the new run)", builds.Load())
	}
	if now := byName(s)["change"]; now != old || now.State() != engine.Stopped {
		t.Fatalf("after the failed restart: task %p in %v, want the old run %p, stopped", now, now.State(), old)
	}
	states := map[string]float64{}
	if fam := metricstest.Gather(t, ms)["sluice_task_state"]; fam != nil {
		for _, m := range fam.Samples {
			if m.Labels["task"] == "change" {
				states[m.Labels["state"]] = m.Value
			}
		}
	}
	if states["Stopped"] != 1 || states["Running"] != 0 {
		t.Fatalf("sluice_task_state of the kept run: %v, want Stopped = 1", states)
	}
}

// A task file named on the command line (not through its folder) that is
// deleted stops its task at the next reload, as one removed from a folder
// does; the other tasks go on.
func TestReloadStopsTheTaskOfADeletedFileArgument(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")
	writeFile(t, a, genTask(dir, "a", ""))
	writeFile(t, b, genTask(dir, "b", ""))
	s, _ := runWith(t, newLoader(t), []string{a, b}, io.Discard)
	old := byName(s)
	waitRunning(t, old["a"], old["b"])

	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	res, err := s.Reload(context.Background())
	if err != nil {
		t.Fatalf("reload after deleting %s: %v", a, err)
	}
	if !slices.Equal(res.Stopped, []string{"a"}) || !slices.Equal(res.Unchanged, []string{"b"}) {
		t.Fatalf("reload result %+v; want a stopped, b unchanged", res)
	}
	if st := old["a"].State(); st != engine.Stopped {
		t.Errorf("a: %s, want Stopped", st)
	}
	// The file back: the next reload starts its task again.
	writeFile(t, a, genTask(dir, "a", ""))
	if res, err := s.Reload(context.Background()); err != nil || !slices.Equal(res.Started, []string{"a"}) {
		t.Fatalf("reload after restoring %s: %+v, %v", a, res, err)
	}
	waitRunning(t, byName(s)["a"])
}

// runWith runs the tasks of args with a short shutdown deadline and logs
// to w; stop ends the run and waits for it (also at the test's end).
func runWith(t *testing.T, loader *config.Loader, args []string, w io.Writer) (s *runner.Supervisor, stop func()) {
	t.Helper()
	s, err := runner.NewSupervisor(loader, args, engine.Options{Logger: zerolog.New(w), Metrics: metrics.New(), ShutdownTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		s.Run(ctx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		<-ended
	})
	t.Cleanup(stop)
	<-s.Started()
	return s, stop
}

// downURL is the URL of a local port nothing listens on: a sink sending
// there cannot deliver.
func downURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String() + "/"
}

// warnings returns the warning lines of logs whose message holds sub.
func warnings(logs, sub string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "warn" && strings.Contains(fmt.Sprint(m["message"]), sub) {
			out = append(out, m)
		}
	}
	return out
}

// A reload that removes a task whose disk buffer still holds undelivered
// records (its sink out of reach), or that restarts it without that buffer
// (the buffer key removed, or another path), leaves those records where no
// run reads them: the reload says so, naming the folder and the count.
// Before, it logged only "task stopped", and a task renamed (or its buffer
// moved) while the uplink was down silently stranded its backlog.
func TestReloadWarnsOfRecordsLeftInADiskBuffer(t *testing.T) {
	down := downURL(t)
	bufTask := func(name, buffer string) string {
		return fmt.Sprintf(`name = %q
[source]
type = "generate"
rate = 200
[sink]
type = "http"
url = %q
%s
`, name, down, buffer)
	}
	for _, tc := range []struct {
		name   string
		change func(dir, file string) // the change to the task file
	}{
		{"removed", func(dir, file string) { os.Remove(file) }},
		{"renamed", func(dir, file string) { writeFile(t, file, bufTask("edge2", `buffer = { type = "disk" }`)) }},
		{"buffer removed", func(dir, file string) { writeFile(t, file, bufTask("edge", "")) }},
		{"buffer moved", func(dir, file string) {
			writeFile(t, file, bufTask("edge", fmt.Sprintf(`buffer = { type = "disk", path = %q }`, filepath.Join(dir, "elsewhere"))))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "edge.toml")
			writeFile(t, file, bufTask("edge", `buffer = { type = "disk" }`))
			writeFile(t, filepath.Join(dir, "other.toml"), genTask(dir, "other", ""))
			loader := newLoader(t)
			var logs testkit.LogBuffer
			s, _ := runWith(t, loader, []string{dir}, &logs)
			edge := byName(s)["edge"]
			testkit.WaitFor(t, "events read into the buffer", func() bool { return edge.Stats().In > 0 })

			tc.change(dir, file)
			if _, err := s.Reload(context.Background()); err != nil {
				t.Fatal(err)
			}
			bufDir := filepath.Join(loader.StateDir, "buffers", "edge")
			var warned map[string]any
			for _, m := range warnings(logs.String(), "disk buffer") {
				if m["task"] == "edge" {
					warned = m
				}
			}
			if warned == nil {
				t.Fatalf("no warning of the records left in %s; log:\n%s", bufDir, logs.String())
			}
			if warned["buffer"] != bufDir {
				t.Errorf("warning names folder %v, want %s", warned["buffer"], bufDir)
			}
			if n, _ := warned["records"].(float64); n <= 0 {
				t.Errorf("warning counts %v records, want > 0", warned["records"])
			}
		})
	}
}

// TestStartWarnsOfAnOrphanedDiskBuffer: a task renamed or removed (or its
// buffer settings changed) while the process was down, with its uplink
// down before that, leaves its backlog in buffers/<old name>, which no task
// reads. The start says so, naming the folder and the count; an empty
// leftover buffer and the buffers in use are not reported.
func TestStartWarnsOfAnOrphanedDiskBuffer(t *testing.T) {
	dir := t.TempDir()
	loader := newLoader(t)
	// The backlog of a task "edge" that has since been renamed "edge2":
	// stored by a run of the old file while its sink was down.
	old := filepath.Join(dir, "old")
	if err := os.Mkdir(old, 0o755); err != nil {
		t.Fatal(err)
	}
	bufTask := func(name, sinkURL string) string {
		return fmt.Sprintf(`name = %q
[source]
type = "generate"
count = 7
[sink]
type = "http"
url = %q
buffer = { type = "disk" }
`, name, sinkURL)
	}
	down := downURL(t)
	writeFile(t, filepath.Join(old, "edge.toml"), bufTask("edge", down))
	writeFile(t, filepath.Join(old, "empty.toml"), genTask(old, "empty", `buffer = { type = "disk" }`))
	s, stop := runWith(t, loader, []string{old}, io.Discard)
	edge, empty := byName(s)["edge"], byName(s)["empty"]
	testkit.WaitFor(t, "the 7 events in edge's buffer, and empty's delivered", func() bool {
		return edge.Stats().In == 7 && empty.Stats().Delivered > 0
	})
	stop()

	// The new files: edge renamed edge2, empty gone, other without a buffer.
	renamed := filepath.Join(dir, "new")
	if err := os.Mkdir(renamed, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(renamed, "edge.toml"), bufTask("edge2", down))
	var logs testkit.LogBuffer
	runWith(t, loader, []string{renamed}, &logs)
	warned := warnings(logs.String(), "no task uses it")
	want := filepath.Join(loader.StateDir, "buffers", "edge")
	if len(warned) != 1 || warned[0]["buffer"] != want || warned[0]["records"] != float64(7) || warned[0]["task"] != "edge" {
		t.Fatalf("warnings %v, want one for the 7 records in %s; log:\n%s", warned, want, logs.String())
	}
}
