package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/admin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestConsoleReplayOfADecodeRecordMatchesDlqReplay: a dead letter of stage
// decode keeps the raw input line. `sluice dlq replay` runs it through the
// task as a CloudEvent wrapping the line, as the task's source would have;
// the admin console's replay (POST /tasks/{name}/dlq/replay) gave the task
// the bare line as the event (here the text hello world, not even JSON),
// so the two replays of one record delivered different events.
func TestConsoleReplayOfADecodeRecordMatchesDlqReplay(t *testing.T) {
	dir := t.TempDir()
	taskPath := write(t, dir, "orders.toml", `name = "orders"
[source]
type = "generate"
rate = 5
[sink]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "file"
path = "dlq.jsonl"
`)
	dlqPath := write(t, dir, "dlq.jsonl", `{"event":"hello world","task":"orders","stage":"decode","error":{"class":"event_permanent","message":"not JSON"},"attempts":1,"position":{"stream":"in.log","partition":0,"offset":0},"time":"2026-12-06T10:00:00Z"}`+"\n")
	out := filepath.Join(dir, "out.jsonl")
	replayed := func() map[string]any {
		t.Helper()
		data, _ := os.ReadFile(out)
		for _, line := range bytes.Split(data, []byte("\n")) {
			if !bytes.Contains(line, []byte("hello world")) {
				continue
			}
			var ev map[string]any
			if err := json.Unmarshal(line, &ev); err != nil {
				t.Fatalf("the replayed event is not JSON: %q", line)
			}
			// Told apart by when and where they were replayed only.
			delete(ev, "id")
			delete(ev, "time")
			return ev
		}
		return nil
	}

	so, se, code := runMain("dlq", "replay", taskPath, "--from", dlqPath, "--state-dir", t.TempDir(), "--log-level", "error")
	if code != exitOK {
		t.Fatalf("sluice dlq replay: exit %d\n%s%s", code, so, se)
	}
	cli := replayed()
	if cli == nil || cli["specversion"] != "1.0" || cli["data"] != "hello world" {
		t.Fatalf("sluice dlq replay delivered %v, want a CloudEvent wrapping the line", cli)
	}
	if err := os.Remove(out); err != nil {
		t.Fatal(err)
	}

	// The same record replayed from the console of `sluice run`.
	var s settings
	s.stateDir = t.TempDir()
	log := zerolog.Nop()
	ms := metrics.New()
	shared := component.NewShared()
	defer shared.Close()
	task, err := newLoader(s, log, ms, shared).LoadFile(taskPath)
	if err != nil {
		t.Fatal(err)
	}
	run := engine.New(runner.Definition(task), engine.Options{Logger: log, Metrics: ms})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run.Run(ctx) }()
	testkit.WaitFor(t, "the task to run", func() bool { return run.State() == engine.Running })
	const token = "0123456789abcdef-replay"
	srv := httptest.NewServer(admin.Handler([]*engine.Task{run}, ms, consoleOptions(s, log, shared,
		admin.Options{Token: token, Logger: log, Files: taskFiles(func(string) *config.Task { return task })})))
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/tasks/orders/dlq/replay", strings.NewReader(`{"ids":[0]}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	resp.Body.Close()
	cancel()
	<-done
	if resp.StatusCode != 200 || !strings.Contains(body.String(), `"delivered":1`) {
		t.Fatalf("console replay: %d %s", resp.StatusCode, body.String())
	}
	console := replayed()
	if a, b := jsonText(cli), jsonText(console); a != b {
		t.Fatalf("the console's replay delivered\n%s\nand sluice dlq replay\n%s", b, a)
	}
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
