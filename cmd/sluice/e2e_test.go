package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sluiceBin is the CLI built once for the end-to-end tests of this package.
var sluiceBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e-")
	if err != nil {
		panic(err)
	}
	sluiceBin = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-o", sluiceBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sluice for the end-to-end tests:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// sluice runs the built CLI.
func sluice(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(sluiceBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "SLUICE_STATE_DIR="+t.TempDir())
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestE2EValidateReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	bad := write(t, dir, "bad.toml", `name = "orders"
[source]
type = "stdin"
formt = "json"
batch_size = 0

[[transform]]
type = "uppercase"

[sink]
type = "stdout"
batch = { max_events = 10, max_wiat = "1s" }
`)
	r := sluice(t, "", "validate", bad)
	if r.code != 1 {
		t.Fatalf("exit %d, want 1\n%s", r.code, r.stderr)
	}
	for _, want := range []string{
		bad + `:4:1: source.formt: unknown key "formt" (did you mean "format"?)`,
		bad + `:5:14: source.batch_size: value 0 is below the minimum 1 (allowed: 1..100000)`,
		bad + `:8:8: transform[0].type: invalid transform: TRANSFORM_KIND: unknown transform type "uppercase"`,
		bad + `:12:28: sink.batch.max_wiat: unknown key "max_wiat" (did you mean "max_wait"?)`,
		"    4 | formt = \"json\"\n      | ^^^^^",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("missing %q in:\n%s", want, r.stderr)
		}
	}
	good := write(t, dir, "good.toml", "name = \"ok\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n")
	if r := sluice(t, "", "validate", good); r.code != 0 || !strings.Contains(r.stdout, `task "ok" is valid`) {
		t.Fatalf("valid file: %+v", r)
	}
	if r := sluice(t, "", "validate", write(t, dir, "syntax.toml", "name = \"x\n")); r.code != 1 || !strings.Contains(r.stderr, "syntax.toml:1:") {
		t.Fatalf("syntax error: %+v", r)
	}
}

func TestE2ERunGenerateToStdout(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "gen.toml", "name = \"gen\"\n[source]\ntype = \"generate\"\ncount = 2500\nbatch_size = 100\n[sink]\ntype = \"stdout\"\n")
	r := sluice(t, "", "run", task)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2500 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines {
		var ev struct{ ID string }
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.ID != fmt.Sprintf("generate-0-%d", i) {
			t.Fatalf("line %d: %s", i, l)
		}
	}
	// Not a terminal: logs are JSON lines naming the task.
	for _, l := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		var log struct{ Task, Level string }
		if err := json.Unmarshal([]byte(l), &log); err != nil || log.Task != "gen" {
			t.Fatalf("log line is not JSON naming the task: %s", l)
		}
	}
}

func TestE2ETestExpect(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "task.toml", `name = "t"
[source]
type = "stdin"
[filter.pattern.data]
amount = [{ numeric = [">", 100] }]
[sink]
type = "stdout"
`)
	input := write(t, dir, "in.jsonl", `{"data": {"amount": 150, "id": "a"}}
{"data": {"amount": 50, "id": "b"}}

{"data": {"amount": 101.5, "id": "c"}}
`)
	r := sluice(t, "", "test", task, "--input", input, "--raw")
	if r.code != 0 || r.stdout != `{"data":{"amount":150,"id":"a"}}`+"\n"+`{"data":{"amount":101.5,"id":"c"}}`+"\n" {
		t.Fatalf("test output: %+v", r)
	}
	want := write(t, dir, "want.jsonl", `{"data": {"id": "a", "amount": 150.0}}
{"data":{"amount":101.5,"id":"c"}}
`)
	if r := sluice(t, "", "test", task, "--input", input, "--raw", "--expect", want); r.code != 0 {
		t.Fatalf("expect should pass (JSON equality): %+v", r)
	}
	wrong := write(t, dir, "wrong.jsonl", `{"data":{"amount":150,"id":"a"}}
{"data":{"amount":101.5,"id":"X"}}
{"extra":true}
`)
	r = sluice(t, "", "test", task, "--input", input, "--raw", "--expect", wrong)
	if r.code == 0 || !strings.Contains(r.stderr, "output 2 differs") || !strings.Contains(r.stderr, "output 3 missing") || !strings.Contains(r.stderr, "wrong.jsonl:2") {
		t.Fatalf("mismatch not reported: %+v", r)
	}
}

func TestE2ESIGTERMDrains(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "slow.toml", "name = \"slow\"\n[source]\ntype = \"generate\"\nrate = 2000\n[sink]\ntype = \"stdout\"\n")
	cmd := exec.Command(sluiceBin, "run", "--shutdown-timeout", "5s", task)
	cmd.Env = append(os.Environ(), "SLUICE_STATE_DIR="+t.TempDir())
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	n := 0
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		n++
		if n == 300 {
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	start := time.Now()
	err := cmd.Wait()
	if err != nil {
		t.Fatalf("exit: %v\n%s", err, errb.String())
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("drain took too long")
	}
	for i, l := range lines {
		var ev struct{ ID string }
		if json.Unmarshal([]byte(l), &ev) != nil || ev.ID != fmt.Sprintf("generate-0-%d", i) {
			t.Fatalf("line %d is torn or out of order: %q", i, l)
		}
	}
	if !strings.Contains(errb.String(), `"message":"task stopped"`) {
		t.Fatalf("no clean stop logged:\n%s", errb.String())
	}
}

