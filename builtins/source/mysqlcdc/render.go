package mysqlcdc

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// Rendering the change events of a stream batch (each row written in the
// envelope) is most of the source's work; the reader only frames the
// binlog, tracks transactions and splits rows into cells, counting them.
// So that the two run side by side on different cores, the reader hands
// each batch out unrendered: the bodies of its rows events (copied into
// the batch's arena), the cells of its rows (slices of the arena) and, per
// run of rows of one event, what their events repeat (table, position,
// transaction, first row number). The batch is rendered by whichever comes
// first: a render worker, or Read when the batch is the next one it hands
// out. Batches reach Read in the reader's order whoever renders them, so
// lanes keep their order and the acknowledgements their meaning.

// eventsBuf is the memory of a batch's events, reused once the batch is
// handled. A stream batch takes one when it is rendered, not when it is
// read: the buffer last released is then the one written, likely still in
// the cache.
type eventsBuf struct {
	slab  []byte            // the events' bytes
	msgs  []message.Message // the messages, over slab
	spans []span            // snapshot batches: each event's bytes in slab
}

func (b *eventsBuf) reset() {
	// The messages point into the slab, and those written before it grew
	// into the array it left: kept for reuse, they would keep that alive.
	clear(b.msgs)
	b.slab, b.msgs, b.spans = b.slab[:0], b.msgs[:0], b.spans[:0]
}

// rowsBuf is what the reader keeps of a stream batch's rows events.
type rowsBuf struct {
	arena []byte    // the rows events' bodies
	segs  []segment // the rows to render
	rows  int       // rows in segs
	// The rows' values, decoded by the reader as it counts them: each
	// row's image (both of an update), a cell per column, over arena.
	cells []binlog.Cell
}

func (b *rowsBuf) reset() {
	b.arena = b.arena[:0]
	clear(b.cells) // their slices are of arena, or of the array it left when it grew
	b.cells = b.cells[:0]
	clear(b.segs) // drop the table references
	b.segs = b.segs[:0]
	b.rows = 0
}

type span struct{ a, b, ka, kb int }

// segment is a run of rows of one rows event in a stream batch.
type segment struct {
	ti       *tableInfo
	rows     binlog.RowsEvent // the event's kind and columns; a cursor at the run's first row
	n        int              // rows of the run
	cells    int              // the index of its first row's cells
	seq      int              // the first row's number in its transaction
	gtid     []byte           // the transaction's GTID text (nil: none)
	file     string
	evPos    uint32 // the rows event's position
	serverID uint32
	tsMs     int64
	lane     string
}

// pendingBatch is a batch on its way to Read.
type pendingBatch struct {
	component.Batch
	// Stream batches not rendered yet: in holds their rows, done is
	// closed once Messages is set (over events), and claimed says who
	// renders them.
	in      *rowsBuf
	events  *eventsBuf
	done    chan struct{}
	claimed atomic.Bool
}

// ready waits for p's events, rendering them here if no worker took them.
func (s *Source) ready(p *pendingBatch) component.Batch {
	if p.done != nil {
		if p.claimed.CompareAndSwap(false, true) {
			rd := s.renderers.Get().(*renderer)
			s.render(rd, p)
			s.renderers.Put(rd)
		} else {
			<-p.done // being rendered: a bounded wait
		}
	}
	return p.Batch
}

// renderWorkers is how many goroutines render batches besides Read: one
// per core beyond the reader's, up to 3 (a reader feeds about four
// renderers: it spends about a fifth of a row's time).
func renderWorkers() int { return min(3, max(1, runtime.GOMAXPROCS(0)-1)) }

// renderLoop renders the batches sent to work until ctx ends.
func (s *Source) renderLoop(ctx context.Context, work <-chan *pendingBatch) {
	rd := s.newRenderer()
	for {
		select {
		case p := <-work:
			if p.claimed.CompareAndSwap(false, true) {
				s.render(rd, p)
			}
		case <-ctx.Done():
			return
		}
	}
}

