package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

const reloadToken = "0123456789abcdef-reload"

// adminClient calls the admin API of a sluice run started with reloadToken.
type adminClient struct {
	t    *testing.T
	base string
}

func (a adminClient) do(method, path string, out any) int {
	a.t.Helper()
	req, _ := http.NewRequest(method, a.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+reloadToken)
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			a.t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, body, err)
		}
	}
	return resp.StatusCode
}

type reloadAnswer struct {
	Error                                  string
	Problems                               []string
	Started, Stopped, Restarted, Unchanged []string
}

type taskState struct {
	Name  string
	State string
	Stats struct{ In, Delivered uint64 }
}

func (a adminClient) task(name string) (taskState, bool) {
	a.t.Helper()
	var ts []taskState
	if code := a.do(http.MethodGet, "/tasks", &ts); code != 200 {
		a.t.Fatalf("GET /tasks: %d", code)
	}
	for _, s := range ts {
		if s.Name == name {
			return s, true
		}
	}
	return taskState{}, false
}

// positioned is a problem located in a task file.
var positioned = regexp.MustCompile(`^\S+\.toml:\d+:\d+: `)

// TestE2EReloadUnderLoad: clients post events to an HTTP ingest task, each
// retrying until it gets 200 (sent once it was delivered), while the task
// files are reloaded three times through POST /reload: an invalid change
// (refused with every problem, the task untouched), a changed transform
// (the task drains and restarts with it) and an added task (started, the
// ingest task untouched). Every event arrives; an event arrives twice only
// when its request was retried, the at-least-once window of the HTTP
// source, and the test reports how many did.
func TestE2EReloadUnderLoad(t *testing.T) {
	type seen struct{ versions []int }
	var mu sync.Mutex
	got := map[string]*seen{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
			var ev struct {
				ID string
				V  int
			}
			if err := json.Unmarshal(l, &ev); err != nil || ev.ID == "" {
				t.Errorf("sink got %q: %v", l, err)
				continue
			}
			s := got[ev.ID]
			if s == nil {
				s = &seen{}
				got[ev.ID] = s
			}
			s.versions = append(s.versions, ev.V)
		}
	}))
	defer hook.Close()
	arrived := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got)
	}

	dir := t.TempDir()
	tasks := filepath.Join(dir, "tasks")
	if err := os.Mkdir(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	ingestAddr, adminAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	ingest := func(v int) string {
		return fmt.Sprintf(`name = "ingest"
[source]
type = "http"
address = %q
response_timeout = "2s"
concurrency = 4

[[transform]]
type = "template"
template = '''{"id": "${id}", "v": %d}'''
variables = { id = "$.data.id" }

[sink]
type = "http"
url = %q
batch = { max_events = 50, max_wait = "5ms" }
`, ingestAddr, v, hook.URL)
	}
	write(t, tasks, "ingest.toml", ingest(1))
	tokenFile := write(t, dir, "token", reloadToken)
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--state-dir", filepath.Join(dir, "state"),
		"--admin-addr", adminAddr, "--admin-token-file", tokenFile, "--log-format", "console", tasks)
	p.WaitLog(t, "task running")
	api := adminClient{t, "http://" + adminAddr}

	// The load: clients send requests of 5 events each, one after the
	// other, and retry a request until it is answered 200. phase says which
	// reload had been answered when an event was first sent.
	var phase atomic.Int32
	var stop atomic.Bool
	var sentMu sync.Mutex
	firstPhase := map[string]int32{} // id → phase at its first send
	retried := map[string]bool{}     // ids of requests sent more than once
	var requests, retries, okNanos atomic.Int64
	const clients, perRequest = 16, 20
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stop.Load(); n++ {
				var ids []string
				var body strings.Builder
				ph := phase.Load()
				for k := range perRequest {
					id := fmt.Sprintf("c%d-%d", c, n*perRequest+k)
					ids = append(ids, id)
					fmt.Fprintf(&body, `{"id":%q}`+"\n", id)
				}
				sentMu.Lock()
				for _, id := range ids {
					firstPhase[id] = ph
				}
				sentMu.Unlock()
				start := time.Now()
				for attempt := 0; ; attempt++ {
					if attempt == 1 {
						retries.Add(1)
						sentMu.Lock()
						for _, id := range ids {
							retried[id] = true
						}
						sentMu.Unlock()
					}
					requests.Add(1)
					sent := time.Now()
					resp, err := http.Post("http://"+ingestAddr+"/", "application/x-ndjson", strings.NewReader(body.String()))
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							okNanos.Add(int64(time.Since(sent)))
							break
						}
					}
					if time.Since(start) > testkit.Scale(testkit.DefaultWait) {
						t.Errorf("client %d: request %d never accepted (%d attempts, last: %v)", c, n, attempt+1, err)
						return
					}
					time.Sleep(20 * time.Millisecond) // the client's retry back-off, not synchronisation
				}
			}
		}()
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	waitArrived := func(n int) {
		t.Helper()
		target := arrived() + n
		testkit.WaitFor(t, fmt.Sprintf("%d events at the sink", target), func() bool { return arrived() >= target })
	}
	waitArrived(1000)

	// 1. An invalid change: two problems in two files, both reported with
	// their position; the running task is not touched.
	before, _ := api.task("ingest")
	write(t, tasks, "ingest.toml", strings.Replace(ingest(1), `concurrency = 4`, "concurrency = 4\nmax_body = 10", 1))
	write(t, tasks, "broken.toml", "name = \"broken\"\n[source]\ntype = \"generate\"\nrate = -5\n[sink]\ntype = \"stdout\"\n")
	var ans reloadAnswer
	if code := api.do(http.MethodPost, "/reload", &ans); code != http.StatusUnprocessableEntity || len(ans.Problems) != 2 {
		t.Fatalf("reload of invalid files: %d %+v, want 422 with 2 problems", code, ans)
	}
	for _, pr := range ans.Problems {
		if !positioned.MatchString(pr) {
			t.Errorf("problem %q has no FILE:LINE:COL", pr)
		}
	}
	if !strings.Contains(ans.Problems[0], "broken.toml:4:8: source.rate") || !strings.Contains(ans.Problems[1], "ingest.toml:7:1: source.max_body") {
		t.Errorf("problems %q, want broken.toml:4:8 (rate) and ingest.toml:7:1 (max_body)", ans.Problems)
	}
	waitArrived(500)
	after, _ := api.task("ingest")
	if after.State != "Running" || after.Stats.In < before.Stats.In {
		t.Fatalf("the ingest task after a refused reload: %+v, before %+v; want it Running with its counters going on", after, before)
	}
	if err := os.Remove(filepath.Join(tasks, "broken.toml")); err != nil {
		t.Fatal(err)
	}

	// 2. A changed transform: the task drains and restarts with it.
	write(t, tasks, "ingest.toml", ingest(2))
	ans = reloadAnswer{}
	if code := api.do(http.MethodPost, "/reload", &ans); code != 200 || !slices.Equal(ans.Restarted, []string{"ingest"}) || len(ans.Started)+len(ans.Stopped)+len(ans.Unchanged) != 0 {
		t.Fatalf("reload of a changed transform: %d %+v", code, ans)
	}
	phase.Store(2)
	waitArrived(1000)

	// 3. An added task starts; the ingest task is not touched.
	before, _ = api.task("ingest")
	write(t, tasks, "gen.toml", fmt.Sprintf(`name = "gen"
[source]
type = "generate"
count = 100
[sink]
type = "file"
path = %q
`, filepath.Join(dir, "gen.jsonl")))
	ans = reloadAnswer{}
	if code := api.do(http.MethodPost, "/reload", &ans); code != 200 || !slices.Equal(ans.Started, []string{"gen"}) || !slices.Equal(ans.Unchanged, []string{"ingest"}) {
		t.Fatalf("reload adding a task: %d %+v", code, ans)
	}
	testkit.WaitFor(t, "the added task's 100 events", func() bool {
		data, _ := os.ReadFile(filepath.Join(dir, "gen.jsonl"))
		return bytes.Count(data, []byte("\n")) == 100
	})
	waitArrived(1000)
	if after, ok := api.task("ingest"); !ok || after.State != "Running" || after.Stats.In < before.Stats.In {
		t.Fatalf("the ingest task after a reload that left it alone: %+v, before %+v", after, before)
	}

	stop.Store(true)
	wg.Wait()
	p.Stop(t)

	// Every event sent arrived (a client got 200 for it only once it was
	// delivered, and clients retried until they did); an event arrived twice
	// only if its request was sent twice; events first sent after the
	// transform changed went through the new one.
	mu.Lock()
	defer mu.Unlock()
	sentMu.Lock()
	defer sentMu.Unlock()
	var lost, dups, dupsOutsideWindow, oldVersion int
	for id, ph := range firstPhase {
		s := got[id]
		switch {
		case s == nil:
			lost++
			if lost <= 5 {
				t.Errorf("event %s was acknowledged but never arrived", id)
			}
			continue
		case len(s.versions) > 1:
			dups++
			if !retried[id] {
				dupsOutsideWindow++
				t.Errorf("event %s arrived %d times but was sent once", id, len(s.versions))
			}
		}
		if ph == 2 && slices.Contains(s.versions, 1) {
			oldVersion++
			t.Errorf("event %s was first sent after the transform changed, and went through the old one", id)
		}
	}
	if len(got) != len(firstPhase) {
		t.Errorf("the sink got %d distinct events, %d were sent", len(got), len(firstPhase))
	}
	v2 := 0
	for _, s := range got {
		if slices.Contains(s.versions, 2) {
			v2++
		}
	}
	t.Logf("requests answered 200 took %s on average", time.Duration(okNanos.Load()/max(1, requests.Load()-retries.Load())))
	t.Logf("%d events sent in %d requests (%d retried) over 3 reloads: %d arrived, %d lost, %d duplicated (all within retried requests: %v), %d through the changed transform",
		len(firstPhase), requests.Load(), retries.Load(), len(got), lost, dups, dupsOutsideWindow == 0, v2)
	if lost > 0 || v2 == 0 {
		t.Fatalf("%d events lost, %d through the changed transform", lost, v2)
	}
}

