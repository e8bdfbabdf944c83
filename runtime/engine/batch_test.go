package engine_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// writeSizes records the size of every Write: records and payload bytes.
type writeSizes struct {
	memSink
	mu     sync.Mutex
	writes [][2]int
}

func (s *writeSizes) Write(ctx context.Context, msgs []message.Message) error {
	n := 0
	for i := range msgs {
		n += len(msgs[i].Payload)
	}
	s.mu.Lock()
	s.writes = append(s.writes, [2]int{len(msgs), n})
	s.mu.Unlock()
	return s.memSink.Write(ctx, msgs)
}

// checkWrites checks that no write holds more than maxEvents records or,
// past its first record, more than maxBytes payload bytes, and that the
// writes hold total records.
func checkWrites(t *testing.T, what string, writes [][2]int, maxEvents, maxBytes, recordSize, total int) {
	t.Helper()
	n, full := 0, 0
	for _, w := range writes {
		n += w[0]
		if w[0] > maxEvents {
			t.Fatalf("%s: a write of %d records; max_events is %d", what, w[0], maxEvents)
		}
		if maxBytes > 0 && w[0] > 1 && w[1] > maxBytes {
			t.Fatalf("%s: a write of %d records, %d bytes; max_bytes is %d", what, w[0], w[1], maxBytes)
		}
		if maxBytes > 0 && w[1]+recordSize > maxBytes || w[0] == maxEvents {
			full++
		}
	}
	if n != total {
		t.Fatalf("%s: %d records written, want %d", what, n, total)
	}
	if full == 0 {
		t.Fatalf("%s: no write was full (%v): the limits were not exercised", what, writes)
	}
}

func TestSinkWritesKeepMaxBytes(t *testing.T) {
	for _, c := range []struct {
		name                string
		maxEvents, maxBytes int
		buffered            bool
	}{{"bytes", 100, 500, false}, {"events", 7, 0, false}, {"both", 12, 2000, false}, {"one record over", 100, 10, false},
		{"bytes through the disk buffer", 100, 500, true}} {
		t.Run(c.name, func(t *testing.T) {
			src := &laneSource{lanes: 1, batches: 30, perBatch: 20}
			sink := &writeSizes{}
			run := engine.New(task(src, sink, func(ct *config.Task) {
				ct.Engine.MaxEvents, ct.Engine.MaxBytes = c.maxEvents, c.maxBytes
				ct.Engine.MaxInFlight = 8
				if c.buffered {
					ct.Engine.Buffer = &buffer.Options{Dir: t.TempDir(), MaxSize: 1 << 20}
				}
			}), opts(t))
			if err := run.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			size := len(`{"id":"0-0","data":{"lane":"lane-0","batch":0,"i":0}}`)
			checkWrites(t, "sink", sink.writes, c.maxEvents, c.maxBytes, size, 600)
			if s := run.Stats(); s.Delivered != 600 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func TestDeadLetterWritesKeepTheirBatch(t *testing.T) {
	src := &laneSource{lanes: 1, batches: 10, perBatch: 20}
	sink := &memSink{reject: func([]byte) error { return component.EventPermanent(errors.New("no")) }}
	dlq := &writeSizes{}
	run := engine.New(task(src, sink, func(ct *config.Task) {
		ct.DeadLetter = &config.Component{Type: "mem", Instance: dlq}
		ct.Engine.DeadLetterMaxEvents = 6
		ct.Engine.DeadLetterMaxBytes = 3000
	}), opts(t))
	if err := run.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkWrites(t, "dead-letter", dlq.writes, 6, 3000, 300, 200)
	if s := run.Stats(); s.DeadLettered != 200 {
		t.Fatalf("stats %+v", s)
	}
}