// renderer writes the events of stream batches; one per goroutine.
type renderer struct {
	enc             *cdc.Encoder
	decimalAsNumber bool
	id              []byte // the id up to the row number
	pos             []byte // the source's position members up to "row":
	seq             []byte // the row number's text
}

func (s *Source) newRenderer() *renderer {
	return &renderer{enc: cdc.NewEncoder(s.encOptions()), decimalAsNumber: s.o.decimalAsNumber}
}

// render writes p's events with rd and marks p done.
func (s *Source) render(rd *renderer, p *pendingBatch) {
	in := p.in
	b := s.events.get()
	p.events = b
	if cap(b.msgs) < in.rows {
		b.msgs = make([]message.Message, 0, in.rows)
	}
	// The buffer is sized at once from the size of the events rendered
	// last: grown by appends it would be copied several times. That size
	// may be another table's (one row of a large blob before many small
	// rows): the guess is capped by what this batch's rows can make, with
	// room for the envelope, and appends grow the rare batch beyond it.
	want := min(int(s.eventSize.Load())*in.rows, 4*len(in.arena)+1024*in.rows)
	if cap(b.slab) < want {
		b.slab = make([]byte, 0, want+want/8)
	}
	dst := b.slab[:0]
	for i := range in.segs {
		dst = rd.segment(dst, b, in, &in.segs[i])
	}
	b.slab = dst
	if in.rows > 0 {
		s.eventSize.Store(int64(len(dst) / in.rows))
	}
	p.Messages = b.msgs
	close(p.done)
}

// segment writes the changes of one run of rows.
func (rd *renderer) segment(dst []byte, b *eventsBuf, in *rowsBuf, sg *segment) []byte {
	ti := sg.ti
	kind, ncols := sg.rows.Kind, sg.rows.NCols
	// What every change of the run repeats: the id up to the row number,
	// the position members up to "row", the time.
	rd.id = rd.id[:0]
	if sg.gtid != nil {
		rd.id = append(rd.id, sg.gtid...)
	} else {
		rd.id = append(rd.id, sg.file...)
		rd.id = append(rd.id, ':')
		rd.id = strconv.AppendUint(rd.id, uint64(sg.evPos), 10)
	}
	rd.id = append(rd.id, ':')
	idLen := len(rd.id)
	rd.pos = appendPosition(rd.pos[:0], sg.gtid, sg.file, sg.evPos, sg.serverID)
	at := time.UnixMilli(sg.tsMs)
	pos := message.Position{Stream: sg.file, Offset: int64(sg.evPos)}
	cells := in.cells[sg.cells:]
	for k := range sg.n {
		var before, after []binlog.Cell
		var op cdc.Op
		switch kind {
		case binlog.Insert:
			op, after, cells = cdc.Create, cells[:ncols], cells[ncols:]
		case binlog.Delete:
			op, before, cells = cdc.Delete, cells[:ncols], cells[ncols:]
		case binlog.Update:
			op, before, after, cells = cdc.Update, cells[:ncols], cells[ncols:2*ncols], cells[2*ncols:]
		}
		rd.seq = strconv.AppendInt(rd.seq[:0], int64(sg.seq+k), 10)
		rd.id = append(rd.id[:idLen], rd.seq...)
		start := len(dst)
		dst = rd.enc.Begin(dst, ti.table, op, rd.id, sg.tsMs)
		var verr error
		dst, verr = rd.image(dst, ti, cdc.Before, before, verr)
		dst, verr = rd.image(dst, ti, cdc.After, after, verr)
		dst = rd.enc.BeginSource(dst, false)
		dst = append(dst, rd.pos...)
		dst = append(dst, rd.seq...)
		var key []byte
		dst, key = rd.enc.End(dst)
		// The event's bytes stay where they were written even when dst
		// grows later (the new array is a copy): its slices stay right.
		pl := dst[start:len(dst):len(dst)]
		b.msgs = append(b.msgs, message.Message{Payload: pl, Event: pl, Key: key, Time: at, Pos: pos})
		if verr != nil {
			b.msgs[len(b.msgs)-1].Err = fmt.Errorf("%s at %s:%d: %w", sg.lane, sg.file, sg.evPos, verr)
		}
	}
	return dst
}

