package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/pgtext"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// session is one START_REPLICATION on the replication connection. The
// decoding goroutine reads; the status goroutine writes the standby status
// updates (heartbeats carrying the confirmed position), which keep the
// server from timing the connection out even while the decoder waits for
// the engine.
type session struct {
	s       *Source
	conn    *pgconn.PgConn
	wmu     sync.Mutex // one writer at a time
	reply   chan struct{}
	ka      chan struct{} // a keepalive arrived
	kaCount atomic.Uint64
	end     atomic.Uint64 // the server's WAL end, last seen
	aborted atomic.Bool
	stop    chan struct{}
	done    chan struct{}
}

// relInfo is what the decoder knows about a relation of the stream.
type relInfo struct {
	table *cdc.Table
	types []pgtext.ColType
	isKey []bool // replica identity columns
	lane  string
}

// streamChanges starts replication at the confirmed position and decodes
// until the connection ends.
func (s *Source) streamChanges(ctx context.Context) error {
	start := s.ob.position()
	err := pglogrepl.StartReplication(ctx, s.repl, s.cfg.Slot, pglogrepl.LSN(start), pglogrepl.StartReplicationOptions{
		Mode:       pglogrepl.LogicalReplication,
		PluginArgs: []string{"proto_version '1'", "publication_names " + quoteLiteral(quoteIdent(s.cfg.publication()))},
	})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			switch pe.Code {
			case "42704":
				return component.TaskPermanent(fmt.Errorf("postgres %s: replication slot %q does not exist any more (dropped while the task ran): restart the task to create it again (with a snapshot) or restore it", s.where, s.cfg.Slot))
			case "55006":
				return component.Retryable(fmt.Errorf("postgres %s: replication slot %q is in use: %s", s.where, s.cfg.Slot, pe.Message), 0)
			}
			return s.queryErr("START_REPLICATION", err)
		}
		return component.Retryable(fmt.Errorf("postgres %s: START_REPLICATION: %w", s.where, err), 0)
	}
	sess := &session{s: s, conn: s.repl, reply: make(chan struct{}, 1), ka: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return errClosed
	}
	if s.rewind {
		s.mu.Unlock()
		return errRewound
	}
	s.stream = sess
	s.mu.Unlock()
	s.log.Info().Str("slot", s.cfg.Slot).Str("from", string(appendLSN(nil, start))).Msg("streaming changes")
	go sess.statusLoop()
	defer func() {
		close(sess.stop)
		<-sess.done
		s.mu.Lock()
		s.stream = nil
		s.mu.Unlock()
	}()
	d := &decoder{s: s, sess: sess, enc: s.newEncoder(), conv: &pgtext.Converter{DecimalAsNumber: s.cfg.DecimalAsNumber},
		types: pgtext.NewTypeCache(), rels: map[uint32]*relInfo{}}
	d.ops[0], d.ops[1], d.ops[2] = s.opCounter(cdc.Create), s.opCounter(cdc.Update), s.opCounter(cdc.Delete)
	return d.loop(ctx)
}

func (s *Source) opCounter(op cdc.Op) func() {
	if s.events == nil {
		return func() {}
	}
	c := s.events.WithLabelValues(s.env.Task, string(op))
	return c.Inc
}

// statusLoop sends the confirmed position every status_interval, and at
// once when the server asks.
func (ss *session) statusLoop() {
	defer close(ss.done)
	t := time.NewTicker(ss.s.cfg.StatusInterval.D())
	defer t.Stop()
	for {
		select {
		case <-ss.stop:
			return
		case <-t.C:
		case <-ss.reply:
		}
		if err := ss.send(false); err != nil {
			ss.abort()
			return
		}
	}
}

// send writes a standby status update with the confirmed position.
func (ss *session) send(replyRequested bool) error {
	pos := ss.s.ob.position()
	if end := ss.end.Load(); end > pos {
		ss.s.lag.Set(float64(end - pos))
	} else {
		ss.s.lag.Set(0)
	}
	ss.wmu.Lock()
	defer ss.wmu.Unlock()
	return pglogrepl.SendStandbyStatusUpdate(context.Background(), ss.conn, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pglogrepl.LSN(pos), WALFlushPosition: pglogrepl.LSN(pos), WALApplyPosition: pglogrepl.LSN(pos),
		ReplyRequested: replyRequested,
	})
}

// finish reports the confirmed position and waits (briefly) for the
// server's answer, which it sends after taking the position.
func (ss *session) finish(ctx context.Context) {
	before := ss.kaCount.Load()
	if err := ss.send(true); err != nil {
		return
	}
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	for ss.kaCount.Load() == before {
		select {
		case <-ss.ka:
		case <-t.C:
			ss.s.log.Warn().Msg("the server did not answer the last status update; changes acknowledged in the last moments may be read again")
			return
		case <-ctx.Done():
			return
		}
	}
}

// abort ends the session: the decoder's read fails and run reconnects from
// the confirmed position (a rewind), or stops when closing.
func (ss *session) abort() {
	if ss.aborted.CompareAndSwap(false, true) {
		if nc := ss.conn.Conn(); nc != nil {
			nc.Close()
		}
	}
}

