package mysqlcdc

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestConformance(t *testing.T) {
	f := newFixture(t)
	table := f.table("conf", "id BIGINT AUTO_INCREMENT PRIMARY KEY, body JSON")
	f.exec("INSERT INTO " + table + " (body) VALUES ('{\"snapshot\":1}')")
	src := f.config([]string{table}, "max_events = 7\nheartbeat = \"1s\"\n")
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(testing.TB) component.Source { return f.build(src) },
		Produce: func(t testing.TB, bodies [][]byte) {
			tx, err := f.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			for i, b := range bodies {
				if _, err := tx.Exec("INSERT INTO "+table+" (body) VALUES (?)", string(b)); err != nil {
					t.Fatal(err)
				}
				if i%10 == 9 { // several transactions per call
					if err := tx.Commit(); err != nil {
						t.Fatal(err)
					}
					if tx, err = f.db.Begin(); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		},
		Body: func(t testing.TB, m message.Message) []byte {
			c := decode(t, "", m.Payload, m.Key)
			if c.Data.Op != "c" {
				return nil
			}
			b, err := json.Marshal(c.Data.After["body"])
			if err != nil {
				t.Fatal(err)
			}
			var v map[string]any
			json.Unmarshal(b, &v)
			if v["conformance"] == nil {
				return nil
			}
			// The column holds the body as written; the event embeds it.
			var ev struct {
				Data struct {
					After struct {
						Body json.RawMessage `json:"body"`
					} `json:"after"`
				} `json:"data"`
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatal(err)
			}
			return ev.Data.After.Body
		},
		Redelivers: true,
		Ordered:    true,
	})
}

// TestStreamChanges: inserts, updates, deletes and a rolled-back
// transaction, as the stream reports them.
func TestStreamChanges(t *testing.T) {
	f := newFixture(t)
	table := f.table("chg", "id INT PRIMARY KEY, name VARCHAR(20), qty INT")
	f.exec("INSERT INTO " + table + " VALUES (1, 'one', 1), (2, 'two', 2)")
	s := f.open(f.config([]string{table}, ""))
	c := collect(t, s)
	c.waitFor(t, "the snapshot", func(ch []change) bool { return len(ch) == 2 })
	f.exec("UPDATE " + table + " SET qty = 10 WHERE id = 1")
	f.exec("DELETE FROM " + table + " WHERE id = 2")
	tx, err := f.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Exec("INSERT INTO " + table + " VALUES (3, 'rolled back', 3)")
	tx.Exec("UPDATE " + table + " SET qty = 99 WHERE id = 1")
	tx.Rollback()
	f.exec("INSERT INTO " + table + " VALUES (4, 'four', 4)")
	got := c.waitFor(t, "the changes", func(ch []change) bool { return len(ch) >= 5 })
	want := []struct {
		op       string
		id       string
		snapshot bool
	}{{"r", "1", true}, {"r", "2", true}, {"u", "1", false}, {"d", "2", false}, {"c", "4", false}}
	if len(got) != len(want) {
		t.Fatalf("%d changes, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		img := g.Data.After
		if w.op == "d" {
			img = g.Data.Before
		}
		if g.Data.Op != w.op || fmt.Sprint(img["id"]) != w.id || g.Data.Source.Snapshot != w.snapshot {
			t.Errorf("change %d: %s id %v snapshot %v, want %s %s %v", i, g.Data.Op, img["id"], g.Data.Source.Snapshot, w.op, w.id, w.snapshot)
		}
		if g.key != fmt.Sprintf(`{"id":%s}`, w.id) {
			t.Errorf("change %d: record key %s", i, g.key)
		}
		if g.lane != table {
			t.Errorf("change %d: lane %q, want %q", i, g.lane, table)
		}
	}
	if u := got[2]; fmt.Sprint(u.Data.Before["qty"]) != "1" || fmt.Sprint(u.Data.After["qty"]) != "10" {
		t.Errorf("update: before %v after %v", u.Data.Before, u.Data.After)
	}
	if got[2].Data.Source.GTID == nil || got[2].ID != *got[2].Data.Source.GTID+":0" {
		t.Errorf("update id %q, gtid %v", got[2].ID, got[2].Data.Source.GTID)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A new source resumes after what was acknowledged: nothing again.
	f.exec("INSERT INTO " + table + " VALUES (5, 'five', 5)")
	s2 := f.open(f.config([]string{table}, ""))
	c2 := collect(t, s2)
	got = c2.waitFor(t, "the insert after the restart", func(ch []change) bool { return len(ch) >= 1 })
	if got[0].Data.Op != "c" || fmt.Sprint(got[0].Data.After["id"]) != "5" {
		t.Fatalf("after restart: %+v", got[0].Data)
	}
}

// TestRewind: a nacked batch, then Rewind (a blocked task resumed): the
// nacked changes and everything after them are read again, what was
// acknowledged before them is not.
func TestRewind(t *testing.T) {
	f := newFixture(t)
	table := f.table("rw", "id INT PRIMARY KEY, v INT")
	s := f.open(f.config([]string{table}, "snapshot = false\nmax_events = 1\n"))
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		f.exec(fmt.Sprintf("INSERT INTO %s VALUES (%d, %d)", table, i, i))
	}
	read := func() change {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Messages) != 1 {
			t.Fatalf("%d messages", len(b.Messages))
		}
		c := decode(t, b.Lane, b.Messages[0].Payload, b.Messages[0].Key)
		c.ack = b.Ack
		return c
	}
	var ids []string
	for range 4 {
		c := read()
		ids = append(ids, fmt.Sprint(c.Data.After["id"]))
		switch c.Data.After["id"] {
		case json.Number("3"):
			c.ack(fmt.Errorf("sink down"))
		default:
			c.ack(nil)
		}
	}
	if fmt.Sprint(ids) != "[1 2 3 4]" {
		t.Fatalf("read %v", ids)
	}
	if err := s.Rewind(ctx); err != nil {
		t.Fatal(err)
	}
	ids = nil
	for range 4 {
		c := read()
		ids = append(ids, fmt.Sprint(c.Data.After["id"]))
		c.ack(nil)
	}
	if fmt.Sprint(ids) != "[3 4 5 6]" {
		t.Fatalf("after Rewind: %v, want [3 4 5 6]", ids)
	}
}

