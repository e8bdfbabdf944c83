package mysqlcdc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/runtime/component"
)

// reader is the goroutine that reads the snapshot and then the binlog,
// turning rows into change events in per-table batches.
type reader struct {
	s   *Source
	enc *cdc.Encoder

	// What has been read of the stream: where a reconnection resumes.
	gtids map[uint32]binlog.GTID
	file  string
	pos   uint32

	cur           *txn // the transaction being read
	curSeq        int  // rows of it emitted (ids number them)
	curStandalone bool // its GTID event says no COMMIT ends it (DDL)
	mysqlGTID     string

	// The current transaction's GTID text (gtidText), rendered for prepared.
	prepared *txn
	gtid     []byte

	byID    map[uint64]*tableInfo
	tables  map[tableName]*tableState
	pending int // rows in unflushed batches
	rows    binlog.RowsEvent
	seg     segment
	idBuf   []byte
	lastLag time.Time
	// work offers stream batches to the render workers.
	work chan *pendingBatch
}

// tableInfo is a table id of the stream.
type tableInfo struct {
	raw     []byte // the table map event's body, to recognise it again
	tracked bool
	ts      *tableState
	tm      *binlog.TableMap
	table   *cdc.Table
}

// tableState is one captured table: its lane and the batch being filled.
type tableState struct {
	name   tableName
	lane   string
	index  int // in options.tables
	schema *binlog.TableSchema
	b      *batchBuilder
}

// batchBuilder is a table's batch being filled: rows to render (stream)
// or rendered events (snapshot).
type batchBuilder struct {
	*rowsBuf          // stream batches
	*eventsBuf        // snapshot batches, rendered as they are read
	n          int    // changes
	txns       []*txn // transactions with changes in it (stream)
	// Snapshot batches: the key of the last row, and whether the table
	// ends with this batch.
	snapshot  bool
	snapIndex int // in the checkpoint's snapshot tables
	lastKey   [][]byte
	final     bool
}

func newReader(s *Source) *reader {
	r := &reader{
		s:      s,
		enc:    cdc.NewEncoder(s.encOptions()),
		byID:   map[uint64]*tableInfo{},
		tables: map[tableName]*tableState{},
		gtids:  parseGTIDs(s.start.GTID),
		file:   s.start.File,
		pos:    s.start.Pos,
	}
	for i, t := range s.o.tables {
		r.tables[t] = &tableState{name: t, lane: t.String(), index: i, schema: s.schemas[t]}
	}
	return r
}

func (r *reader) run(ctx context.Context) error {
	n := renderWorkers()
	r.work = make(chan *pendingBatch, n)
	var wg sync.WaitGroup
	wctx, stop := context.WithCancel(ctx)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.s.renderLoop(wctx, r.work)
		}()
	}
	defer wg.Wait()
	defer stop()
	if r.s.snapConn != nil {
		if err := r.snapshot(ctx); err != nil {
			return err
		}
	}
	return r.stream(ctx)
}