// reloadTask is a generate task writing the constant value to out.
func reloadTask(name, value, out string) string {
	return fmt.Sprintf(`name = %q
[source]
type = "generate"
rate = 50
[[transform]]
type = "constant"
value = %q
[sink]
type = "file"
path = %q
fsync = "never"
`, name, value, out)
}

// lastLine returns the last line of the file at path.
func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}

// TestE2EReloadSIGHUP: SIGHUP reloads; an invalid change is logged with its
// position and the task keeps running as it was.
func TestE2EReloadSIGHUP(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.txt")
	task := write(t, dir, "task.toml", reloadTask("hup", "v1", out))
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--state-dir", filepath.Join(dir, "state"), "--log-format", "console", task)
	p.WaitLog(t, "task running")
	testkit.WaitFor(t, "v1 outputs", func() bool { return lastLine(out) == "v1" })

	write(t, dir, "task.toml", strings.Replace(reloadTask("hup", "v2", out), "rate = 50", "rate = 50\nbogus = 1", 1))
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "reload refused")
	if !p.LogHas("task.toml:5:1: source.bogus") {
		t.Fatal("the refused reload did not log the problem with its position")
	}
	size := func() int64 {
		st, _ := os.Stat(out)
		return st.Size()
	}
	n := size()
	testkit.WaitFor(t, "the task to go on with v1", func() bool { return size() > n && lastLine(out) == "v1" })

	write(t, dir, "task.toml", reloadTask("hup", "v2", out))
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "v2 outputs after SIGHUP", func() bool { return lastLine(out) == "v2" })
	// The summary line is written once every task of the reload runs, so
	// the restarted task may deliver before it: wait for it, never assume.
	p.WaitLog(t, `restarted=["hup"]`)
	p.Stop(t)
}

