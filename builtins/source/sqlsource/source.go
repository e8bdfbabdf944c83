package sqlsource

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// position is the checkpoint: the position columns of the last row
// delivered, as the database printed them.
type position struct {
	Set bool   `json:"set"`
	TS  string `json:"ts,omitempty"`
	Inc string `json:"inc,omitempty"`
}

// backend is what a database driver supplies.
type backend interface {
	connect(ctx context.Context) error
	close()
	fetch(ctx context.Context, q string, args []any) (*resultSet, error)
	placeholder(n int) string
	quote(ident string) string
	uri() string
	classify(err error) error
}

// resultSet holds the rows of one query, copied.
type resultSet struct {
	cols []string
	// appendValue appends the JSON of column i's text v (never nil).
	appendValue func(dst []byte, i int, v []byte) []byte
	rows        [][][]byte
}

// Source is the sql source.
type Source struct {
	cfg   *Config
	env   component.Env
	log   zerolog.Logger
	db    backend
	cpDir string
	zone  *time.Location // of timestamp_delay's cut-off: timestamp_zone, or UTC

	store   *checkpoint.Store
	subject string
	head    []byte // ,"source":"…","type":"…","subject":"…","time":"

	mu     sync.Mutex
	read   position // the last row read
	acked  position // the last row delivered
	gen    uint64   // bumped by Rewind: acks of older batches are ignored
	failed bool     // a batch was nacked: nothing more is committed until Rewind
	closed chan struct{}
	opened bool
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	s := &Source{cfg: cfg, env: env, log: env.Logger, cpDir: checkpoint.Dir(env.StateDir, env.Dir, env.Task), closed: make(chan struct{})}
	s.zone = time.UTC
	if loc, err := time.LoadLocation(cfg.TimestampZone); err == nil && cfg.TimestampZone != "" {
		s.zone = loc // (an unknown name was reported by Validate)
	}
	var tc *tls.Config
	if cfg.TLS != nil {
		var err error
		if tc, err = cfg.TLS.Config(env.Dir); err != nil {
			env.Problems.Addf([]string{"tls"}, "%v", err)
			return nil, nil
		}
	}
	var err error
	switch cfg.Driver {
	case "postgres":
		s.db, err = newPG(cfg, tc)
	default:
		s.db, err = newMy(cfg, tc)
	}
	if err != nil {
		env.Problems.Addf([]string{"dsn"}, "%v", err)
		return nil, nil
	}
	s.subject = cfg.Table
	if s.subject == "" {
		s.subject = "query"
	}
	return s, nil
}

// Open connects and loads the checkpoint.
func (s *Source) Open(ctx context.Context) error {
	var err error
	if s.store, err = checkpoint.Open(s.cpDir, "source.sql"); err != nil {
		return component.TaskPermanent(err)
	}
	var pos position
	if _, err := s.store.Load(&pos); err != nil {
		s.store.Close()
		return component.TaskPermanent(err)
	}
	if pos.Set && (s.cfg.Mode != ModeIncrementing && pos.TS == "" || s.cfg.Mode != ModeTimestamp && pos.Inc == "") {
		// A position without the mode's columns: saved in another mode,
		// or by an earlier version from a row whose position column was
		// NULL (every later query then compared the column with '' and
		// failed). Where the rows after it start is unknown: read from
		// the start again (at-least-once).
		s.log.Warn().Str("mode", s.cfg.Mode).Str("timestamp", pos.TS).Str("incrementing", pos.Inc).
			Msg("the saved position lacks a position column of the mode: reading from the start again")
		pos = position{}
	}
	if err := s.db.connect(ctx); err != nil {
		s.store.Close()
		return err
	}
	h := append([]byte(nil), `,"source":`...)
	h = jsonscan.AppendQuoted(h, []byte(s.db.uri()))
	h = append(h, `,"type":"`+EventType+`","subject":`...)
	h = jsonscan.AppendQuoted(h, []byte(s.subject))
	s.head = append(h, `,"time":"`...)
	s.mu.Lock()
	s.read, s.acked, s.opened = pos, pos, true
	s.mu.Unlock()
	return nil
}

