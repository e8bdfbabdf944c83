package engine

import (
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestDrainAccountsGroupsAcrossReads: a group whose outputs straddle two
// reads of the disk buffer is dead-lettered once, with its first failure,
// in the read where it fails (that read is committed before the next is
// delivered), and is not counted delivered when its last output comes; a
// group cut by a drop (the next batch has Gap) does not blame the group
// after it, which is delivered.
func TestDrainAccountsGroupsAcrossReads(t *testing.T) {
	now := time.Unix(0, 0)
	rejected := delivery.Result{Err: errors.New("422 rejected")}
	batch := func(gap bool, offs []int64, lasts ...bool) buffer.Batch {
		b := buffer.Batch{Gap: gap}
		for i, off := range offs {
			b.Msgs = append(b.Msgs, message.Message{Payload: []byte("{}"), Pos: message.Position{Offset: off}})
			b.Tags = append(b.Tags, buffer.Tag{Last: lasts[i]})
		}
		return b
	}
	for _, tc := range []struct {
		name                 string
		gap                  bool
		delivered, deadAfter uint64
	}{
		{"straddling", false, 0, 0}, // the second batch ends the failed group
		{"cut by a drop", true, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &drainer{t: &Task{cfg: Definition{Name: "t"}}}
			out, _, delivered := d.account(batch(false, []int64{1}, false), []delivery.Result{rejected}, now)
			if out != 0 || delivered != 0 || len(d.dead) != 1 {
				t.Fatalf("first read: out %d delivered %d dead %d, want the failed record dead-lettered at once", out, delivered, len(d.dead))
			}
			if d.dead[0].Pos.Offset != 1 || d.dead[0].Err != rejected.Err {
				t.Fatalf("dead letter %+v, want the failed record at offset 1", d.dead[0])
			}
			out, _, delivered = d.account(batch(tc.gap, []int64{2}, true), []delivery.Result{{}}, now)
			if out != 1 || delivered != tc.delivered || uint64(len(d.dead)) != tc.deadAfter {
				t.Fatalf("second read: out %d delivered %d dead %d, want 1, %d, %d", out, delivered, len(d.dead), tc.delivered, tc.deadAfter)
			}
			if d.groupFailed {
				t.Fatal("a failure is still pending after the group ended")
			}
		})
	}
}
