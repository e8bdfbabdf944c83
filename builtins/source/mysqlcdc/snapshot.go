package mysqlcdc

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// snapshot reads the tables not done yet in the snapshot transaction, in
// primary-key chunks, each after the last key delivered. A connection lost
// meanwhile is opened again, in a new snapshot transaction that reads on
// after the last row read (a later instant, as a resumed snapshot: the
// stream, from the first snapshot's position, replays what changed).
func (r *reader) snapshot(ctx context.Context) error {
	conn := r.s.snapConn
	defer func() {
		conn.ExecContext(context.WithoutCancel(ctx), "COMMIT")
		conn.Close()
	}()
	r.s.mu.Lock()
	var snap snapshot
	if r.s.snap != nil {
		snap = *r.s.snap
		snap.Tables = append([]snapTable(nil), r.s.snap.Tables...)
	}
	r.s.mu.Unlock()
	start := parseSnapshotPosition(r.s.start)
	backoff := 100 * time.Millisecond
	for i := 0; i < len(snap.Tables); i++ {
		p := snap.Tables[i]
		if p.Done {
			continue
		}
		db, table, _ := strings.Cut(p.Table, ".")
		ts := r.tables[tableName{db, table}]
		if ts == nil {
			// No longer configured: count it as done.
			r.s.ackSnapshot(i, nil, true, nil)
			continue
		}
		began := time.Now()
		n, last, err := r.snapshotTable(ctx, conn, ts, i, p.LastKey, snap, start, 0)
		for err != nil {
			if ctx.Err() != nil {
				return nil
			}
			err = r.s.queryErr("snapshot of "+ts.lane, err)
			if component.ClassOf(err) == component.ClassTaskPermanent {
				return err
			}
			r.s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("snapshot interrupted; reading on after the last row read in a new snapshot transaction")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 10*time.Second)
			conn.Close()
			if err = r.s.beginSnapshot(ctx, false); err != nil {
				conn = r.s.snapConn // closed by the deferred call
				if component.ClassOf(err) == component.ClassTaskPermanent {
					return err
				}
				continue
			}
			conn = r.s.snapConn
			if len(ts.schema.Key) == 0 {
				last, n = nil, 0 // read in one query: again from its start
			}
			var more int
			more, last, err = r.snapshotTable(ctx, conn, ts, i, last, snap, start, n)
			n += more
		}
		backoff = 100 * time.Millisecond
		r.s.log.Info().Str("table", ts.lane).Int("rows", n).Dur("took", time.Since(began)).Msg("table snapshot read")
	}
	return nil
}

// snapPosition is the snapshot's binlog position, for the source members.
type snapPosition struct {
	gtid string
	file string
	pos  uint32
}

