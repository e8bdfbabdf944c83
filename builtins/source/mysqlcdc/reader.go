package mysqlcdc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
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

	// Rendered once per transaction (prepare).
	prepared     *txn
	preparedFile string
	gtidText     []byte
	posPrefix    []byte
	// The position members up to the row number, rendered once per rows
	// event (every row of it repeats them): for tailPos and tailServer.
	posTail    []byte
	tailPos    uint32
	tailServer uint32
	tailValid  bool

	byID    map[uint64]*tableInfo
	tables  map[tableName]*tableState
	pending int // rows in unflushed batches
	cells   [2][]binlog.Cell
	rows    binlog.RowsEvent
	idBuf   []byte
	tsMs    int64
	lastLag time.Time
	// slabHint sizes the next batch's buffer after the last one, so that
	// it is not grown (and copied) event by event.
	slabHint int
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
	spans  []span // reused: spans live only until their batch is handed out
}

type batchBuilder struct {
	slab  []byte
	spans []span
	msgs  []message.Message
	txns  []*txn
	// Snapshot batches: the key of the last row, and whether the table
	// ends with this batch.
	snapshot  bool
	snapIndex int // in the checkpoint's snapshot tables
	lastKey   [][]byte
	final     bool
}

type span struct{ a, b, ka, kb int }