func TestE2EUsage(t *testing.T) {
	if r := sluice(t, "", "frobnicate"); r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Fatalf("%+v", r)
	}
	if r := sluice(t, "", "run"); r.code != 2 {
		t.Fatalf("%+v", r)
	}
	if r := sluice(t, "", "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "sluice ") {
		t.Fatalf("%+v", r)
	}
	if r := sluice(t, "", "list"); r.code != 0 || !strings.Contains(r.stdout, "stdin") || !strings.Contains(r.stdout, "Sinks:") {
		t.Fatalf("%+v", r)
	}
}

func TestReferenceDocIsCurrent(t *testing.T) {
	have, err := os.ReadFile(filepath.Join("..", "..", referencePath))
	if err != nil {
		t.Fatalf("%v (run 'go run ./cmd/sluice docs')", err)
	}
	if !bytes.Equal(have, renderReference(registry())) {
		t.Fatalf("%s is stale: run 'go run ./cmd/sluice docs' and commit it", referencePath)
	}
}

func TestE2EQuickstart(t *testing.T) {
	buildPlugins(t, "enrich") // the quickstart's WASM transform (make plugins)
	task := filepath.Join("..", "..", "testdata", "pipelines", "quickstart.toml")
	want, err := os.ReadFile(filepath.Join("..", "..", "testdata", "pipelines", "quickstart.want.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	r := sluice(t, "", "run", "--log-level", "warn", task)
	if r.code != 0 || r.stdout != string(want) {
		t.Fatalf("exit %d\nstdout:\n%s\nwant:\n%s\nstderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	// The same task as a unit test over the raw sample.
	sample := filepath.Join("..", "..", "testdata", "samples", "orders.jsonl")
	exp := filepath.Join("..", "..", "testdata", "pipelines", "quickstart.want.jsonl")
	if r := sluice(t, "", "test", task, "--input", sample, "--expect", exp); r.code != 0 {
		t.Fatalf("sluice test: %+v", r)
	}
}

// TestE2ETestSeesWhatRunSees: by default `sluice test` decodes each input
// line as the task's source does in `sluice run`, so the same lines give
// the same outputs; --raw takes each line as the event itself, and
// --expect shows outputs as they are written.
func TestE2ETestSeesWhatRunSees(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "task.toml", `name = "t"
[source]
type = "stdin"
[filter.pattern.data]
region = [{ prefix = "eu-" }]
[[transform]]
type = "template"
variables = { order = "$.data.order_id", id = "$.id" }
template = '{ "order" : "${order}", "id": "${id}" }'
[sink]
type = "stdout"
`)
	lines := `{"order_id":"o-1","region":"eu-west-1"}
not json

{"order_id":"o-2","region":"us-east-1"}
{"specversion":"1.0","id":"ce-3","source":"s","type":"t","data":{"order_id":"o-3","region":"eu-central-1"}}
`
	input := write(t, dir, "in.jsonl", lines)
	run := sluice(t, lines, "run", "--log-level", "warn", task)
	if run.code != 0 {
		t.Fatalf("run: %+v", run)
	}
	want := `{"order":"o-1","id":"stdin-0-0"}` + "\n" + `{"order":"o-3","id":"ce-3"}` + "\n"
	if run.stdout != want {
		t.Fatalf("run printed:\n%s\nwant:\n%s", run.stdout, want)
	}
	r := sluice(t, "", "test", task, "--input", input)
	if r.code != 0 || r.stdout != run.stdout || !strings.Contains(r.stderr, "each input line becomes the event the stdin source makes of it in sluice run") {
		t.Fatalf("test printed:\n%s\nstderr:\n%s\nwant what run printed:\n%s", r.stdout, r.stderr, run.stdout)
	}
	// --raw: the lines are the events; only the CloudEvent has data.
	r = sluice(t, "", "test", task, "--input", input, "--raw")
	if r.code != 0 || r.stdout != `{"order":"o-3","id":"ce-3"}`+"\n" || !strings.Contains(r.stderr, "--raw: each input line is taken as the event itself") {
		t.Fatalf("test --raw: %+v", r)
	}
	// --expect shows the output as written (compact), not the template's text.
	wrong := write(t, dir, "wrong.jsonl", `{"order":"o-1","id":"stdin-0-0"}`+"\n"+`{"order":"o-3","id":"X"}`+"\n")
	r = sluice(t, "", "test", task, "--input", input, "--expect", wrong)
	if r.code != exitFailed || !strings.Contains(r.stderr, "got:  {\"order\":\"o-3\",\"id\":\"ce-3\"}\n") {
		t.Fatalf("test --expect: %+v", r)
	}
	// --time fixes the ingest time of wrapped events.
	ctask := write(t, dir, "complete.toml", "name = \"c\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n")
	r = sluice(t, "", "test", ctask, "--input", input, "--time", "2024-05-01T10:00:00Z")
	if r.code != 0 || !strings.Contains(r.stdout, `{"specversion":"1.0","id":"stdin-0-0","source":"sluice/stdin","type":"sluice.line","time":"2024-05-01T10:00:00.000Z","datacontenttype":"application/json","data":{"order_id":"o-1","region":"eu-west-1"}}`) {
		t.Fatalf("test --time: %+v", r)
	}
	// A source that does not read lines says so.
	ktask := write(t, dir, "gen.toml", "name = \"g\"\n[source]\ntype = \"generate\"\n[sink]\ntype = \"stdout\"\n")
	if r = sluice(t, "", "test", ktask, "--input", input); !strings.Contains(r.stderr, "the generate source does not read lines: each input line is taken as the event itself") {
		t.Fatalf("test with a generate task: %+v", r)
	}
}