// query builds the SQL reading the rows after pos.
func (s *Source) query(pos position, limit bool, tsEquals string) (string, []any) {
	d := s.db
	base := s.cfg.Query
	if base == "" {
		parts := strings.Split(s.cfg.Table, ".")
		for i := range parts {
			parts[i] = d.quote(parts[i])
		}
		base = "SELECT * FROM " + strings.Join(parts, ".")
	}
	var conds []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return d.placeholder(len(args))
	}
	ts, inc := d.quote(s.cfg.TimestampColumn), d.quote(s.cfg.IncrementingColumn)
	// A row whose position column is NULL is not read: it has no place in
	// the order, and as the position it would stop every later query.
	// (Comparisons already leave it out once a position is set.) It is
	// read once the column is set.
	if !pos.Set && tsEquals == "" {
		if s.cfg.Mode != ModeIncrementing {
			conds = append(conds, ts+" IS NOT NULL")
		}
		if s.cfg.Mode != ModeTimestamp {
			conds = append(conds, inc+" IS NOT NULL")
		}
	} else if pos.Set && s.cfg.Mode == ModeBoth {
		// (ts > a OR (ts = a AND inc > b)) lets a row with ts > a and a
		// NULL inc through.
		conds = append(conds, inc+" IS NOT NULL")
	}
	switch {
	case tsEquals != "":
		conds = append(conds, ts+" = "+arg(tsEquals))
	case pos.Set && s.cfg.Mode == ModeIncrementing:
		conds = append(conds, inc+" > "+arg(pos.Inc))
	case pos.Set && s.cfg.Mode == ModeTimestamp:
		conds = append(conds, ts+" > "+arg(pos.TS))
	case pos.Set:
		gt := arg(pos.TS)
		eq := arg(pos.TS)
		conds = append(conds, "("+ts+" > "+gt+" OR ("+ts+" = "+eq+" AND "+inc+" > "+arg(pos.Inc)+"))")
	}
	if s.cfg.Mode != ModeIncrementing && s.cfg.TimestampDelay > 0 {
		// The cut-off is compared with the column as text, so it must be
		// in the zone of the column's values: UTC (the session's) unless
		// timestamp_zone names the local zone a zoneless column holds.
		before := time.Now().Add(-s.cfg.TimestampDelay.D()).In(s.zone).Format("2006-01-02 15:04:05.999999")
		conds = append(conds, ts+" < "+arg(before))
	}
	var order []string
	if s.cfg.Mode != ModeIncrementing {
		order = append(order, ts)
	}
	if s.cfg.Mode != ModeTimestamp {
		order = append(order, inc)
	}
	q := "SELECT * FROM (" + base + ") AS sluice_q"
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY " + strings.Join(order, ", ")
	if limit {
		q += " LIMIT " + strconv.Itoa(s.cfg.BatchSize)
	}
	return q, args
}

// Read polls until there are rows past the last one read.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		s.mu.Lock()
		if !s.opened {
			s.mu.Unlock()
			return component.Batch{}, errors.New("sql source: Read before Open")
		}
		pos, gen := s.read, s.gen
		s.mu.Unlock()
		b, next, err := s.poll(ctx, pos)
		if err != nil {
			if ctx.Err() != nil {
				return component.Batch{}, ctx.Err()
			}
			return component.Batch{}, err
		}
		if len(b.Messages) > 0 {
			s.mu.Lock()
			if gen == s.gen {
				s.read = next
				s.mu.Unlock()
				b.Ack = func(err error) { s.ack(gen, next, err) }
				return b, nil
			}
			s.mu.Unlock()
			continue // rewound meanwhile: read again from the acknowledged row
		}
		t := time.NewTimer(s.cfg.PollInterval.D())
		select {
		case <-ctx.Done():
			t.Stop()
			return component.Batch{}, ctx.Err()
		case <-s.closed:
			t.Stop()
			// An error, not ctx.Err() (nil when ctx lives on): an empty
			// batch without one would read as "nothing yet".
			return component.Batch{}, errClosed
		case <-t.C:
		}
	}
}

// ack commits the position after a delivered batch (batches of the one
// lane are acknowledged in order). After a nack nothing more is committed:
// the rows from the last delivered one are read again after a restart or
// a Rewind.
func (s *Source) ack(gen uint64, next position, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.gen || s.failed {
		return
	}
	if err != nil {
		s.failed = true
		return
	}
	if !next.Set {
		return
	}
	s.acked = next
	if e := s.store.Save(&s.acked); e != nil {
		s.log.Warn().Err(e).Msg("saving the position failed; a restart may read these rows again")
	}
}