func newReader(s *Source) *reader {
	src := (&url.URL{Scheme: "mysql", Host: s.o.dsn.Addr}).String()
	r := &reader{
		s:      s,
		enc:    cdc.NewEncoder(cdc.Options{Connector: "mysql", Source: src, Type: EventType}),
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
				return err
			}
			r.file, r.pos = rot.File, uint32(rot.Pos)
			// Table ids are only valid within a file's connection.
			clear(r.byID)
		case binlog.MariaGTIDEvent:
			g, err := binlog.ParseMariaGTID(ev.Header, ev.Body)
			if err != nil {
				return err
			}
			r.begin(ev.Header)
			r.cur.gtids = append(r.cur.gtids[:0], g.GTID)
			if g.Flags&binlog.GTIDStandalone != 0 {
				r.curStandalone = true
			}
		case binlog.MySQLGTIDEvent:
			g, err := binlog.ParseMySQLGTID(ev.Body)
			if err != nil {
				return err
			}
			r.begin(ev.Header)
			r.mysqlGTID = g.String()
		case binlog.QueryEvent:
			q, err := dec.ParseQuery(ev.Body)
			if err != nil {
				return err
			}
			if err := r.query(ctx, ev.Header, q); err != nil {
				return err
			}
		case binlog.XIDEvent:
			if err := r.end(ctx, ev.Header); err != nil {
				return err
			}
		case binlog.TableMapEvent:
			if err := r.tableMap(ctx, dec, ev.Body); err != nil {
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
				return &unsupportedError{msg}
			}
		}
		if r.pending >= r.s.o.maxEvents || r.pending > 0 && r.cur == nil && stream.Buffered() == 0 {
			if err := r.flushAll(ctx); err != nil {
				return err
			}
		}
	}
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
	r.tsMs = int64(h.Timestamp) * 1000
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
func (r *reader) tableMap(ctx context.Context, dec *binlog.Decoder, body []byte) error {
	id := tableIDOf(dec, body)
	if ti := r.byID[id]; ti != nil && bytes.Equal(ti.raw, body) {
		return nil
	}
	tm, err := dec.ParseTableMap(body)
	if err != nil {
		return err
	}
	ti := &tableInfo{raw: append([]byte(nil), body...), tm: tm}
	r.byID[tm.TableID] = ti
	ts := r.tables[tableName{tm.Schema, tm.Table}]
	if ts == nil {
		return nil
	}
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

// rowsEvent turns a rows event of a captured table into change events.
func (r *reader) rowsEvent(ctx context.Context, dec *binlog.Decoder, ev binlog.Event) error {
	re := &r.rows
	if err := dec.ParseRows(ev.Header, ev.Body, re); err != nil {
		return err
	}
	ti := r.byID[re.TableID]
	if ti == nil {
		return fmt.Errorf("rows event for table id %d without its table map", re.TableID)
	}
	if !ti.tracked {
		return nil
	}
	if r.cur == nil {
		r.begin(ev.Header) // rows outside a transaction (a non-transactional engine)
	}
	ts := ti.ts
	for i := range r.cells {
		if cap(r.cells[i]) < re.NCols {
			r.cells[i] = make([]binlog.Cell, re.NCols)
		}
		r.cells[i] = r.cells[i][:re.NCols]
	}
	evPos := ev.LogPos - ev.Size
	tsMs := int64(ev.Timestamp) * 1000
	for re.More() {
		var before, after []binlog.Cell
		var op cdc.Op
		switch re.Kind {
		case binlog.Insert:
			if err := re.NextImage(ti.tm, false, r.cells[1]); err != nil {
				return err
			}
			op, after = cdc.Create, r.cells[1]
		case binlog.Delete:
			if err := re.NextImage(ti.tm, false, r.cells[0]); err != nil {
				return err
			}
			op, before = cdc.Delete, r.cells[0]
		case binlog.Update:
			if err := re.NextImage(ti.tm, false, r.cells[0]); err != nil {
				return err
			}
			if err := re.NextImage(ti.tm, true, r.cells[1]); err != nil {
				return err
			}
			op, before, after = cdc.Update, r.cells[0], r.cells[1]
		}
		b := r.builder(ts)
		if len(b.txns) == 0 || b.txns[len(b.txns)-1] != r.cur {
			if r.cur.rows == 0 {
				r.s.track(r.cur)
			}
			r.s.mu.Lock()
			r.cur.pending++
			r.s.wakeLocked() // a waiting Close need not wait for its end
			r.s.mu.Unlock()
			b.txns = append(b.txns, r.cur)
		}
		r.cur.rows++
		seq := r.curSeq
		r.curSeq++
		r.idBuf = r.appendID(r.idBuf[:0], evPos, seq)
		start := len(b.slab)
		dst := r.enc.Begin(b.slab, ti.table, op, r.idBuf, tsMs)
		var verr error
		dst, verr = r.image(dst, ti, cdc.Before, before, verr)
		dst, verr = r.image(dst, ti, cdc.After, after, verr)
		dst = r.enc.BeginSource(dst, false)
		dst = r.appendPosition(dst, ev.ServerID, evPos, seq)
		dst, key := r.enc.End(dst)
		b.slab = dst
		ka, kb := 0, 0
		if key != nil {
			kb = len(dst) - 2
			ka = kb - len(key)
		}
		b.spans = append(b.spans, span{start, len(dst), ka, kb})
		m := message.Message{Time: time.UnixMilli(tsMs), Pos: message.Position{Stream: r.file, Offset: int64(evPos)}}
		if verr != nil {
			m.Err = fmt.Errorf("%s at %s:%d: %w", ts.lane, r.file, evPos, verr)
		}
		b.msgs = append(b.msgs, m)
		r.pending++
		if len(b.msgs) >= r.s.o.maxEvents {
			if err := r.flush(ctx, ts); err != nil {
				return err
			}
		}
	}
	return nil
}

// image writes a row image (or null).
func (r *reader) image(dst []byte, ti *tableInfo, im cdc.Image, cells []binlog.Cell, verr error) ([]byte, error) {
	if cells == nil {
		return r.enc.NullImage(dst, im), verr
	}
	dst = r.enc.BeginImage(dst, im)
	for i := range cells {
		c := &cells[i]
		if !c.Present {
			continue
		}
		dst = r.enc.Column(dst, i)
		if c.Null {
			dst = cdc.AppendNull(dst)
			continue
		}
		col := &ti.tm.Columns[i]
		var err error
		mark := len(dst)
		if col.Type == binlog.TypeNewDecimal && r.s.o.decimalAsNumber {
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
	return r.enc.EndImage(dst), verr
}

// appendID appends the change's id: "<gtid>:<n>", or "<file>:<pos>:<n>"
// without a GTID.
func (r *reader) appendID(dst []byte, evPos uint32, seq int) []byte {
	r.prepare()
	switch {
	case len(r.gtidText) > 0:
		dst = append(dst, r.gtidText...)
	default:
		dst = append(dst, r.file...)
		dst = append(dst, ':')
		dst = strconv.AppendUint(dst, uint64(evPos), 10)
	}
	dst = append(dst, ':')
	return strconv.AppendInt(dst, int64(seq), 10)
}

// prepare renders, once per transaction, what its changes repeat: the
// GTID text and the source members up to "pos".
func (r *reader) prepare() {
	if r.prepared == r.cur && r.preparedFile == r.file {
		return
	}
	r.prepared, r.preparedFile = r.cur, r.file
	r.tailValid = false
	r.gtidText = r.gtidText[:0]
	switch {
	case r.cur != nil && len(r.cur.gtids) > 0:
		r.gtidText = r.cur.gtids[0].Append(r.gtidText)
	case r.mysqlGTID != "":
		r.gtidText = append(r.gtidText, r.mysqlGTID...)
	}
	p := cdc.AppendMember(r.posPrefix[:0], "gtid")
	if len(r.gtidText) > 0 {
		p = cdc.AppendString(p, r.gtidText)
	} else {
		p = cdc.AppendNull(p)
	}
	p = cdc.AppendMember(p, "file")
	p = cdc.AppendString(p, []byte(r.file))
	r.posPrefix = cdc.AppendMember(p, "pos")
}

// appendPosition appends the source members gtid, file, pos, server_id and
// row.
func (r *reader) appendPosition(dst []byte, serverID, evPos uint32, seq int) []byte {
	r.prepare()
	if !r.tailValid || r.tailPos != evPos || r.tailServer != serverID {
		t := append(r.posTail[:0], r.posPrefix...)
		t = strconv.AppendUint(t, uint64(evPos), 10)
		t = cdc.AppendMember(t, "server_id")
		t = strconv.AppendUint(t, uint64(serverID), 10)
		r.posTail = cdc.AppendMember(t, "row")
		r.tailPos, r.tailServer, r.tailValid = evPos, serverID, true
	}
	dst = append(dst, r.posTail...)
	return strconv.AppendInt(dst, int64(seq), 10)
}

func (r *reader) builder(ts *tableState) *batchBuilder {
	if ts.b == nil {
		n := r.s.o.maxEvents
		if ts.spans == nil {
			ts.spans = make([]span, 0, n)
		}
		ts.b = &batchBuilder{
			slab:  r.s.getSlab(max(r.slabHint, 64<<10)),
			spans: ts.spans[:0],
			msgs:  r.s.getMsgs(n),
		}
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

// flush hands ts's pending batch to Read, waiting for room.
func (r *reader) flush(ctx context.Context, ts *tableState) error {
	b := ts.b
	if b == nil || len(b.msgs) == 0 && !b.final {
		return nil
	}
	ts.b = nil
	ts.spans = b.spans[:0]
	if len(b.msgs) >= r.s.o.maxEvents || len(b.slab) > r.slabHint {
		r.slabHint = len(b.slab) + len(b.slab)/8
	}
	r.pending -= len(b.msgs)
	for i, sp := range b.spans {
		p := b.slab[sp.a:sp.b:sp.b]
		b.msgs[i].Payload, b.msgs[i].Event = p, p
		if sp.kb > sp.ka {
			b.msgs[i].Key = b.slab[sp.ka:sp.kb:sp.kb]
		}
	}
	var ack func(error)
	if b.snapshot {
		idx, lastKey, final := b.snapIndex, b.lastKey, b.final
		ack = func(err error) { r.s.ackSnapshot(idx, lastKey, final, err) }
		if len(b.msgs) == 0 { // the table had no rows left to read: nothing of it is in flight
			ack(nil)
			return nil
		}
	} else {
		txns, slab, msgs := b.txns, b.slab, b.msgs
		ack = func(err error) {
			r.s.ackTxns(txns, err)
			if err == nil {
				// Handled: nothing reads the events any more.
				r.s.putSlab(slab)
				r.s.putMsgs(msgs)
			}
		}
	}
	var once atomic.Bool
	batch := component.Batch{Messages: b.msgs, Lane: ts.lane, Ack: func(err error) {
		if once.CompareAndSwap(false, true) {
			ack(err)
		}
	}}
	select {
	case r.s.out <- batch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
