package postgrescdc

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestInsertUpdateDeleteRollback streams a table's changes: an insert, an
// update, a delete, and a rolled-back transaction that emits nothing.
func TestInsertUpdateDeleteRollback(t *testing.T) {
	e := newPG(t)
	tbl := e.table("orders", "id bigint PRIMARY KEY, region text, amount numeric(12,2)")
	src := e.source(t, `tables = ["`+tbl+`"]`)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	e.exec("INSERT INTO " + tbl + " VALUES (1, 'eu', 10.50)")
	e.exec("UPDATE " + tbl + " SET amount = 11 WHERE id = 1")
	tx, err := e.db.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec(context.Background(), "INSERT INTO "+tbl+" VALUES (2, 'us', 1)")
	tx.Rollback(context.Background())
	e.exec("DELETE FROM " + tbl + " WHERE id = 1")
	e.exec("INSERT INTO " + tbl + " VALUES (3, 'ap', 3)")

	ev := c.next()
	if ev.Data.Op != "c" || str(ev.Data.After["region"]) != "eu" || str(ev.Data.After["amount"]) != "10.50" || ev.Data.Before != nil || ev.key != `{"id":1}` {
		t.Fatalf("insert: %+v", ev)
	}
	if ev.Subject != "public."+tbl || ev.Data.Source["table"] != tbl || ev.Data.Source["snapshot"] != false {
		t.Fatalf("insert: %+v", ev)
	}
	ev = c.next()
	if ev.Data.Op != "u" || str(ev.Data.After["amount"]) != "11.00" || ev.Data.Before != nil {
		t.Fatalf("update: %+v", ev)
	}
	ev = c.next()
	if ev.Data.Op != "d" || ev.Data.After != nil || str(ev.Data.Before["id"]) != "1" || len(ev.Data.Before) != 1 || ev.key != `{"id":1}` {
		t.Fatalf("delete: %+v", ev)
	}
	ev = c.next()
	if ev.Data.Op != "c" || str(ev.Data.After["id"]) != "3" {
		t.Fatalf("the rolled-back insert was emitted, or the last insert is missing: %+v", ev)
	}
}

// TestConfirmedPositionAdvances checks that the slot's confirmed position
// follows acknowledged transactions while the source runs (the standby
// heartbeats), and that an idle slot is moved past WAL other tables wrote.
func TestConfirmedPositionAdvances(t *testing.T) {
	e := newPG(t)
	tbl := e.table("adv", "id int PRIMARY KEY")
	other := e.table("other", "id int PRIMARY KEY")
	src := e.source(t, `tables = ["`+tbl+`"]`+"\nstatus_interval = \"50ms\"")
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	confirmed := func() uint64 {
		var s string
		e.db.QueryRow(context.Background(), "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1", e.slot).Scan(&s)
		v, _ := parseLSN(s)
		return v
	}
	currentLSN := func() uint64 {
		var s string
		e.db.QueryRow(context.Background(), "SELECT pg_current_wal_lsn()::text").Scan(&s)
		v, _ := parseLSN(s)
		return v
	}
	e.exec("INSERT INTO " + tbl + " VALUES (1)")
	c.next()
	target := currentLSN()
	testkit.WaitFor(t, "the slot to confirm the acknowledged insert", func() bool { return confirmed() >= target })
	// WAL written by a table outside the publication: the idle slot must not pin it.
	e.exec("INSERT INTO " + other + " SELECT generate_series(1, 1000)")
	target = currentLSN()
	testkit.WaitFor(t, "the idle slot to move past other tables' WAL", func() bool { return confirmed() >= target })
	// The metrics: one insert read, and no lag once the position caught up.
	metric := func(name, label, value string) (float64, bool) {
		return metricstest.Gather(t, src.env.Metrics).Value(name, label, value)
	}
	if n, ok := metric("sluice_postgres_cdc_events_total", "op", "c"); !ok || n != 1 {
		t.Fatalf("events_total{op=c} = %v (%v)", n, ok)
	}
	testkit.WaitFor(t, "the slot lag metric to fall to 0", func() bool {
		v, ok := metric("sluice_postgres_cdc_slot_lag_bytes", "slot", e.slot)
		return ok && v == 0
	})
}

// TestReconnect cuts the connections mid-stream: the source reconnects by
// itself and resumes from the confirmed position, so every change arrives
// (some twice).
func TestReconnect(t *testing.T) {
	e := newPG(t)
	tbl := e.table("cut", "id int PRIMARY KEY")
	proxy := testkit.NewProxy(t, "127.0.0.1:5432")
	u, _ := url.Parse(e.dsn)
	u.Host = proxy.Addr()
	env := componenttest.Env(t, zerolog.InfoLevel)
	env.StateDir = e.state
	src := componenttest.Build(t, Register, component.KindSource, Name,
		fmt.Sprintf("dsn = %q\nslot = %q\ntables = [%q]", u.String(), e.slot, tbl), env).(*Source)
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	c := collect(t, src)
	seen := map[string]bool{}
	take := func(n int) {
		for len(seen) < n {
			ev := c.next()
			seen[str(ev.Data.After["id"])] = true
		}
	}
	for i := 1; i <= 50; i++ {
		e.exec(fmt.Sprintf("INSERT INTO %s VALUES (%d)", tbl, i))
	}
	take(50)
	proxy.Cut()
	for i := 51; i <= 100; i++ {
		e.exec(fmt.Sprintf("INSERT INTO %s VALUES (%d)", tbl, i))
	}
	proxy.Restore()
	take(100)
}
