package file

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	srcfile "github.com/sluicehq/sluice/builtins/source/file"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestTailedWhileRotating writes with the sink, rotating every 4KiB, while
// the file source tails the same path: every record arrives exactly once,
// in order, across the rotations (the sink rotates by rename, as logrotate's
// create mode does).
func TestTailedWhileRotating(t *testing.T) {
	dir := t.TempDir()
	sink := openSink(t, dir, "path = \"out.jsonl\"\nmax_size = \"4KiB\"\nmax_files = 100\nfsync = \"never\"", nil)

	var tree map[string]any
	toml.Decode("path = \"out.jsonl\"\nmode = \"tail\"\npoll_interval = \"10ms\"\nrotate_wait = \"200ms\"\nformat = \"json\"", &tree)
	r := component.NewRegistry()
	srcfile.Register(r)
	spec, _ := r.Lookup(component.KindSource, "file")
	cfg := spec.New()
	component.Decode(tree, cfg, component.NewProblems("source"), "type")
	v, err := spec.Build(cfg, component.Env{
		Task: "e2e", Dir: dir, StateDir: dir + "/state", MaxEvent: 1 << 20,
		Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	src := v.(component.Source)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := 0
	gens := map[int32]bool{}
	receive := func(upto int) {
		t.Helper()
		for next < upto {
			b, err := src.Read(ctx)
			if err != nil {
				t.Fatalf("read after %d records: %v", next, err)
			}
			for _, m := range b.Messages {
				var ev struct{ Data struct{ N int } }
				if err := json.Unmarshal(m.Payload, &ev); err != nil || m.Err != nil {
					t.Fatalf("event %s: %v %v", m.Payload, err, m.Err)
				}
				if ev.Data.N != next {
					t.Fatalf("got record %d, want %d", ev.Data.N, next)
				}
				gens[m.Pos.Partition] = true
				next++
			}
			b.Ack(nil)
		}
	}
	const rounds, perRound = 40, 50 // about 2KiB a round: at most one rotation between polls
	n := 0
	for range rounds {
		var ms []message.Message
		for range perRound {
			ms = append(ms, message.Message{Payload: fmt.Appendf(nil, `{"n":%d,"pad":"xxxxxxxxxxxxxxxxxxxx"}`, n)})
			n++
		}
		if err := sink.Write(context.Background(), ms); err != nil {
			t.Fatal(err)
		}
		receive(n)
	}
	if len(gens) < 10 {
		t.Errorf("records came from %d generations; expected a rotation every two rounds", len(gens))
	}
}