// decoder turns pgoutput messages into events.
type decoder struct {
	s     *Source
	sess  *session
	enc   *cdc.Encoder
	conv  *pgtext.Converter
	types *pgtext.TypeCache
	rels  map[uint32]*relInfo
	ops   [3]func()

	inTxn   bool
	begin   beginMsg
	n       int32 // changes so far in the transaction
	ch      change
	id      []byte
	changed []int // unchanged TOAST columns of the current event
}

func (d *decoder) loop(ctx context.Context) error {
	s := d.s
	for {
		msg, err := d.sess.conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if d.sess.aborted.Load() {
				return errors.New("replication restarted from the confirmed position")
			}
			return component.Retryable(fmt.Errorf("postgres %s: replication stream: %w", s.where, err), 0)
		}
		switch m := msg.(type) {
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return component.Retryable(err, 0)
				}
				d.sess.end.Store(uint64(ka.ServerWALEnd))
				if !d.inTxn {
					// Nothing is open: everything before the server's WAL
					// end was sent, so confirming it (once the batches read
					// so far are handled) lets the server recycle WAL that
					// other tables and databases wrote.
					s.ob.addMark(mark{lsn: uint64(ka.ServerWALEnd)})
				}
				d.sess.kaCount.Add(1)
				notify(d.sess.ka)
				if ka.ReplyRequested {
					notify(d.sess.reply)
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return component.Retryable(err, 0)
				}
				if uint64(xld.ServerWALEnd) > d.sess.end.Load() {
					d.sess.end.Store(uint64(xld.ServerWALEnd))
				}
				if err := d.handle(ctx, uint64(xld.WALStart), xld.WALData); err != nil {
					return err
				}
			}
		case *pgproto3.ErrorResponse:
			pe := pgconn.ErrorResponseToPgError(m)
			return component.Retryable(fmt.Errorf("postgres %s: replication stream: %s (SQLSTATE %s)", s.where, pe.Message, pe.Code), 0)
		case *pgproto3.CopyDone:
			return component.Retryable(fmt.Errorf("postgres %s: the server ended the replication stream", s.where), 0)
		}
	}
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// handle decodes one pgoutput message.
func (d *decoder) handle(ctx context.Context, lsn uint64, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	s := d.s
	bad := func(err error) error {
		return component.TaskPermanent(fmt.Errorf("postgres %s: undecodable pgoutput message %q at %s: %w", s.where, data[0], appendLSN(nil, lsn), err))
	}
	switch data[0] {
	case 'B':
		b, err := parseBegin(data[1:])
		if err != nil {
			return bad(err)
		}
		d.inTxn, d.begin, d.n = true, b, 0
		s.ob.setTxn(true, nil)
	case 'C':
		c, err := parseCommit(data[1:])
		if err != nil {
			return bad(err)
		}
		d.inTxn = false
		s.ob.setTxn(false, &mark{lsn: c.endLSN})
	case 'R':
		r, err := parseRelation(data[1:])
		if err != nil {
			return bad(err)
		}
		ri, err := d.relation(ctx, r)
		if err != nil {
			return err
		}
		d.rels[r.id] = ri
	case 'I', 'U', 'D':
		if err := parseChange(data, &d.ch); err != nil {
			return bad(err)
		}
		ri := d.rels[d.ch.relID]
		if ri == nil {
			return bad(fmt.Errorf("change to relation %d before its description", d.ch.relID))
		}
		d.n++
		return d.emit(ri, lsn)
	case 'T':
		s.log.Warn().Str("lsn", string(appendLSN(nil, lsn))).Msg("TRUNCATE of a captured table is not turned into events; the rows it removed get no delete event")
	}
	return nil
}

// relation builds the description of a relation from its message.
func (d *decoder) relation(ctx context.Context, r relationMsg) (*relInfo, error) {
	s := d.s
	var meta *tableMeta
	flagged := r.replIdent == 'i' // the key is the columns the message flags
	for _, t := range s.tables {
		if t.schema == r.namespace && t.name == r.name {
			meta = t
		}
	}
	if meta == nil {
		m, err := s.lookupTable(ctx, s.meta, r.namespace, r.name)
		switch {
		case errors.Is(err, errNoTable):
			// Dropped (or renamed) since these changes were written:
			// logical decoding still sends them, described as the table
			// was. Its key is then the replica identity the message
			// flags (the primary key, unless it was FULL). Stopping here
			// stopped the task at every start, the slot stuck before them.
			meta = &tableMeta{schema: r.namespace, name: r.name, replIdent: r.replIdent}
			flagged = r.replIdent == 'd'
		case err != nil:
			return nil, err
		default:
			meta = m
		}
	}
	cols := make([]cdc.Column, len(r.cols))
	types := make([]pgtext.ColType, len(r.cols))
	isKey := make([]bool, len(r.cols))
	byName := map[string]int{}
	for i, c := range r.cols {
		ct, err := d.types.Get(ctx, s.meta, c.typeID)
		if err != nil {
			return nil, s.queryErr("reading pg_type", err)
		}
		types[i] = ct
		cols[i] = cdc.Column{Name: c.name, Type: ct.Name()}
		isKey[i] = c.key
		byName[c.name] = i
	}
	var key []int
	for _, k := range meta.pk {
		if i, ok := byName[k]; ok {
			key = append(key, i)
		}
	}
	if len(key) != len(meta.pk) {
		key = nil
	}
	if len(key) == 0 && flagged {
		for i, k := range isKey {
			if k {
				key = append(key, i)
			}
		}
	}
	return &relInfo{
		table: cdc.NewTable(s.database, r.namespace, r.name, cols, key),
		types: types, isKey: isKey, lane: r.namespace + "." + r.name,
	}, nil
}

