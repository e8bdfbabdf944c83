package kafka_test

import (
	"bytes"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	sinkkafka "github.com/sluicehq/sluice/builtins/sink/kafka"
	srckafka "github.com/sluicehq/sluice/builtins/source/kafka"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestDeadLetterSmallerThanMaxEventWarns: a Kafka dead-letter queue whose
// batch_max_bytes is below the task's max_event_size cannot take an event
// between the two, which then blocks the task. Loading such a task warns,
// naming both keys and the block; one whose dead-letter queue can take
// every event loads without the warning.
func TestDeadLetterSmallerThanMaxEventWarns(t *testing.T) {
	for _, tc := range []struct {
		name, batchMax string
		warn           bool
	}{
		{"below max_event_size", "512KiB", true},
		{"above max_event_size", "2MiB", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := component.NewRegistry()
			srckafka.Register(r)
			sinkkafka.Register(r)
			var logs lockedBuffer
			dir := t.TempDir()
			l := &config.Loader{Registry: r, StateDir: filepath.Join(dir, "state"), Shared: component.NewShared(),
				Logger: zerolog.New(&logs).Level(zerolog.WarnLevel), TaskChecks: []func(*config.Task, *component.Problems){kafkaconf.CheckExactlyOnce}}
			text := `name = "dlqsize"
max_event_size = "1MiB"
[source]
type = "kafka"
brokers = ["127.0.0.1:1"]
topics = ["in"]
[sink]
type = "kafka"
brokers = ["127.0.0.1:1"]
topic = "out"
[dead_letter]
type = "kafka"
brokers = ["127.0.0.1:1"]
topic = "dlq"
batch_max_bytes = "` + tc.batchMax + `"
`
			if _, err := l.Load(filepath.Join(dir, "task.toml"), []byte(text)); err != nil {
				t.Fatalf("load: %v", err)
			}
			got := logs.String()
			warned := strings.Contains(got, "batch_max_bytes") && strings.Contains(got, "max_event_size") && strings.Contains(got, "Blocked")
			if warned != tc.warn {
				t.Fatalf("warned %v, want %v; log:\n%s", warned, tc.warn, got)
			}
		})
	}
}