// image writes a row image (or null).
func (rd *renderer) image(dst []byte, ti *tableInfo, im cdc.Image, cells []binlog.Cell, verr error) ([]byte, error) {
	if cells == nil {
		return rd.enc.NullImage(dst, im), verr
	}
	dst = rd.enc.BeginImage(dst, im)
	cols := ti.tm.Columns[:len(cells)]
	for i := range cells {
		c := &cells[i]
		if !c.Present {
			continue
		}
		dst = rd.enc.Column(dst, i)
		if c.Null {
			dst = cdc.AppendNull(dst)
			continue
		}
		col := &cols[i]
		var err error
		mark := len(dst)
		if col.Type == binlog.TypeNewDecimal && rd.decimalAsNumber {
			dst, err = binlog.AppendDecimal(dst, c.Raw, int(col.Meta>>8), int(col.Meta&0xff))
		} else {
			dst, err = binlog.AppendJSON(dst, col, c.Raw)
		}
		if err != nil {
			dst = cdc.AppendNull(dst[:mark])
			if verr == nil {
				verr = fmt.Errorf("column %s: %w", col.Name, err)
			}
		}
	}
	return rd.enc.EndImage(dst), verr
}

// freeList keeps the memory of handled batches for new ones. A free list
// rather than a sync.Pool: a pool is emptied by every other garbage
// collection, and a batch's buffer (hundreds of KiB) allocated again costs
// its zeroing and more collections. Last in, first out: the buffer taken
// is the one most likely still in the cache. What the list cannot hold,
// and all of it once the source closes, goes to spare, a pool shared by
// the process's sources (a source started after another one closed
// starts with its buffers, unless a collection took them).
type freeList[T any] struct {
	mu    sync.Mutex
	free  []*T
	max   int // buffers kept at most
	spare *sync.Pool
}

var spareEvents, spareRows sync.Pool

// How many buffers a source keeps for reuse: rows buffers for as many
// batches as wait in Source.out and a few more (being filled, rendered);
// event buffers for the batches rendered and not yet acknowledged.
const (
	maxFreeRows   = outBatches + 8
	maxFreeEvents = 8
)

func (f *freeList[T]) get() *T {
	f.mu.Lock()
	if n := len(f.free); n > 0 {
		b := f.free[n-1]
		f.free[n-1] = nil
		f.free = f.free[:n-1]
		f.mu.Unlock()
		return b
	}
	f.mu.Unlock()
	if b, ok := f.spare.Get().(*T); ok {
		return b
	}
	return new(T)
}

// put takes back a buffer, reset, that nothing reads any more.
func (f *freeList[T]) put(b *T) {
	if b == nil {
		return
	}
	f.mu.Lock()
	if len(f.free) < f.max {
		f.free = append(f.free, b)
		b = nil
	}
	f.mu.Unlock()
	if b != nil {
		f.spare.Put(b)
	}
}

// release hands every buffer kept to spare.
func (f *freeList[T]) release() {
	f.mu.Lock()
	free := f.free
	f.free = nil
	f.mu.Unlock()
	for _, b := range free {
		f.spare.Put(b)
	}
}

// appendPosition writes the binlog position members of an event's source
// block, up to the name of the last one, "row", whose value (the row's
// number in its transaction) the caller writes. No GTID (a server without
// them) is null.
func appendPosition(dst, gtid []byte, file string, pos, serverID uint32) []byte {
	dst = cdc.AppendMember(dst, "gtid")
	if len(gtid) > 0 {
		dst = cdc.AppendString(dst, gtid)
	} else {
		dst = cdc.AppendNull(dst)
	}
	dst = cdc.AppendMember(dst, "file")
	dst = cdc.AppendString(dst, []byte(file))
	dst = cdc.AppendMember(dst, "pos")
	dst = strconv.AppendUint(dst, uint64(pos), 10)
	dst = cdc.AppendMember(dst, "server_id")
	dst = strconv.AppendUint(dst, uint64(serverID), 10)
	return cdc.AppendMember(dst, "row")
}