func parseSnapshotPosition(st state) snapPosition {
	p := snapPosition{gtid: st.GTID, file: st.File, pos: st.Pos}
	return p
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// snapshotTable reads one table after lastKey and returns how many rows it
// emitted and the key of the last one (for a retry after a failure). done
// rows of the table were emitted before (they number the rows).
func (r *reader) snapshotTable(ctx context.Context, conn *sql.Conn, ts *tableState, idx int, lastKey [][]byte, snap snapshot, sp snapPosition, done int) (int, [][]byte, error) {
	sc := ts.schema
	cols := make([]string, len(sc.Columns))
	exprs := make([]string, len(sc.Columns))
	for i, c := range sc.Columns {
		cols[i] = quoteIdent(c.Name)
		exprs[i] = cols[i]
		if c.DataType == "float" {
			// The text protocol prints a FLOAT with 6 significant digits
			// (MariaDB: 16777216 as 16777200); as a DOUBLE it prints the
			// stored 32-bit value exactly, and appendTextValue writes it
			// as the stream does.
			exprs[i] += "+0e0"
		}
	}
	from := " FROM " + quoteIdent(ts.name.DB) + "." + quoteIdent(ts.name.Table)
	sel := "SELECT " + strings.Join(exprs, ",") + from
	keyed := len(sc.Key) > 0
	order := ""
	if keyed {
		ks := make([]string, len(sc.Key))
		for i, k := range sc.Key {
			ks[i] = cols[k]
		}
		order = " ORDER BY " + strings.Join(ks, ",") + " LIMIT " + strconv.Itoa(r.s.o.chunk)
	}
	table := cdcTable(ts.name, binlogColumns(sc), sc.Key)
	raw := make([]sql.RawBytes, len(sc.Columns))
	ptrs := make([]any, len(raw))
	for i := range raw {
		ptrs[i] = &raw[i]
	}
	keyVals := make([][]byte, len(sc.Key))
	if lastKey != nil {
		for i := range keyVals {
			if i < len(lastKey) {
				keyVals[i] = append([]byte(nil), lastKey[i]...)
			}
		}
	}
	total := 0
	// progress is the key of the last row emitted, for a retry.
	progress := func() [][]byte {
		if total == 0 {
			return lastKey
		}
		return copyKey(keyVals)
	}
	for {
		q := sel
		var args []any
		if keyed && lastKey != nil {
			cond, a := keyCondition(cols, sc.Key, keyVals)
			q += " WHERE " + cond
			args = a
		}
		q += order
		rows, err := conn.QueryContext(ctx, q, args...)
		if err != nil {
			return total, progress(), err
		}
		n := 0
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return total, progress(), err
			}
			n++
			total++
			for i, k := range sc.Key {
				keyVals[i] = append(keyVals[i][:0], raw[k]...)
			}
			if err := r.snapshotRow(ctx, ts, table, idx, raw, keyVals, snap, sp, done+total); err != nil {
				rows.Close()
				return total, progress(), err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, progress(), err
		}
		lastKey = keyVals
		if !keyed || n < r.s.o.chunk {
			break
		}
	}
	// The last batch (held back if full) carries the end of the table; it
	// is empty only when no row was read, and then nothing of the table
	// is in flight.
	b := r.builder(ts)
	b.snapshot, b.snapIndex, b.final = true, idx, true
	b.lastKey = copyKey(keyVals)
	return total, nil, r.flush(ctx, ts)
}

func copyKey(k [][]byte) [][]byte {
	out := make([][]byte, len(k))
	for i, v := range k {
		out[i] = append([]byte{}, v...)
	}
	return out
}

