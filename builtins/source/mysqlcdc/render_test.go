package mysqlcdc

import (
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
)

// TestRenderBufferGuessIsBounded: the events buffer is sized from the
// events rendered last, which may be another table's one large row; a
// batch of many small rows after it must not ask for that size per row
// (1,000 rows after a 64 KiB event asked for 73 MB to hold 400 KB).
func TestRenderBufferGuessIsBounded(t *testing.T) {
	s := newSource(options{dsn: &mysql.Config{Addr: "h:3306"}, maxEvents: 1000})
	cols := []binlog.Column{{Type: binlog.TypeLong, Name: "id"}}
	ti := &tableInfo{tm: &binlog.TableMap{Columns: cols}, table: cdcTable(tableName{"db", "t"}, cols, []int{0})}
	const n = 1000
	rb := &rowsBuf{arena: make([]byte, 4*n)}
	for i := range n {
		rb.cells = append(rb.cells, binlog.Cell{Present: true, Raw: rb.arena[4*i : 4*i+4]})
	}
	rb.segs = []segment{{ti: ti, rows: binlog.RowsEvent{Kind: binlog.Insert, NCols: 1}, n: n, file: "f", evPos: 4, lane: "db.t"}}
	rb.rows = n
	s.eventSize.Store(64 << 10) // after a batch of one 64 KiB event
	p := &pendingBatch{in: rb, done: make(chan struct{})}
	s.render(s.newRenderer(), p)
	if len(p.Messages) != n {
		t.Fatalf("%d messages, want %d", len(p.Messages), n)
	}
	if used, held := len(p.events.slab), cap(p.events.slab); held > 4*used {
		t.Fatalf("the events buffer holds %d bytes for %d bytes of events", held, used)
	}
	p.events.reset()
	for _, m := range p.events.msgs[:cap(p.events.msgs)] {
		if m.Payload != nil || m.Key != nil {
			t.Fatal("a reset buffer keeps its messages' bytes")
		}
	}
}