// TestReconnect cuts the replication connection (a TCP proxy in between)
// in the middle of a stream of transactions: the source reconnects from
// the last transaction it read and every change arrives, those read twice
// with the same id and content.
func TestReconnect(t *testing.T) {
	f := newFixture(t)
	table := f.table("cut", "id INT PRIMARY KEY, v INT")
	mc, _ := mysql.ParseDSN(f.dsn)
	proxy := testkit.NewProxy(t, mc.Addr)
	mc.Addr = proxy.Addr()
	f.dsn = mc.FormatDSN()
	s := f.open(f.config([]string{table}, "snapshot = false\nheartbeat = \"200ms\"\nmax_events = 10\n"))
	c := collect(t, s)
	write := func(from, to int) {
		for i := from; i <= to; i++ {
			tx, err := f.db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			tx.Exec(fmt.Sprintf("INSERT INTO %s VALUES (%d, 0)", table, i))
			tx.Exec(fmt.Sprintf("UPDATE %s SET v = %d WHERE id = %d", table, i, i))
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(1, 50)
	c.waitFor(t, "the first changes", func(ch []change) bool { return len(ch) >= 20 })
	proxy.Cut()
	write(51, 100)
	proxy.Restore()
	write(101, 150)
	got := c.waitFor(t, "every change after the cut", func(ch []change) bool {
		ids := map[string]bool{}
		for _, x := range ch {
			ids[x.ID] = true
		}
		return len(ids) == 300
	})
	byID := map[string]string{}
	for _, x := range got {
		body := fmt.Sprint(x.Data.Op, x.Data.Before, x.Data.After)
		if prev, ok := byID[x.ID]; ok && prev != body {
			t.Fatalf("change %s read twice with different content: %s / %s", x.ID, prev, body)
		}
		byID[x.ID] = body
	}
	want := f.rowsOf(table, "v")
	if st := apply(got, []string{"v"}); !reflect.DeepEqual(st, want) {
		t.Fatalf("replayed state differs from the table (%d rows vs %d)", len(st), len(want))
	}
	t.Logf("%d change events for 300 changes", len(got))
}

// TestRowsEventAcrossBatches writes statements whose rows event holds more
// rows than a batch: the event is split over batches (each rendered on its
// own), and the changes keep their order, their numbers in the transaction
// and their values.
func TestRowsEventAcrossBatches(t *testing.T) {
	f := newFixture(t)
	table := f.table("split", "id INT PRIMARY KEY, v VARCHAR(20)")
	s := f.open(f.config([]string{table}, "snapshot = false\nmax_events = 7\n"))
	f.exec("INSERT INTO " + table + " SELECT seq, CONCAT('v', seq) FROM seq_1_to_25")
	f.exec("UPDATE " + table + " SET v = CONCAT('w', id)")
	f.exec("DELETE FROM " + table)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	var got []change
	for len(got) < 75 {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("after %d changes: %v", len(got), err)
		}
		if len(b.Messages) > 7 {
			t.Fatalf("a batch of %d changes, max_events 7", len(b.Messages))
		}
		for _, m := range b.Messages {
			if m.Err != nil {
				t.Fatal(m.Err)
			}
			got = append(got, decode(t, b.Lane, m.Payload, m.Key))
		}
		b.Ack(nil)
	}
	for i, c := range got {
		stmt, n := i/25, i%25
		id := n + 1
		op := []string{"c", "u", "d"}[stmt]
		if c.Data.Op != op {
			t.Fatalf("change %d: op %q, want %q (%s)", i, c.Data.Op, op, c.ID)
		}
		if want := fmt.Sprintf("%s:%d", *c.Data.Source.GTID, n); c.ID != want {
			t.Fatalf("change %d: id %s, want %s", i, c.ID, want)
		}
		if want := fmt.Sprintf(`{"id":%d}`, id); c.key != want {
			t.Fatalf("change %d: key %s, want %s", i, c.key, want)
		}
		img, v := c.Data.After, fmt.Sprintf("v%d", id)
		switch op {
		case "u":
			if c.Data.Before["v"] != v {
				t.Fatalf("change %d: before %v, want v = %s", i, c.Data.Before, v)
			}
			v = fmt.Sprintf("w%d", id)
		case "d":
			img, v = c.Data.Before, fmt.Sprintf("w%d", id)
		}
		if img["id"] != json.Number(fmt.Sprint(id)) || img["v"] != v {
			t.Fatalf("change %d (%s): image %v, want id %d, v %s", i, c.ID, img, id, v)
		}
	}
}