// keyCondition is "key > last" for a (possibly composite) primary key, as
// ORs of equalities that the optimizer turns into a range scan.
func keyCondition(cols []string, key []int, last [][]byte) (string, []any) {
	var ors []string
	var args []any
	for i := range key {
		var ands []string
		for j := 0; j < i; j++ {
			ands = append(ands, cols[key[j]]+" = ?")
			args = append(args, last[j])
		}
		ands = append(ands, cols[key[i]]+" > ?")
		args = append(args, last[i])
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return strings.Join(ors, " OR "), args
}

// binlogColumns names the columns for the encoder.
func binlogColumns(sc *binlog.TableSchema) []binlog.Column {
	out := make([]binlog.Column, len(sc.Columns))
	for i, c := range sc.Columns {
		out[i].Name = c.Name
	}
	return out
}

// snapshotRow writes one row read by the snapshot as an "r" event.
func (r *reader) snapshotRow(ctx context.Context, ts *tableState, table *cdc.Table, idx int, raw []sql.RawBytes, key [][]byte, snap snapshot, sp snapPosition, n int) error {
	b := r.builder(ts)
	if b.n >= r.s.o.maxEvents {
		// A full batch is handed out only once another row follows it, so
		// that a table's last batch is never empty: the end of the table
		// is then acknowledged with its last rows, in lane order. (An empty
		// last batch was acknowledged at once, while the batches before
		// it were still in flight: the checkpoint marked the table done,
		// and a crash lost them.)
		if err := r.flush(ctx, ts); err != nil {
			return err
		}
		b = r.builder(ts)
	}
	b.snapshot, b.snapIndex = true, idx
	if b.eventsBuf == nil {
		b.eventsBuf = r.s.events.get()
	}
	r.idBuf = append(r.idBuf[:0], snap.Position...)
	r.idBuf = append(r.idBuf, ':')
	r.idBuf = append(r.idBuf, ts.lane...)
	r.idBuf = append(r.idBuf, ':')
	if len(key) == 0 {
		r.idBuf = strconv.AppendInt(r.idBuf, int64(n), 10)
	}
	for i, k := range key {
		if i > 0 {
			r.idBuf = append(r.idBuf, ',')
		}
		r.idBuf = append(r.idBuf, k...)
	}
	start := len(b.slab)
	dst := r.enc.Begin(b.slab, table, cdc.Read, r.idBuf, snap.TsMs)
	dst = r.enc.NullImage(dst, cdc.Before)
	dst = r.enc.BeginImage(dst, cdc.After)
	for i, v := range raw {
		dst = r.enc.Column(dst, i)
		if v == nil {
			dst = cdc.AppendNull(dst)
			continue
		}
		dst = appendTextValue(dst, &ts.schema.Columns[i], v, r.s.o.decimalAsNumber)
	}
	dst = r.enc.EndImage(dst)
	dst = r.enc.BeginSource(dst, true)
	dst = appendPosition(dst, []byte(sp.gtid), sp.file, sp.pos, r.s.serverID)
	dst = strconv.AppendInt(dst, int64(n-1), 10)
	dst, k := r.enc.End(dst)
	b.slab = dst
	ka, kb := 0, 0
	if k != nil {
		kb = len(dst) - 2
		ka = kb - len(k)
	}
	b.spans = append(b.spans, span{start, len(dst), ka, kb})
	b.msgs = append(b.msgs, message.Message{Time: time.UnixMilli(snap.TsMs), Pos: message.Position{Stream: ts.lane, Offset: int64(n - 1)}})
	b.n++
	r.pending++
	if b.n >= r.s.o.maxEvents {
		b.lastKey = copyKey(key) // full: flushed by the next row or the table's end
	}
	return nil
}

// appendTextValue renders a value read by the snapshot (the server's text)
// as the binlog path renders the same value.
func appendTextValue(dst []byte, c *binlog.SchemaColumn, v []byte, decimalAsNumber bool) []byte {
	switch c.DataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "float", "double", "real", "double precision":
		if c.DataType == "float" || c.DataType == "double" || c.DataType == "real" {
			if f, err := strconv.ParseFloat(string(v), 64); err == nil {
				bits := 64
				if c.DataType == "float" {
					bits = 32
				}
				return cdc.AppendFloat(dst, f, bits)
			}
		}
		return cdc.AppendNumberText(dst, v)
	case "decimal", "numeric":
		return cdc.AppendDecimal(dst, v, decimalAsNumber)
	case "year":
		y, err := strconv.Atoi(string(v))
		if err != nil {
			return cdc.AppendString(dst, v)
		}
		return strconv.AppendInt(dst, int64(y), 10)
	case "date":
		if isZeroDate(v) {
			return cdc.AppendNull(dst)
		}
		return cdc.AppendString(dst, v)
	case "datetime", "timestamp":
		if isZeroDate(v) {
			return cdc.AppendNull(dst)
		}
		dst = append(dst, '"')
		for _, ch := range v {
			if ch == ' ' {
				ch = 'T'
			}
			dst = append(dst, ch)
		}
		return append(dst, 'Z', '"')
	case "bit":
		var x uint64
		for _, ch := range v {
			x = x<<8 | uint64(ch)
		}
		if c.ColumnType == "bit(1)" {
			return cdc.AppendBool(dst, x != 0)
		}
		return cdc.AppendUint(dst, x)
	case "json":
		return cdc.AppendJSON(dst, v)
	}
	if c.JSON {
		return cdc.AppendJSON(dst, v)
	}
	if c.Binary {
		return cdc.AppendBytes(dst, v)
	}
	return cdc.AppendString(dst, v)
}

func isZeroDate(v []byte) bool {
	return len(v) >= 10 && string(v[:10]) == "0000-00-00"
}

// applySchema completes a table map from information_schema. When the
// table has more columns now than the event (columns added since it was
// written) and the event's columns match the first ones, those are used.
func applySchema(sc *binlog.TableSchema, tm *binlog.TableMap, log zerolog.Logger) error {
	err := sc.Apply(tm)
	if err == nil || tm.HasNames || len(sc.Columns) <= len(tm.Columns) {
		return err
	}
	prefix := *sc
	prefix.Columns = sc.Columns[:len(tm.Columns)]
	prefix.Key = nil
	for _, k := range sc.Key {
		if k >= len(tm.Columns) {
			return err
		}
		prefix.Key = append(prefix.Key, k)
	}
	if perr := prefix.Apply(tm); perr != nil {
		return err
	}
	log.Warn().Str("table", sc.Schema+"."+sc.Table).Int("event_columns", len(tm.Columns)).Int("columns", len(sc.Columns)).
		Msg("binlog events older than columns added to the table: decoding them with the first columns")
	return nil
}
