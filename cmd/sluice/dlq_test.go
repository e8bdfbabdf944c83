package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluicehq/sluice/builtins/kafkadev"
)

// dlqRecord is a dead-letter record of one event of about 100 bytes, so
// that --max-event-size 64 makes it fail again.
func dlqRecord(id string) string {
	return `{"event":{"specversion":"1.0","id":"` + id + `","source":"s","type":"t","data":{"pad":"0123456789012345678901234567890123456789"}},"task":"orders","stage":"sink","error":{"class":"event_permanent","message":"x"},"attempts":1}` + "\n"
}

// replayTask writes a task delivering to dir/out.jsonl and returns its file.
func replayTask(t *testing.T, dir string) string {
	return write(t, dir, "task.toml", "name = \"orders\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"file\"\npath = \"out.jsonl\"\n")
}

func fileLines(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// TestReplayOfAGlobNeverReadsItsFailedFile: the default --failed of a glob
// used to be named after the pattern (dlq/*.failed.jsonl), which the same
// glob matches: the next replay read the events that failed again a second
// time, delivering 2 dead letters 4 times.
func TestReplayOfAGlobNeverReadsItsFailedFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dlq"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "dlq"), "orders.jsonl", dlqRecord("e1")+dlqRecord("e2"))
	task := replayTask(t, dir)
	glob := filepath.Join(dir, "dlq", "*.jsonl")
	state := t.TempDir()
	// Run 1: the events are over the event limit, so both fail again.
	so, se, code := runMain("dlq", "replay", task, "--from", glob, "--state-dir", state, "--max-event-size", "64", "--log-level", "error")
	if code != exitFailed || !strings.Contains(so, "2 failed again") {
		t.Fatalf("run 1: exit %d\n%s\n%s", code, so, se)
	}
	matched, _ := filepath.Glob(glob)
	if len(matched) != 1 {
		t.Fatalf("run 1 left a file the glob matches: %v\n%s", matched, so)
	}
	// Run 2: the cause is fixed; each dead letter is delivered once.
	so, se, code = runMain("dlq", "replay", task, "--from", glob, "--state-dir", state, "--log-level", "error")
	if n := fileLines(t, filepath.Join(dir, "out.jsonl")); code != exitOK || n != 2 {
		t.Fatalf("run 2: exit %d, the sink got %d events for 2 dead letters\n%s%s", code, n, so, se)
	}
}

// TestReplayRefusesAFailedFileTheGlobReads: a --failed file that --from
// matches, or that is one of the files it names, is a usage error naming
// both.
func TestReplayRefusesAFailedFileTheGlobReads(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.jsonl", dlqRecord("e1"))
	task := replayTask(t, dir)
	for _, c := range []struct{ from, failed string }{
		{filepath.Join(dir, "*.jsonl"), filepath.Join(dir, "again.jsonl")},    // the glob would read it next time
		{filepath.Join(dir, "*.jsonl"), filepath.Join(dir, "a.jsonl")},        // one of the files replayed
		{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, ".", "a.jsonl")},   // the file replayed, spelt otherwise
		{filepath.Join(dir, "[a]*.jsonl"), filepath.Join(dir, "again.jsonl")}, // a character class
	} {
		_, se, code := runMain("dlq", "replay", task, "--from", c.from, "--failed", c.failed, "--state-dir", t.TempDir())
		if code != exitUsage || !strings.Contains(se, c.from) || !strings.Contains(se, c.failed) {
			t.Errorf("--from %s --failed %s: exit %d, want %d naming both:\n%s", c.from, c.failed, code, exitUsage, se)
		}
	}
	if n := fileLines(t, filepath.Join(dir, "out.jsonl")); n != 0 {
		t.Errorf("a refused replay delivered %d events", n)
	}
}

// TestDefaultFailedNeverMatchesFrom: the default --failed name is one the
// --from pattern cannot match; a pattern matching every candidate gets none.
func TestDefaultFailedNeverMatchesFrom(t *testing.T) {
	for from, want := range map[string]string{
		"dlq/orders.jsonl":       "dlq/orders.failed.jsonl",
		"dlq/*.jsonl":            "dlq/_.failed",
		"dlq/orders-*.jsonl":     "dlq/orders-_.failed",
		"dlq/orders-2026-?.json": "dlq/orders-2026-_.failed.jsonl",
		"dlq/*":                  "",
	} {
		got, ok := defaultFailed(from, nil)
		if got != want || ok != (want != "") {
			t.Errorf("defaultFailed(%q) = %q, %v; want %q", from, got, ok, want)
		}
		if ok {
			if m, _ := filepath.Match(from, got); m {
				t.Errorf("--from %q matches its default --failed %q", from, got)
			}
		}
	}
}