// stream reads the binlog, reconnecting after transient failures.
func (r *reader) stream(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		st := state{GTID: formatGTIDs(r.gtids), File: r.file, Pos: r.pos}
		stream, _, err := r.s.dial(ctx, st)
		if err == nil && stream.File != "" && stream.File != r.file {
			// Resumed by GTID in another file than the checkpoint's (the
			// server rotated its binlog meanwhile): the dump's first rotate,
			// read by dial, names it. Without this, changes and the
			// checkpoint named the old file with offsets of the new one.
			// The offset comes with the next event's header.
			r.file, r.pos = stream.File, 4
		}
		if err == nil {
			r.s.mu.Lock()
			r.s.stream = stream
			r.s.mu.Unlock()
			if ctx.Err() != nil {
				stream.Close()
				return nil
			}
			backoff = 100 * time.Millisecond
			err = r.consume(ctx, stream)
			stream.Close()
			r.abandon()
			if ferr := r.flushAll(ctx); ferr != nil {
				return nil // the context ended
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if component.ClassOf(err) == component.ClassTaskPermanent {
			return err
		}
		r.s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("binlog stream interrupted; reconnecting")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// abandon ends the transaction the stream broke in: its changes emitted so
// far are read again, as a new transaction, after the reconnection.
func (r *reader) abandon() {
	if r.cur == nil {
		return
	}
	t := r.cur
	r.cur = nil
	if t.rows == 0 {
		return // never tracked
	}
	r.s.mu.Lock()
	t.abandoned = true
	t.closed = true
	r.s.advanceLocked()
	r.s.mu.Unlock()
}

// consume reads events until the stream fails.
func (r *reader) consume(ctx context.Context, stream *binlog.Stream) error {
	dec := stream.Decoder()
	for {
		ev, err := stream.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = errors.New("the connection to the server closed")
			}
			return r.s.dumpErr(state{GTID: formatGTIDs(r.gtids), File: r.file, Pos: r.pos}, err)
		}
		switch ev.Type {
		case binlog.RotateEvent:
			rot, err := dec.ParseRotate(ev.Body)
			if err != nil {
				return r.decodeErr(ev, "", err)
			}
			r.file, r.pos = rot.File, uint32(rot.Pos)
			// Table ids are only valid within a file's connection.
			clear(r.byID)
		case binlog.MariaGTIDEvent:
			g, err := binlog.ParseMariaGTID(ev.Header, ev.Body)
			if err != nil {
				return r.decodeErr(ev, "", err)
			}
			r.begin(ev.Header)
			r.cur.gtids = append(r.cur.gtids[:0], g.GTID)
			if g.Flags&binlog.GTIDStandalone != 0 {
				r.curStandalone = true
			}
		case binlog.MySQLGTIDEvent:
			g, err := binlog.ParseMySQLGTID(ev.Body)
			if err != nil {
				return r.decodeErr(ev, "", err)
			}
			r.begin(ev.Header)
			r.mysqlGTID = g.String()
		case binlog.QueryEvent:
			q, err := dec.ParseQuery(ev.Body)
			if err != nil {
				return r.decodeErr(ev, "", err)
			}
			if err := r.query(ctx, ev.Header, q); err != nil {
				return err
			}
		case binlog.XIDEvent:
			if err := r.end(ctx, ev.Header); err != nil {
				return err
			}
		case binlog.TableMapEvent:
			if err := r.tableMap(ctx, dec, ev); err != nil {
				return err
			}
		case binlog.WriteRowsEventV1, binlog.UpdateRowsEventV1, binlog.DeleteRowsEventV1,
			binlog.WriteRowsEventV2, binlog.UpdateRowsEventV2, binlog.DeleteRowsEventV2:
			if err := r.rowsEvent(ctx, dec, ev); err != nil {
				return err
			}
		case binlog.HeartbeatEvent, binlog.HeartbeatEventV2:
			r.s.lag.Set(0)
			if err := r.flushAll(ctx); err != nil {
				return err
			}
		default:
			if msg := ev.Type.Unsupported(); msg != "" {
				if ev.Type.UnreadableRows() {
					// Rows of a table not captured are skipped unread,
					// as readable ones are.
					if ti := r.byID[tableIDOf(dec, ev.Body)]; ti != nil && !ti.tracked {
						break
					}
				}
				// As an undecodable event, it would be read again and again.
				return component.TaskPermanent(fmt.Errorf("mysql_cdc source: %w (the %s event at binlog position %s; the checkpoint stays before its transaction); %s",
					&unsupportedError{msg}, ev.Type, r.eventPos(ev), r.s.pastUnsupported()))
			}
		}
		if r.pending >= r.s.o.maxEvents || r.pending > 0 && r.cur == nil && stream.Buffered() == 0 {
			if err := r.flushAll(ctx); err != nil {
				return err
			}
		}
	}
}

// decodeErr stops the task at an event the decoder cannot read (table:
// the captured table it belongs to, or ""). Reading the binlog again from
// the checkpoint would fail at the same place: a reconnection would only
// emit the transaction's rows before it again, round after round. The
// checkpoint stays before the event's transaction, so nothing is skipped.
func (r *reader) decodeErr(ev binlog.Event, table string, err error) error {
	where := r.eventPos(ev)
	var about []string
	if table != "" {
		about = append(about, "table "+table)
	}
	if r.cur != nil && len(r.cur.gtids) > 0 {
		about = append(about, "transaction "+r.cur.gtids[0].String())
	} else if r.cur != nil && r.mysqlGTID != "" { // between transactions it names the last one
		about = append(about, "transaction "+r.mysqlGTID)
	}
	what := ""
	if len(about) > 0 {
		what = " (" + strings.Join(about, ", ") + ")"
	}
	report := "the server's version (SELECT VERSION())"
	if table != "" {
		report += " and SHOW CREATE TABLE " + table
	}
	return component.TaskPermanent(fmt.Errorf("mysql_cdc source: cannot decode the %s event at binlog position %s%s: %w; "+
		"the task stops: its checkpoint stays before this transaction, so nothing is skipped. "+
		"Report this with %s; once fixed, the task resumes from the same place",
		ev.Type, where, what, err, report))
}

// eventPos names where ev starts in the binlog: file:offset, or the file
// alone for an event the server made up (no offset of its own).
func (r *reader) eventPos(ev binlog.Event) string {
	if ev.LogPos < ev.Size || ev.LogPos == 0 || ev.Flags&binlog.FlagArtificial != 0 {
		return r.file
	}
	return r.file + ":" + strconv.FormatUint(uint64(ev.LogPos-ev.Size), 10)
}

// begin opens a transaction (a GTID event, or BEGIN without GTIDs).
func (r *reader) begin(h binlog.Header) {
	if r.cur != nil {
		// A group without its end (should not happen): treat the new
		// group as its end.
		r.finish(h)
	}
	r.cur = &txn{}
	r.curSeq = 0
	r.curStandalone = false
	r.mysqlGTID = ""
}

func (r *reader) query(ctx context.Context, h binlog.Header, q binlog.Query) error {
	stmt := strings.TrimSpace(q.Query)
	switch {
	case strings.EqualFold(stmt, "BEGIN"):
		if r.cur == nil {
			r.begin(h)
		}
		return nil
	case strings.EqualFold(stmt, "COMMIT"), strings.EqualFold(stmt, "ROLLBACK"):
		return r.end(ctx, h)
	}
	upper := strings.ToUpper(stmt)
	if strings.HasPrefix(upper, "XA ") {
		if strings.HasPrefix(upper, "XA START") || strings.HasPrefix(upper, "XA BEGIN") || strings.HasPrefix(upper, "XA END") {
			return nil
		}
		return r.end(ctx, h)
	}
	// DDL or another statement: tables may have changed.
	for id, ti := range r.byID {
		if ti.tracked {
			delete(r.byID, id)
		}
	}
	for _, ts := range r.tables {
		ts.schema = nil
	}
	if r.cur == nil {
		r.begin(h)
		return r.end(ctx, h)
	}
	if r.curStandalone {
		return r.end(ctx, h)
	}
	return nil
}

// end closes the current transaction at the event with header h.
func (r *reader) end(ctx context.Context, h binlog.Header) error {
	if r.cur == nil {
		r.begin(h)
	}
	r.finish(h)
	return nil
}

func (r *reader) finish(h binlog.Header) {
	t := r.cur
	r.cur = nil
	if h.LogPos >= 4 && h.Flags&binlog.FlagArtificial == 0 {
		r.pos = h.LogPos
	}
	t.file, t.end = r.file, r.pos
	for _, g := range t.gtids {
		r.gtids[g.Domain] = g
	}
	if h.Timestamp > 0 {
		now := time.Now()
		if now.Sub(r.lastLag) > 100*time.Millisecond {
			r.lastLag = now
			r.s.lag.Set(max(0, float64(now.Unix()-int64(h.Timestamp))))
		}
	}
	if t.rows == 0 {
		r.s.passEmpty(t)
		return
	}
	r.s.closeTxn(t)
}

// tableMap learns a table id.
func (r *reader) tableMap(ctx context.Context, dec *binlog.Decoder, ev binlog.Event) error {
	body := ev.Body
	id := tableIDOf(dec, body)
	if ti := r.byID[id]; ti != nil && bytes.Equal(ti.raw, body) {
		return nil
	}
	tm, err := dec.ParseTableMap(body)
	if err != nil {
		return r.decodeErr(ev, "", err)
	}
	ti := &tableInfo{raw: append([]byte(nil), body...), tm: tm}
	ts := r.tables[tableName{tm.Schema, tm.Table}]
	if ts == nil {
		r.byID[tm.TableID] = ti
		return nil
	}
	// A captured table's id is known once its columns are: after a failure
	// below (a reconnection follows), the id's table map is read in full
	// again. Known before, it matched the table map read again after the
	// reconnection, untracked, and the table's changes were skipped.
	delete(r.byID, tm.TableID)
	if ts.schema == nil {
		sc, err := binlog.LoadSchema(ctx, r.s.db, tm.Schema, tm.Table)
		if err != nil {
			return r.s.queryErr("read the columns of "+ts.lane, err)
		}
		if sc == nil {
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: table %s was dropped; its binlog events cannot be decoded without its columns (remove it from tables)", ts.lane))
		}
		ts.schema = sc
	}
	if err := applySchema(ts.schema, tm, r.s.log); err != nil {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: %w", err))
	}
	ti.tracked, ti.ts = true, ts
	ti.table = cdcTable(ts.name, tm.Columns, ts.schema.Key)
	r.byID[tm.TableID] = ti
	return nil
}

// tableIDOf peeks at a table map's id without parsing the rest.
func tableIDOf(dec *binlog.Decoder, body []byte) uint64 {
	if len(body) < 6 {
		return 0
	}
	var id uint64
	for i := range 6 {
		id |= uint64(body[i]) << (8 * i)
	}
	return id
}

func cdcTable(n tableName, cols []binlog.Column, key []int) *cdc.Table {
	cc := make([]cdc.Column, len(cols))
	for i, c := range cols {
		cc[i] = cdc.Column{Name: c.Name}
	}
	t := cdc.NewTable(n.DB, "", n.Table, cc, key)
	t.SetSubject(n.String())
	return t
}

// rowsEvent takes the rows of a captured table's rows event into the
// table's batch: their changes are rendered later (render.go); here they
// are counted, numbered and tracked with their transaction.
func (r *reader) rowsEvent(ctx context.Context, dec *binlog.Decoder, ev binlog.Event) error {
	re := &r.rows
	// A table not captured is known by its id, at the start of every rows
	// event: its rows are skipped unread, so that they cannot stop the
	// task either.
	known := r.byID[tableIDOf(dec, ev.Body)]
	if known != nil && !known.tracked {
		return nil
	}
	if err := dec.ParseRows(ev.Header, ev.Body, re); err != nil {
		lane := ""
		if known != nil {
			lane = known.ts.lane
		}
		return r.decodeErr(ev, lane, err)
	}
	ti := r.byID[re.TableID]
	if ti == nil {
		return r.decodeErr(ev, "", fmt.Errorf("rows event for table id %d without its table map", re.TableID))
	}
	if !ti.tracked {
		return nil
	}
	if r.cur == nil {
		r.begin(ev.Header) // rows outside a transaction (a non-transactional engine)
	}
	ts := ti.ts
	b := r.builder(ts)
	sg, err := r.segment(dec, b, ev, ti, 0)
	if err != nil {
		return r.decodeErr(ev, ts.lane, err)
	}
	rows := &sg.rows
	cur := *rows // the cursor that counts, sg.rows stays at the first row
	read := 0    // rows of the event read
	for cur.More() {
		if err := b.decodeRow(&cur, ti.tm); err != nil {
			if sg.n > 0 {
				b.segs = append(b.segs, *sg) // the rows before it are emitted
			}
			return r.decodeErr(ev, ts.lane, err)
		}
		read++
		if sg.n == 0 {
			r.join(b)
		}
		sg.n++
		r.cur.rows++
		r.curSeq++
		b.n++
		r.pending++
		if b.n >= r.s.o.maxEvents {
			b.segs = append(b.segs, *sg)
			if err := r.flush(ctx, ts); err != nil {
				return err
			}
			if !cur.More() {
				return nil
			}
			// The event's other rows go to the next batch, over a copy
			// of the event of its own (the batches are released apart).
			b = r.builder(ts)
			if sg, err = r.segment(dec, b, ev, ti, read); err != nil {
				return r.decodeErr(ev, ts.lane, err)
			}
			cur = sg.rows
		}
	}
	if sg.n > 0 {
		b.segs = append(b.segs, *sg)
	}
	return nil
}

// segment starts a run of ev's rows in b, after its first skip rows: the
// event's body is copied into b's arena and parsed there.
func (r *reader) segment(dec *binlog.Decoder, b *batchBuilder, ev binlog.Event, ti *tableInfo, skip int) (*segment, error) {
	at := len(b.arena)
	b.arena = append(b.arena, ev.Body...)
	body := b.arena[at:len(b.arena):len(b.arena)]
	sg := &r.seg
	*sg = segment{ti: ti, seq: r.curSeq, cells: len(b.cells), file: r.file, evPos: ev.LogPos - ev.Size, serverID: ev.ServerID,
		tsMs: int64(ev.Timestamp) * 1000, lane: ti.ts.lane}
	if g := r.gtidText(); len(g) > 0 {
		at := len(b.arena)
		b.arena = append(b.arena, g...)
		sg.gtid = b.arena[at:len(b.arena):len(b.arena)]
	}
	if err := dec.ParseRows(ev.Header, body, &sg.rows); err != nil {
		return nil, err
	}
	for range skip {
		if err := skipRow(&sg.rows, ti.tm); err != nil {
			return nil, err
		}
	}
	return sg, nil
}

// decodeRow reads the next row of re (its image, or both of an update) into
// b's cells, for the renderer: their values are slices of b's arena.
func (b *rowsBuf) decodeRow(re *binlog.RowsEvent, tm *binlog.TableMap) error {
	n, at := re.NCols, len(b.cells)
	images := 1
	if re.Kind == binlog.Update {
		images = 2
	}
	b.cells = slices.Grow(b.cells, images*n)[:at+images*n]
	if err := re.NextImage(tm, false, b.cells[at:at+n]); err != nil || images == 1 {
		return err
	}
	return re.NextImage(tm, true, b.cells[at+n:at+2*n])
}

// skipRow passes over the next row of re: its image, or both of an update.
// Its values are decoded when the batch is rendered.
func skipRow(re *binlog.RowsEvent, tm *binlog.TableMap) error {
	if err := re.SkipImage(tm, false); err != nil || re.Kind != binlog.Update {
		return err
	}
	return re.SkipImage(tm, true)
}

// join counts the current transaction among b's: b holds changes of it.
func (r *reader) join(b *batchBuilder) {
	if len(b.txns) > 0 && b.txns[len(b.txns)-1] == r.cur {
		return
	}
	if r.cur.rows == 0 {
		r.s.track(r.cur)
	}
	r.s.mu.Lock()
	r.cur.pending++
	r.s.wakeLocked() // a waiting Close need not wait for its end
	r.s.mu.Unlock()
	b.txns = append(b.txns, r.cur)
}

// gtidText is the current transaction's GTID as ids and the source's gtid
// member write it, rendered once per transaction; empty without GTIDs.
func (r *reader) gtidText() []byte {
	if r.prepared == r.cur {
		return r.gtid
	}
	r.prepared = r.cur
	r.gtid = r.gtid[:0]
	switch {
	case r.cur != nil && len(r.cur.gtids) > 0:
		r.gtid = r.cur.gtids[0].Append(r.gtid)
	case r.mysqlGTID != "":
		r.gtid = append(r.gtid, r.mysqlGTID...)
	}
	return r.gtid
}

func (r *reader) builder(ts *tableState) *batchBuilder {
	if ts.b == nil {
		ts.b = &batchBuilder{rowsBuf: r.s.rowsBufs.get()}
	}
	return ts.b
}

// flushAll hands every table's pending batch to Read.
func (r *reader) flushAll(ctx context.Context) error {
	for _, t := range r.s.o.tables {
		if err := r.flush(ctx, r.tables[t]); err != nil {
			return err
		}
	}
	return nil
}

// flush hands ts's pending batch to Read, waiting for room. A stream batch
// goes unrendered, offered to the render workers on the way.
func (r *reader) flush(ctx context.Context, ts *tableState) error {
	b := ts.b
	if b == nil || b.n == 0 && !b.final {
		return nil
	}
	ts.b = nil
	r.pending -= b.n
	p := &pendingBatch{in: b.rowsBuf, events: b.eventsBuf}
	p.Lane = ts.lane
	// release takes the batch's memory back once it is handled: nothing
	// reads its events any more.
	release := func() {
		if p.events != nil {
			p.events.reset()
			r.s.events.put(p.events)
		}
		p.in.reset()
		r.s.rowsBufs.put(p.in)
	}
	var ack func(error)
	if b.snapshot {
		if ev := p.events; ev != nil {
			for i, sp := range ev.spans {
				pl := ev.slab[sp.a:sp.b:sp.b]
				ev.msgs[i].Payload, ev.msgs[i].Event = pl, pl
				if sp.kb > sp.ka {
					ev.msgs[i].Key = ev.slab[sp.ka:sp.kb:sp.kb]
				}
			}
			p.Messages = ev.msgs
		}
		idx, lastKey, final := b.snapIndex, b.lastKey, b.final
		ack = func(err error) {
			r.s.ackSnapshot(idx, lastKey, final, err)
			if err == nil {
				release()
			}
		}
		if b.n == 0 { // the table had no rows left to read: nothing of it is in flight
			ack(nil)
			return nil
		}
	} else {
		txns := b.txns
		ack = func(err error) {
			r.s.ackTxns(txns, err)
			if err == nil {
				release()
			}
		}
	}
	var once atomic.Bool
	p.Ack = func(err error) {
		if once.CompareAndSwap(false, true) {
			ack(err)
		}
	}
	if !b.snapshot {
		p.in.rows = b.n
		p.done = make(chan struct{})
		select {
		case r.work <- p:
		default: // the workers are busy: Read renders it
		}
	}
	for {
		select {
		case r.s.out <- p:
			return nil
		default:
		}
		// Full: wait until Read has taken half of the queue (took).
		select {
		case <-r.s.room:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
