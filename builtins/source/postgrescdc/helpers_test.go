package postgrescdc

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// pgEnv is one test's corner of the shared PostgreSQL: its own tables,
// slot and publication, dropped at the end (a leftover slot would keep WAL
// on the server).
type pgEnv struct {
	t     testing.TB
	dsn   string
	db    *pgx.Conn
	slot  string
	state string
}

func newPG(t testing.TB) *pgEnv {
	t.Helper()
	dsn := testkit.Postgres(t)
	ctx := context.Background()
	db, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	e := &pgEnv{t: t, dsn: dsn, db: db, slot: testkit.Unique(t, "s"), state: t.TempDir()}
	t.Cleanup(func() {
		e.dropSlot(e.slot)
		e.db.Exec(ctx, "DROP PUBLICATION IF EXISTS "+quoteIdent(e.slot))
		db.Close(ctx)
	})
	return e
}

// dropSlot drops a slot, ending the walsender that may still hold it.
func (e *pgEnv) dropSlot(slot string) {
	ctx := context.Background()
	testkit.Eventually(30*time.Second, func() bool {
		e.db.Exec(ctx, "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL", slot)
		_, err := e.db.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
		return err == nil
	})
}

// table creates a table (its name prefixed with the slot's) and drops it at
// the end. cols is the column list of CREATE TABLE.
func (e *pgEnv) table(name, cols string) string {
	e.t.Helper()
	full := e.slot + "_" + name
	e.exec("CREATE TABLE " + full + " (" + cols + ")")
	e.t.Cleanup(func() { e.db.Exec(context.Background(), "DROP TABLE IF EXISTS "+full) })
	return full
}

// dsnWith returns the test DSN (a URL) with the query parameters added.
func (e *pgEnv) dsnWith(query string) string {
	if strings.Contains(e.dsn, "?") {
		return e.dsn + "&" + query
	}
	return e.dsn + "?" + query
}

func (e *pgEnv) exec(sql string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(context.Background(), sql, args...); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// source builds a postgres_cdc source on the test's slot and state
// directory with the given extra keys.
func (e *pgEnv) source(t testing.TB, extra string) *Source {
	t.Helper()
	return e.sourceConfig(t, fmt.Sprintf("slot = %q\n%s", e.slot, extra))
}

// sourceConfig builds a postgres_cdc source on the test's state directory
// with the given keys besides dsn.
func (e *pgEnv) sourceConfig(t testing.TB, keys string) *Source {
	t.Helper()
	src := fmt.Sprintf("dsn = %q\n%s", e.dsn, keys)
	env := componenttest.Env(t, zerolog.InfoLevel)
	env.StateDir = e.state
	env.Task = "t1"
	return componenttest.Build(t, Register, component.KindSource, Name, src, env).(*Source)
}

// change is a decoded event, for assertions.
type changeEvent struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Data    struct {
		Op     string                     `json:"op"`
		Before map[string]json.RawMessage `json:"before"`
		After  map[string]json.RawMessage `json:"after"`
		Source map[string]any             `json:"source"`
		Key    map[string]json.RawMessage `json:"key"`
	} `json:"data"`
	key string
}

func decodeEvent(t testing.TB, payload, key []byte) changeEvent {
	t.Helper()
	var ev changeEvent
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("event is not JSON: %v\n%s", err, payload)
	}
	ev.key = string(key)
	return ev
}

// collector reads a source in the background, acknowledging everything,
// and keeps the decoded events.
type collector struct {
	t      testing.TB
	src    component.Source
	cancel context.CancelFunc
	done   chan struct{}
	events chan changeEvent
	lanes  chan string
}

func collect(t testing.TB, src component.Source) *collector {
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{t: t, src: src, cancel: cancel, done: make(chan struct{}), events: make(chan changeEvent, 1<<16), lanes: make(chan string, 1<<16)}
	go func() {
		defer close(c.done)
		for {
			b, err := src.Read(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if component.ClassOf(err) == component.ClassTaskPermanent {
					t.Errorf("Read: %v", err)
					return
				}
				continue
			}
			for _, m := range b.Messages {
				var ev changeEvent
				if err := json.Unmarshal(m.Payload, &ev); err != nil {
					t.Errorf("event is not JSON: %v\n%s", err, m.Payload)
				}
				ev.key = string(m.Key)
				c.events <- ev
				c.lanes <- b.Lane
			}
			if b.Ack != nil {
				b.Ack(nil)
			}
		}
	}()
	t.Cleanup(c.stop)
	return c
}

func (c *collector) stop() {
	c.cancel()
	<-c.done
}

// next returns the next event, failing the test when none comes.
func (c *collector) next() changeEvent {
	c.t.Helper()
	select {
	case ev := <-c.events:
		<-c.lanes
		return ev
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		c.t.Fatal("no event came")
	}
	return changeEvent{}
}

func str(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// readCheckpoint returns the raw checkpoint document of the slot's source.
func readCheckpoint(stateDir, slot string) ([]byte, error) {
	return os.ReadFile(filepath.Join(stateDir, "t1", "source.postgres_cdc."+slot+".json"))
}
