package postgrescdc

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/builtins/internal/pgtext"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// beginSnapshot opens the snapshot's REPEATABLE READ transaction, on the
// slot's exported snapshot when name is set. Without one (a snapshot
// resumed after a crash, whose exported snapshot died with the process) it
// sees the database as of now: rows changed since the slot's position are
// then read here and again from the stream, which replays every change
// after that position in order, so each row still ends in its latest
// state.
func (s *Source) beginSnapshot(ctx context.Context, name string) error {
	c, err := s.connect(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.snap = c
	rewind := s.rewind
	s.mu.Unlock()
	if rewind {
		return errRewound
	}
	if _, err := pgconnect.Exec(ctx, c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return s.queryErr("begin the snapshot", err)
	}
	if name != "" {
		if _, err := pgconnect.Exec(ctx, c, "SET TRANSACTION SNAPSHOT "+quoteLiteral(name)); err != nil {
			return s.queryErr("import the slot's snapshot", err)
		}
	}
	return nil
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// snapshot reads every table not yet delivered, in primary-key chunks,
// and marks each chunk's progress for the checkpoint.
func (s *Source) snapshot(ctx context.Context) error {
	s.mu.Lock()
	c := s.snap
	s.mu.Unlock()
	exported := s.newSlot != nil
	if c == nil {
		if err := s.beginSnapshot(ctx, ""); err != nil {
			return err
		}
		s.mu.Lock()
		c = s.snap
		s.mu.Unlock()
	}
	s.newSlot = nil
	row, err := pgconnect.QueryRow(ctx, c, "SELECT pg_current_wal_lsn()::text")
	if err != nil {
		return s.queryErr("read the snapshot's position", err)
	}
	lsnText := string(row[0])
	if exported {
		lsnText = string(appendLSN(nil, s.ob.position()))
	}
	s.log.Info().Bool("exported", exported).Str("lsn", lsnText).Int("tables", len(s.tables)).Msg("snapshot started")
	r := &snapReader{s: s, c: c, enc: s.newEncoder(), conv: &pgtext.Converter{DecimalAsNumber: s.cfg.DecimalAsNumber},
		types: pgtext.NewTypeCache(), lsn: lsnText, tsMs: time.Now().UnixMilli()}
	s.ob.mu.Lock()
	done := map[string]*progress{}
	for k, v := range s.st.Tables {
		cp := *v
		done[k] = &cp
	}
	s.ob.mu.Unlock()
	for _, t := range s.tables {
		p := done[t.qualified()]
		if p != nil && p.Done {
			continue
		}
		var after []string
		if p != nil {
			after = p.After
		}
		if err := r.table(ctx, t, after); err != nil {
			return err
		}
	}
	s.ob.addMark(mark{progress: &progress{All: true}})
	if _, err := pgconnect.Exec(ctx, c, "COMMIT"); err != nil {
		return s.queryErr("end the snapshot", err)
	}
	s.mu.Lock()
	s.snap = nil
	s.mu.Unlock()
	c.Close(context.Background())
	s.log.Info().Int64("rows", r.rows).Msg("snapshot read; streaming changes")
	return nil
}

// snapReader reads the tables of one snapshot.
type snapReader struct {
	s     *Source
	c     *pgconn.PgConn
	enc   *cdc.Encoder
	conv  *pgtext.Converter
	types *pgtext.TypeCache
	lsn   string
	tsMs  int64
	rows  int64
	id    []byte
}

func (r *snapReader) table(ctx context.Context, t *tableMeta, after []string) error {
	s := r.s
	lane := t.qualified()
	chunk := s.cfg.SnapshotChunk
	var sb strings.Builder
	pkList := make([]string, len(t.pk))
	for i, k := range t.pk {
		pkList[i] = quoteIdent(k)
	}
	// The columns pgoutput sends: not the generated ones (it leaves them
	// out, up to PostgreSQL 17 and by default after), so that a row read
	// by the snapshot has the shape of the same row streamed. SELECT *
	// gave snapshot rows a column their updates never carried.
	row, err := pgconnect.QueryRow(ctx, r.c, `SELECT coalesce(string_agg(quote_ident(attname), ', ' ORDER BY attnum), '')
FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped AND attgenerated = ''`, []byte(t.sqlName()))
	if err != nil {
		return s.queryErr("columns of "+lane, err)
	}
	selectList := string(row[0])
	var ordinal int64
	stream := s.cfg.Slot + "/snapshot/" + lane
	for {
		sb.Reset()
		sb.WriteString("SELECT " + selectList + " FROM " + t.sqlName())
		var params [][]byte
		if len(t.pk) > 0 {
			if after != nil {
				ph := make([]string, len(after))
				for i := range after {
					ph[i] = "$" + strconv.Itoa(i+1)
					params = append(params, []byte(after[i]))
				}
				sb.WriteString(" WHERE (" + strings.Join(pkList, ", ") + ") > (" + strings.Join(ph, ", ") + ")")
			}
			sb.WriteString(" ORDER BY " + strings.Join(pkList, ", ") + " LIMIT " + strconv.Itoa(chunk))
		}
		rr := r.c.ExecParams(ctx, sb.String(), params, nil, nil, nil)
		fds := rr.FieldDescriptions()
		if fds == nil {
			// The query failed before describing its result (a lost
			// connection, a cancelled statement): its error, not a
			// missing key column.
			_, err := rr.Close()
			if err == nil {
				err = fmt.Errorf("the query returned no columns")
			}
			return s.queryErr("snapshot of "+lane, err)
		}
		tbl, types, pkIdx, err := r.describe(ctx, t, fds)
		if err != nil {
			rr.Close()
			return err
		}
		n := 0
		var last [][]byte
		for rr.NextRow() {
			vals := rr.Values()
			n++
			ordinal++
			r.rows++
			if err := r.emit(lane, stream, tbl, types, pkIdx, vals, ordinal); err != nil {
				rr.Close()
				return err
			}
			last = vals
		}
		if len(t.pk) > 0 && n > 0 {
			after = make([]string, len(pkIdx))
			for i, j := range pkIdx {
				after[i] = string(last[j])
			}
		}
		if _, err := rr.Close(); err != nil {
			return s.queryErr("snapshot of "+lane, err)
		}
		if len(t.pk) == 0 || n < chunk {
			s.ob.addMark(mark{progress: &progress{Table: lane, Done: true}})
			return nil
		}
		s.ob.addMark(mark{progress: &progress{Table: lane, After: after}})
	}
}

// describe builds the table's encoder description from a result's fields.
func (r *snapReader) describe(ctx context.Context, t *tableMeta, fds []pgconn.FieldDescription) (*cdc.Table, []pgtext.ColType, []int, error) {
	cols := make([]cdc.Column, len(fds))
	types := make([]pgtext.ColType, len(fds))
	idx := map[string]int{}
	for i, fd := range fds {
		ct, err := r.types.Get(ctx, r.s.meta, fd.DataTypeOID)
		if err != nil {
			return nil, nil, nil, r.s.queryErr("reading pg_type", err)
		}
		types[i] = ct
		cols[i] = cdc.Column{Name: fd.Name, Type: ct.Name()}
		idx[fd.Name] = i
	}
	var key []int
	for _, k := range t.pk {
		i, ok := idx[k]
		if !ok {
			return nil, nil, nil, component.TaskPermanent(fmt.Errorf("snapshot of %s: primary key column %q not in the result", t.qualified(), k))
		}
		key = append(key, i)
	}
	return cdc.NewTable(r.s.database, t.schema, t.name, cols, key), types, key, nil
}

// emit appends one snapshot row's event to the outbox.
func (r *snapReader) emit(lane, stream string, tbl *cdc.Table, types []pgtext.ColType, pkIdx []int, vals [][]byte, ordinal int64) error {
	s := r.s
	r.id = append(r.id[:0], s.cfg.Slot...)
	r.id = append(r.id, "-snapshot-"...)
	r.id = append(r.id, lane...)
	r.id = append(r.id, '-')
	if len(pkIdx) == 0 {
		r.id = strconv.AppendInt(r.id, ordinal, 10)
	}
	for n, i := range pkIdx {
		if n > 0 {
			r.id = append(r.id, ',')
		}
		r.id = append(r.id, vals[i]...)
	}
	o := s.ob
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return errClosed
	}
	b := o.batch(lane)
	start := len(b.arena)
	dst := r.enc.Begin(b.arena, tbl, cdc.Read, r.id, r.tsMs)
	dst = r.enc.NullImage(dst, cdc.Before)
	dst = r.enc.BeginImage(dst, cdc.After)
	for i, v := range vals {
		dst = r.enc.Column(dst, i)
		if v == nil {
			dst = cdc.AppendNull(dst)
		} else {
			dst = r.conv.AppendValue(dst, types[i], v)
		}
	}
	dst = r.enc.EndImage(dst)
	dst = r.enc.BeginSource(dst, true)
	dst = cdc.AppendMember(dst, "lsn")
	dst = cdc.AppendString(dst, []byte(r.lsn))
	dst, key := r.enc.End(dst)
	keyFrom, keyTo := 0, 0
	if key != nil {
		keyTo = len(dst) - 2
		keyFrom = keyTo - len(key)
	}
	b.arena = dst
	b.recs = append(b.recs, rec{from: start, to: len(dst), keyFrom: keyFrom, keyTo: keyTo, tsMs: r.tsMs,
		pos: message.Position{Stream: stream, Offset: ordinal}})
	wait := o.added(b)
	o.mu.Unlock()
	s.countEvent(cdc.Read)
	if wait && !o.waitRoom() {
		return errClosed
	}
	return nil
}