// poll runs one query and turns its rows into a batch. next is the
// position after the batch (unset when no row can be committed, a
// timestamp group still being read).
func (s *Source) poll(ctx context.Context, pos position) (component.Batch, position, error) {
	q, args := s.query(pos, true, "")
	rs, err := s.db.fetch(ctx, q, args)
	if err != nil {
		return component.Batch{}, pos, s.db.classify(err)
	}
	tsIdx, incIdx, err := s.positionColumns(rs)
	if err != nil {
		return component.Batch{}, pos, err
	}
	if s.cfg.Mode == ModeTimestamp && len(rs.rows) == s.cfg.BatchSize {
		// LIMIT may have cut a group of rows sharing the last timestamp:
		// leave that group to the next query, or when the whole batch is
		// one group, read the group whole.
		last := string(rs.rows[len(rs.rows)-1][tsIdx])
		cut := len(rs.rows)
		for cut > 0 && string(rs.rows[cut-1][tsIdx]) == last {
			cut--
		}
		if cut > 0 {
			rs.rows = rs.rows[:cut]
		} else {
			q, args := s.query(pos, false, last)
			if rs, err = s.db.fetch(ctx, q, args); err != nil {
				return component.Batch{}, pos, s.db.classify(err)
			}
		}
	}
	if len(rs.rows) == 0 {
		return component.Batch{}, pos, nil
	}
	next := pos
	var arena []byte
	type span struct{ from, to int }
	spans := make([]span, len(rs.rows))
	now := time.Now().UTC()
	nowText := now.AppendFormat(nil, "2006-01-02T15:04:05.000Z")
	var id []byte
	for r, row := range rs.rows {
		next.Set = true
		if tsIdx >= 0 {
			next.TS = string(row[tsIdx])
		}
		if incIdx >= 0 {
			next.Inc = string(row[incIdx])
		}
		id = append(id[:0], s.subject...)
		if tsIdx >= 0 {
			id = append(id, '-')
			id = append(id, row[tsIdx]...)
		}
		if incIdx >= 0 {
			id = append(id, '-')
			id = append(id, row[incIdx]...)
		} else {
			id = append(id, '-')
			id = strconv.AppendInt(id, int64(r), 10)
		}
		start := len(arena)
		arena = append(arena, `{"specversion":"1.0","id":`...)
		arena = cdc.AppendString(arena, id)
		arena = append(arena, s.head...)
		arena = append(arena, nowText...)
		arena = append(arena, `","datacontenttype":"application/json","data":{`...)
		for i, v := range row {
			if i > 0 {
				arena = append(arena, ',')
			}
			arena = jsonscan.AppendQuoted(arena, []byte(rs.cols[i]))
			arena = append(arena, ':')
			if v == nil {
				arena = cdc.AppendNull(arena)
			} else {
				arena = rs.appendValue(arena, i, v)
			}
		}
		arena = append(arena, "}}"...)
		spans[r] = span{start, len(arena)}
	}
	msgs := make([]message.Message, len(rs.rows))
	for r, sp := range spans {
		p := arena[sp.from:sp.to:sp.to]
		msgs[r] = message.Message{Payload: p, Event: p, Time: now, Pos: message.Position{Stream: s.subject, Offset: int64(r)}}
	}
	return component.Batch{Messages: msgs, Lane: "sql:" + s.subject}, next, nil
}

// positionColumns finds the position columns in the result.
func (s *Source) positionColumns(rs *resultSet) (ts, inc int, err error) {
	ts, inc = -1, -1
	for i, c := range rs.cols {
		if s.cfg.TimestampColumn != "" && strings.EqualFold(c, s.cfg.TimestampColumn) {
			ts = i
		}
		if s.cfg.IncrementingColumn != "" && strings.EqualFold(c, s.cfg.IncrementingColumn) {
			inc = i
		}
	}
	if (s.cfg.TimestampColumn != "" && s.cfg.Mode != ModeIncrementing && ts < 0) || (s.cfg.Mode != ModeTimestamp && inc < 0) {
		return ts, inc, component.TaskPermanent(fmt.Errorf("sql source: the result has no column %q: the query must return the position columns (it has %s)",
			map[bool]string{true: s.cfg.TimestampColumn, false: s.cfg.IncrementingColumn}[ts < 0 && s.cfg.Mode != ModeIncrementing], strings.Join(rs.cols, ", ")))
	}
	if s.cfg.Mode == ModeIncrementing {
		ts = -1
	}
	if s.cfg.Mode == ModeTimestamp {
		inc = -1
	}
	return ts, inc, nil
}

// Rewind reads again from the row after the last delivered one.
func (s *Source) Rewind(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.read = s.acked
	s.failed = false
	return nil
}

// Close disconnects; positions are saved as batches are acknowledged.
func (s *Source) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.opened {
		return nil
	}
	s.opened = false
	close(s.closed)
	s.db.close()
	return s.store.Close()
}

// errClosed is returned by a Read that Close ended.
var errClosed = errors.New("sql source: closed")

var (
	_ component.Source   = (*Source)(nil)
	_ component.Rewinder = (*Source)(nil)
)
