package postgrescdc

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestSnapshotConnectionLostBetweenChunksIsRetried loses the snapshot's
// connection while the snapshot waits between two chunks (the network
// cut, or the backend terminated as a server restart or a DBA does): the
// next chunk's query fails, which must be retried like any lost connection
// (the snapshot resumes from its last delivered chunk), not stop the task.
// The failed query has no columns, and the source took that for a table
// whose primary key is missing; and a server's error (57P01, terminating
// connection due to administrator command) was task-permanent.
func TestSnapshotConnectionLostBetweenChunksIsRetried(t *testing.T) {
	for _, how := range []string{"cut", "terminated"} {
		t.Run(how, func(t *testing.T) {
			e := newPG(t)
			tbl := e.table("cutsnap", "id int PRIMARY KEY")
			e.exec("INSERT INTO " + tbl + " SELECT generate_series(1, 100)")
			proxy := testkit.NewProxy(t, "127.0.0.1:5432")
			u, _ := url.Parse(e.dsn)
			u.Host = proxy.Addr()
			q := u.Query()
			q.Set("application_name", e.slot)
			u.RawQuery = q.Encode()
			env := componenttest.Env(t, zerolog.InfoLevel)
			env.StateDir = e.state
			src := componenttest.Build(t, Register, component.KindSource, Name,
				fmt.Sprintf("dsn = %q\nslot = %q\ntables = [%q]\nsnapshot_chunk = 5\nbatch = { max_events = 5 }", u.String(), e.slot, tbl), env).(*Source)
			ctx := context.Background()
			if err := src.Open(ctx); err != nil {
				t.Fatal(err)
			}
			defer src.Close(ctx)
			// Nothing is read yet: the snapshot fills the outbox and waits
			// for room after a whole chunk, before the next chunk's query.
			testkit.WaitFor(t, "the snapshot to wait for room", func() bool {
				src.ob.mu.Lock()
				defer src.ob.mu.Unlock()
				return len(src.ob.sealed) >= src.ob.maxQueued
			})
			restored := false
			if how == "cut" {
				proxy.Cut()
			} else {
				restored = true
				e.exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
					WHERE application_name = $1 AND backend_type = 'client backend' AND state = 'idle in transaction'`, e.slot)
			}
			rows := map[string]bool{}
			deadline := time.Now().Add(testkit.Scale(testkit.DefaultWait))
			for len(rows) < 100 {
				if time.Now().After(deadline) {
					t.Fatalf("%d of 100 rows read", len(rows))
				}
				rctx, cancel := context.WithTimeout(ctx, time.Second)
				b, err := src.Read(rctx)
				cancel()
				if err != nil {
					if component.ClassOf(err) == component.ClassTaskPermanent {
						t.Fatalf("a lost connection during the snapshot stopped the task: %v", err)
					}
					if !restored {
						proxy.Restore()
						restored = true
					}
					continue
				}
				for _, m := range b.Messages {
					rows[str(decodeEvent(t, m.Payload, m.Key).Data.After["id"])] = true
				}
				b.Ack(nil)
			}
		})
	}
}