// TestE2EReloadWatch: with --watch, editing, adding and removing task files
// in the folder reloads them, and the process waits for files when its
// tasks ended.
func TestE2EReloadWatch(t *testing.T) {
	dir := t.TempDir()
	tasks := filepath.Join(dir, "tasks")
	if err := os.Mkdir(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	outA, outB := filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt")
	write(t, tasks, "a.toml", reloadTask("a", "a1", outA))
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--watch", "--state-dir", filepath.Join(dir, "state"), "--log-format", "console", "--log-level", "debug", tasks)
	p.WaitLog(t, "watching the task files")
	testkit.WaitFor(t, "a1 outputs", func() bool { return lastLine(outA) == "a1" })

	// Saved as editors do: a new file renamed over the old one.
	tmp := write(t, dir, "a.toml.tmp", reloadTask("a", "a2", outA))
	if err := os.Rename(tmp, filepath.Join(tasks, "a.toml")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "a2 outputs after the edit", func() bool { return lastLine(outA) == "a2" })

	// Not a task file: ignored.
	write(t, tasks, "notes.txt", "hello")
	// A new file starts a task; a finite one ends and the process stays.
	write(t, tasks, "b.toml", strings.Replace(reloadTask("b", "b1", outB), "rate = 50", "count = 10", 1))
	testkit.WaitFor(t, "b's 10 outputs", func() bool {
		data, _ := os.ReadFile(outB)
		return bytes.Count(data, []byte("b1\n")) == 10
	})
	// Removing a file stops its task.
	if err := os.Remove(filepath.Join(tasks, "a.toml")); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, `stopped=["a"]`)
	st, _ := os.Stat(outA)
	n := st.Size()
	// With every task ended, --watch still waits for files: a new one runs.
	write(t, tasks, "a.toml", reloadTask("a", "a3", outA))
	testkit.WaitFor(t, "a3 outputs", func() bool { return lastLine(outA) == "a3" })
	if p.Exited() {
		t.Fatal("sluice run --watch exited")
	}
	if st, _ := os.Stat(outA); st.Size() <= n {
		t.Fatal("no new outputs")
	}
	if !p.LogHas("a.toml") || p.LogHas("notes.txt") {
		t.Fatal("a file that is not a task file triggered a reload")
	}
	p.Stop(t)
}