// TestCleanReplayKeepsEarlierFailures: a clean replay removes the --failed
// file it created, but not one holding an earlier replay's failures (a
// clean --stage decode replay used to delete the --stage sink failures).
func TestCleanReplayKeepsEarlierFailures(t *testing.T) {
	dir := t.TempDir()
	from := write(t, dir, "dlq.jsonl", dlqRecord("e1"))
	task := replayTask(t, dir)
	failed := filepath.Join(dir, "failed.jsonl")
	so, se, code := runMain("dlq", "replay", task, "--from", from, "--failed", failed, "--state-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, so, se)
	}
	if _, err := os.Stat(failed); !os.IsNotExist(err) {
		t.Errorf("the clean replay left the --failed file it created: %v", err)
	}
	earlier := dlqRecord("old")
	write(t, dir, "failed.jsonl", earlier)
	so, se, code = runMain("dlq", "replay", task, "--from", from, "--failed", failed, "--state-dir", t.TempDir())
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, so, se)
	}
	if data, err := os.ReadFile(failed); err != nil || string(data) != earlier {
		t.Errorf("the clean replay changed the earlier failures: %q, %v", data, err)
	}
}

// TestReplayOfASecuredKafkaTopic: `sluice dlq replay --from kafka://...` of
// a dead-letter topic on a cluster that requires SASL failed ("is SASL
// missing?"): the replay connected with the address's brokers alone, and
// nothing could give it credentials. It now connects with the SASL and TLS
// settings of the task's Kafka [dead_letter], which wrote the topic.
func TestReplayOfASecuredKafkaTopic(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := kafkadev.StartWith(ctx, kafkadev.Options{Partitions: 1, Topics: []string{"orders-dlq"},
		Users: []kafkadev.User{{Mechanism: "SCRAM-SHA-512", Name: "sluice", Password: "dlq-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.DefaultProduceTopic("orders-dlq"),
		kgo.SASL(scram.Auth{User: "sluice", Pass: "dlq-secret"}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, id := range []string{"e1", "e2"} {
		recs = append(recs, &kgo.Record{Value: []byte(`{"specversion":"1.0","id":"` + id + `","source":"s","type":"t"}`),
			Headers: []kgo.RecordHeader{{Key: "sluice-stage", Value: []byte("sink")}}})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("DLQ_PASSWORD", "dlq-secret")
	task := write(t, dir, "task.toml", fmt.Sprintf(`name = "orders"
[source]
type = "stdin"
[sink]
type = "file"
path = "out.jsonl"
[dead_letter]
type = "kafka"
brokers = [%q]
topic = "orders-dlq"
sasl = { mechanism = "SCRAM-SHA-512", username = "sluice", password = "${env:DLQ_PASSWORD}" }
`, c.Addr()))
	so, se, code := runMain("dlq", "replay", task, "--from", "kafka://"+c.Addr()+"/orders-dlq", "--failed", filepath.Join(dir, "failed.jsonl"),
		"--state-dir", t.TempDir(), "--log-level", "error")
	if n := fileLines(t, filepath.Join(dir, "out.jsonl")); code != exitOK || n != 2 {
		t.Fatalf("exit %d, the sink got %d events for 2 dead letters\n%s%s", code, n, so, se)
	}
}

// TestInterruptedReplayIsNoSuccess: a replay stopped by SIGINT or SIGTERM
// delivers what it read and ends; it used to print its counts and exit 0
// as a finished one does, so `sluice dlq replay ... && rm DLQ` deleted the
// records it never read. It now says it was interrupted and exits 1.
func TestInterruptedReplayIsNoSuccess(t *testing.T) {
	dir := t.TempDir()
	const records = 20000
	var b strings.Builder
	for i := range records {
		b.WriteString(dlqRecord(fmt.Sprintf("e%d", i)))
	}
	from := write(t, dir, "dlq.jsonl", b.String())
	first := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		once.Do(func() { close(first) })
		<-release
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	task := write(t, dir, "task.toml", "name = \"orders\"\nmax_in_flight = 1\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"http\"\nurl = \""+srv.URL+"\"\n")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var so, se strings.Builder
	code := make(chan int, 1)
	go func() {
		code <- dlqReplayUntil(ctx, []string{task, "--from", from, "--state-dir", t.TempDir(), "--log-level", "error"}, &so, &se)
	}()
	select {
	case <-first:
	case c := <-code:
		t.Fatalf("the replay ended (exit %d) before its first delivery\n%s%s", c, so.String(), se.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery within 30s")
	}
	cancel() // SIGINT
	close(release)
	var c int
	select {
	case c = <-code:
	case <-time.After(60 * time.Second):
		t.Fatal("the interrupted replay did not end within 60s")
	}
	if strings.Contains(so.String(), fmt.Sprintf("replayed %d events", records)) {
		t.Fatalf("the replay read every record before the interrupt: the test proves nothing: %s", so.String())
	}
	if c != exitFailed || !strings.Contains(se.String(), "interrupted") {
		t.Fatalf("an interrupted replay exited %d; want %d, saying it was interrupted\n%s%s", c, exitFailed, so.String(), se.String())
	}
}