// emit appends the event of the change in d.ch to the outbox.
func (d *decoder) emit(ri *relInfo, lsn uint64) error {
	s := d.s
	o := s.ob
	var op cdc.Op
	switch d.ch.op {
	case 'I':
		op = cdc.Create
		d.ops[0]()
	case 'U':
		op = cdc.Update
		d.ops[1]()
	default:
		op = cdc.Delete
		d.ops[2]()
	}
	d.id = append(d.id[:0], s.cfg.Slot...)
	d.id = append(d.id, '-')
	d.id = appendHex16(d.id, d.begin.finalLSN)
	d.id = append(d.id, '-')
	d.id = strconv.AppendInt(d.id, int64(d.n), 10)

	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil // closing: the stream is read again from the confirmed position
	}
	b := o.batch(ri.lane)
	start := len(b.arena)
	e := d.enc
	dst := e.Begin(b.arena, ri.table, op, d.id, d.begin.tsMs)
	if d.ch.old == 0 {
		dst = e.NullImage(dst, cdc.Before)
	} else {
		dst = e.BeginImage(dst, cdc.Before)
		for i := range d.ch.before {
			if i >= len(ri.types) || (d.ch.old == 'K' && !ri.isKey[i]) {
				continue // only the key columns were logged: the rest is unknown, not null
			}
			dst = d.column(dst, ri, i, d.ch.before[i], false)
		}
		dst = e.EndImage(dst)
	}
	d.changed = d.changed[:0]
	if op == cdc.Delete {
		dst = e.NullImage(dst, cdc.After)
	} else {
		dst = e.BeginImage(dst, cdc.After)
		for i := range d.ch.after {
			if i >= len(ri.types) {
				break
			}
			col := d.ch.after[i]
			if col.kind == 'u' && d.ch.old == 'O' && i < len(d.ch.before) && d.ch.before[i].kind != 'u' {
				// An unchanged TOAST value is not in the new tuple, but
				// REPLICA IDENTITY FULL logged it in the old one.
				col = d.ch.before[i]
			}
			dst = d.column(dst, ri, i, col, true)
		}
		dst = e.EndImage(dst)
	}
	dst = e.BeginSource(dst, false)
	dst = cdc.AppendMember(dst, "lsn")
	dst = append(dst, '"')
	dst = appendLSN(dst, lsn)
	dst = append(dst, '"')
	dst = cdc.AppendMember(dst, "commit_lsn")
	dst = append(dst, '"')
	dst = appendLSN(dst, d.begin.finalLSN)
	dst = append(dst, '"')
	dst = cdc.AppendMember(dst, "txid")
	dst = strconv.AppendUint(dst, uint64(d.begin.xid), 10)
	if len(d.changed) > 0 {
		dst = cdc.AppendMember(dst, "unchanged_toast")
		dst = append(dst, '[')
		for n, i := range d.changed {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = cdc.AppendString(dst, []byte(ri.table.Columns[i].Name))
		}
		dst = append(dst, ']')
	}
	dst, key := e.End(dst)
	keyFrom, keyTo := 0, 0
	if key != nil {
		keyTo = len(dst) - 2
		keyFrom = keyTo - len(key)
	}
	b.arena = dst
	b.recs = append(b.recs, rec{from: start, to: len(dst), keyFrom: keyFrom, keyTo: keyTo, tsMs: d.begin.tsMs,
		pos: message.Position{Stream: s.cfg.Slot, Partition: d.n, Offset: int64(d.begin.finalLSN)}})
	wait := o.added(b)
	o.mu.Unlock()
	if wait {
		o.waitRoom()
	}
	return nil
}

// column writes column i of a tuple; an unchanged TOAST value is left out
// (and listed) rather than invented.
func (d *decoder) column(dst []byte, ri *relInfo, i int, c tupleCol, after bool) []byte {
	switch c.kind {
	case 'u':
		if after {
			d.changed = append(d.changed, i)
		}
		return dst
	case 'n':
		dst = d.enc.Column(dst, i)
		return cdc.AppendNull(dst)
	case 'b':
		dst = d.enc.Column(dst, i)
		return cdc.AppendBytes(dst, c.data)
	}
	dst = d.enc.Column(dst, i)
	return d.conv.AppendValue(dst, ri.types[i], c.data)
}