// TestE2EReloadWatchReplacedFolder: with --watch, a task folder replaced as
// a whole (a new folder renamed into place, or removed and created again)
// is watched again, and its task files are loaded.
func TestE2EReloadWatchReplacedFolder(t *testing.T) {
	dir := t.TempDir()
	tasks := filepath.Join(dir, "tasks")
	if err := os.Mkdir(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "a.txt")
	write(t, tasks, "a.toml", reloadTask("a", "a1", out))
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--watch", "--state-dir", filepath.Join(dir, "state"), "--log-format", "console", tasks)
	p.WaitLog(t, "watching the task files")
	testkit.WaitFor(t, "a1 outputs", func() bool { return lastLine(out) == "a1" })

	// A release tool's swap: the new folder is prepared aside, the old one
	// moved away, the new one renamed into place.
	next := filepath.Join(dir, "tasks.next")
	if err := os.Mkdir(next, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, next, "a.toml", reloadTask("a", "a2", out))
	if err := os.Rename(tasks, filepath.Join(dir, "tasks.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next, tasks); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "a2 outputs from the folder renamed into place", func() bool { return lastLine(out) == "a2" })

	// Removed and created again, its file written afterwards.
	if err := os.RemoveAll(tasks); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, tasks, "a.toml", reloadTask("a", "a3", out))
	testkit.WaitFor(t, "a3 outputs from the folder created again", func() bool { return lastLine(out) == "a3" })
	if !p.LogHas("watching the new one") {
		t.Fatal("the log does not say the folder is watched again")
	}
	p.Stop(t)
}

// logCount counts the lines of p's log holding s.
func logCount(p *testkit.Proc, s string) int {
	data, _ := os.ReadFile(p.Log)
	return bytes.Count(data, []byte(s))
}

// TestE2EReloadTailResumesFromCommittedPosition: a task tailing a file that
// grows all along is changed twice (SIGHUP); each time it drains, commits
// and restarts from its committed position: every line arrives, in order,
// none twice, and the lines after each reload go through the new
// transform.
func TestE2EReloadTailResumesFromCommittedPosition(t *testing.T) {
	dir := t.TempDir()
	logPath, outPath := filepath.Join(dir, "app.log"), filepath.Join(dir, "out.jsonl")
	task := func(v int) string {
		return fmt.Sprintf(`name = "tail"
[source]
type = "file"
path = %q
mode = "tail"
poll_interval = "10ms"
[[transform]]
type = "template"
template = '''{"data": {"n": ${n}}, "v": %d}'''
variables = { n = "$.data.n" }
[sink]
type = "file"
path = %q
`, logPath, v, outPath)
	}
	taskPath := write(t, dir, "tail.toml", task(1))
	appendLines(t, logPath, 0, 1)
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--state-dir", filepath.Join(dir, "state"), "--log-format", "console", taskPath)
	p.WaitLog(t, "task running")

	// The writer appends 10 lines at a time until told to stop.
	var stop atomic.Bool
	written := make(chan int)
	go func() {
		n := 1
		for !stop.Load() {
			appendLines(t, logPath, n, n+10)
			n += 10
			time.Sleep(2 * time.Millisecond) // the writer's pace, not synchronisation
		}
		written <- n
	}()
	versions := func() (out []int) {
		data, _ := os.ReadFile(outPath)
		data = data[:bytes.LastIndexByte(data, '\n')+1]
		for _, l := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
			var ev struct{ V int }
			json.Unmarshal(l, &ev)
			out = append(out, ev.V)
		}
		return out
	}
	for v := 2; v <= 3; v++ {
		before := len(numbersIn(t, outPath))
		testkit.WaitFor(t, "more lines at the sink", func() bool { return len(numbersIn(t, outPath)) > before+300 })
		write(t, dir, "tail.toml", task(v))
		reloads := logCount(p, "task files reloaded")
		if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, fmt.Sprintf("reload %d", v-1), func() bool { return logCount(p, "task files reloaded") > reloads })
		testkit.WaitFor(t, fmt.Sprintf("v%d outputs", v), func() bool { return slices.Contains(versions(), v) })
	}
	stop.Store(true)
	total := <-written
	testkit.WaitFor(t, fmt.Sprintf("all %d lines at the sink", total), func() bool { return len(numbersIn(t, outPath)) >= total })
	p.Stop(t)

	got, vs := numbersIn(t, outPath), versions()
	for i, n := range got {
		if n != i {
			t.Fatalf("line %d of the sink holds n=%d; want every line once, in order (%d lines for %d written)", i, n, len(got), total)
		}
	}
	if !slices.IsSorted(vs) || vs[0] != 1 || vs[len(vs)-1] != 3 {
		t.Fatalf("transform versions at the sink are not 1, then 2, then 3")
	}
	t.Logf("%d lines through 2 reloads: each at the sink once, in order; %d/%d/%d through versions 1/2/3",
		total, countOf(vs, 1), countOf(vs, 2), countOf(vs, 3))
}

func countOf(s []int, v int) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
