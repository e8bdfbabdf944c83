package sqlsink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/jsonpath"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Column is a column of the target table, as the dialect's catalog
// describes it.
type Column struct {
	Name string
	// Type is the database's type (PostgreSQL: format_type), for
	// messages.
	Type string
	// Cast is PostgreSQL's type without its modifier (varchar, not
	// varchar(3)), what a statement's parameters are cast to: an explicit
	// cast to varchar(3), char(3) or bit(3) cuts a longer value to the
	// length without a word, where the INSERT's own conversion to the
	// column refuses it.
	Cast string
	// Kind tells how a JSON value becomes the column's input.
	Kind Kind
}

// Kind is how the dialect converts a JSON value for a column.
type Kind uint8

const (
	KindText  Kind = iota // strings unquoted, other JSON as its text
	KindBytes             // a base64 string, decoded (bytea, BLOB)
	KindTime              // an RFC 3339 string (timestamps, DATETIME)
	KindBool              // true/false
	KindJSON              // any JSON value, as JSON text
	KindArray             // PostgreSQL array from a JSON array
	KindBits              // MySQL BIT(n): a number (true/false: 1/0)
)

// Value is one column's value in a row, ready for the driver.
type Value struct {
	Null bool
	Text []byte // the database's input form, or raw bytes for KindBytes
}

// Row is one record's operation on the table.
type Row struct {
	Index   int     // the record's index in the Write
	Delete  bool    // cdc mode, op d
	Vals    []Value // by column of Plan.Columns
	Present []bool  // by column: the record gave it
}

// Plan is what one Write applies, in one transaction.
type Plan struct {
	Columns []Column
	Key     []int // indexes into Columns
	Mode    string
	// Rows in record order; after deduplication by key in upsert and cdc
	// mode, only the last row of each key.
	Rows []*Row
}

// Dialect is what a database supplies.
type Dialect interface {
	// Connect opens the pool. Errors are classified.
	Connect(ctx context.Context) error
	// Describe returns the table's columns and primary key. A missing
	// table is a task-permanent error that says so.
	Describe(ctx context.Context, schema, table string) (cols []Column, pk []string, err error)
	// Convert turns the JSON value tok into column c's input; a value the
	// column cannot take is an error (the record is dead-lettered).
	Convert(c *Column, tok []byte, dst []byte) (Value, []byte, error)
	// Apply writes the plan's rows in one transaction.
	Apply(ctx context.Context, p *Plan) error
	// ApplyEach writes the rows one by one in one transaction, each behind
	// a savepoint, and returns each row's error (nil: written). A failure
	// of the transaction itself is returned as err.
	ApplyEach(ctx context.Context, p *Plan) (rowErrs []error, err error)
	// Classify returns err marked retryable, event-permanent or
	// task-permanent, with the database's message.
	Classify(err error) error
	Close()
}

// Sink writes records to a table through a Dialect.
type Sink struct {
	cfg  *Config
	d    Dialect
	log  zerolog.Logger
	name string // "postgres sink", for messages

	mu      sync.Mutex
	opened  bool
	cols    []Column
	key     []int
	paths   *jsonpath.Set
	slots   []int    // per column: slot of its path
	alt     [][2]int // per column: slots of the before/key alternatives (-1: none), cdc deletes
	opSlot  int
	scratch sync.Pool
}

// New returns a sink; Open connects.
func New(cfg *Config, d Dialect, log zerolog.Logger, name string) *Sink {
	return &Sink{cfg: cfg, d: d, log: log, name: name}
}

// Open connects, reads the table's columns and key and compiles the
// column mapping; a mapping naming a column the table lacks, or a key
// that is missing, stops the task with what to change.
func (s *Sink) Open(ctx context.Context) error {
	if err := s.d.Connect(ctx); err != nil {
		return err
	}
	schema, table := SplitTable(s.cfg.Table)
	cols, pk, err := s.d.Describe(ctx, schema, table)
	if err != nil {
		s.d.Close()
		return err
	}
	if err := s.compile(cols, pk); err != nil {
		s.d.Close()
		return component.TaskPermanent(fmt.Errorf("%s, table %s: %w", s.name, s.cfg.Table, err))
	}
	s.mu.Lock()
	s.opened = true
	s.mu.Unlock()
	return nil
}

func (s *Sink) compile(all []Column, pk []string) error {
	byName := map[string]int{}
	for i, c := range all {
		byName[c.Name] = i
	}
	paths := map[string]string{}
	if len(s.cfg.Columns) > 0 {
		for col, p := range s.cfg.Columns {
			if _, ok := byName[col]; !ok {
				return fmt.Errorf("columns: the table has no column %q (it has %s)", col, names(all))
			}
			paths[col] = p
		}
	} else {
		prefix := "$.data"
		if s.cfg.Mode == ModeCDC {
			prefix = "$.data.after"
		}
		for _, c := range all {
			paths[c.Name] = prefix + jsonpathName(c.Name)
		}
	}
	keys := s.cfg.Key
	if len(keys) == 0 && s.cfg.Mode != ModeInsert {
		keys = pk
		if len(keys) == 0 {
			return fmt.Errorf("mode %q needs key columns: the table has no primary key, set key", s.cfg.Mode)
		}
	}
	s.cols = nil
	for _, c := range all {
		if _, ok := paths[c.Name]; ok {
			s.cols = append(s.cols, c)
		}
	}
	colIdx := map[string]int{}
	for i, c := range s.cols {
		colIdx[c.Name] = i
	}
	s.key = nil
	for _, k := range keys {
		i, ok := colIdx[k]
		if !ok {
			if _, exists := byName[k]; !exists {
				return fmt.Errorf("key: the table has no column %q", k)
			}
			return fmt.Errorf("key column %q has no entry in columns", k)
		}
		s.key = append(s.key, i)
	}
	s.paths = jsonpath.NewSet()
	s.slots = make([]int, len(s.cols))
	s.alt = make([][2]int, len(s.cols))
	for i, c := range s.cols {
		segs, err := jsonpath.Parse(paths[c.Name])
		if err != nil {
			return fmt.Errorf("columns.%s: %v", c.Name, err)
		}
		s.slots[i] = s.paths.Add(segs)
		s.alt[i] = [2]int{-1, -1}
		// A delete carries its key in before (or key), not after: a path
		// through an "after" member gets the same path through those two.
		if s.cfg.Mode == ModeCDC {
			for j := range segs {
				if !segs[j].IsIndex && segs[j].Key == "after" && j < len(segs)-1 {
					for n, img := range []string{"before", "key"} {
						alt := slices.Clone(segs)
						alt[j].Key = img
						s.alt[i][n] = s.paths.Add(alt)
					}
					break
				}
			}
		}
	}
	s.opSlot = -1
	if s.cfg.Mode == ModeCDC {
		segs, err := jsonpath.Parse(s.cfg.OpPath)
		if err != nil {
			return fmt.Errorf("op_path: %v", err)
		}
		s.opSlot = s.paths.Add(segs)
	}
	return nil
}

func names(cols []Column) string {
	var out []string
	for _, c := range cols {
		out = append(out, c.Name)
	}
	return strings.Join(out, ", ")
}

// jsonpathName renders a column name as a path step: ".name" or
// "['odd name']".
func jsonpathName(n string) string {
	return jsonpath.Format([]jsonscan.Seg{{Key: n}})[1:]
}

// scratchBuf holds per-Write buffers, pooled.
type scratchBuf struct {
	spans []jsonpath.Span
	buf   []byte
	rows  []Row
	ptrs  []*Row
	vals  []Value
	pres  []bool
}

// Write applies msgs in one transaction. Records that cannot be turned into
// rows, and rows the database rejects (constraint violations, bad values),
// are reported alone as event-permanent with the reason; the rest is
// written. A lost connection is retryable: nothing of the batch is then
// committed.
//
// A batch the dialect classifies event-permanent is applied again row by
// row, in record order and without deduplication, each row behind a
// savepoint: the rows that fail alone are reported, the others committed.
// This also serves errors no single row is at fault for but which the
// rows one by one avoid (PostgreSQL's SQLSTATE 21000 when two rows carry
// one key in two spellings that dedupe could not tell apart): in record
// order the last write of a key wins, as after deduplication.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return component.Retryable(err, 0)
	}
	sb, _ := s.scratch.Get().(*scratchBuf)
	if sb == nil {
		sb = &scratchBuf{}
	}
	defer s.scratch.Put(sb)
	plan, bad := s.rows(msgs, sb, s.cfg.Mode != ModeInsert)
	if len(plan.Rows) > 0 {
		err := s.d.Apply(ctx, plan)
		if err != nil {
			err = s.d.Classify(err)
			if component.ClassOf(err) != component.ClassEventPermanent {
				return err
			}
			// Find the rows at fault: each alone behind a savepoint, the
			// others committed together.
			plan, _ = s.rows(msgs, sb, false)
			rowErrs, err := s.d.ApplyEach(ctx, plan)
			if err != nil {
				return s.d.Classify(err)
			}
			for i, re := range rowErrs {
				if re != nil {
					if bad == nil {
						bad = map[int]error{}
					}
					bad[plan.Rows[i].Index] = s.d.Classify(re)
				}
			}
		}
	}
	if len(bad) > 0 {
		return &component.RecordErrors{Errs: bad}
	}
	return nil
}

// off is where a converted value's text lies in scratchBuf.buf: from >= 0,
// a range of it; -1, no text (null); -2, a value outside the buffer (a
// constant), kept as it is.
type off struct{ from, to int }

// offOf is where v, converted into buf from offset from on, lies.
func offOf(v Value, buf []byte, from int) off {
	switch {
	case v.Null:
		return off{-1, -1}
	case len(v.Text) > 0 && len(buf) > from && &v.Text[0] == &buf[from]:
		return off{from, from + len(v.Text)}
	default:
		return off{-2, 0} // a value not in the buffer (a constant): kept
	}
}

// rows turns records into rows. bad holds the records that could not be.
func (s *Sink) rows(msgs []message.Message, sb *scratchBuf, dedup bool) (*Plan, map[int]error) {
	var bad map[int]error
	n := len(s.cols)
	sb.buf = sb.buf[:0]
	sb.rows = slices.Grow(sb.rows[:0], len(msgs))[:0]
	sb.vals = slices.Grow(sb.vals[:0], len(msgs)*n)[:0]
	sb.pres = slices.Grow(sb.pres[:0], len(msgs)*n)[:0]
	if cap(sb.spans) < s.paths.Slots() {
		sb.spans = make([]jsonpath.Span, s.paths.Slots())
	}
	spans := sb.spans[:s.paths.Slots()]
	// Converted bytes live in sb.buf; values point into it only once it no
	// longer grows, so offsets are kept first.
	var offs []off
	for i := range msgs {
		payload := msgs[i].Payload
		if !s.paths.Resolve(payload, spans) {
			bad = addErr(bad, i, component.EventPermanent(fmt.Errorf("%s: the payload is not JSON", s.name)))
			continue
		}
		row := Row{Index: i}
		op := ""
		if s.opSlot >= 0 {
			sp := spans[s.opSlot]
			if sp.Found() {
				if c, ok := jsonscan.StringContent(payload[sp.Start:sp.End]); ok {
					op = string(c)
				}
			}
			switch op {
			case "c", "u", "r":
			case "d":
				row.Delete = true
			default:
				bad = addErr(bad, i, component.EventPermanent(fmt.Errorf("%s: mode cdc: %s is %q, want c, u, d or r", s.name, s.cfg.OpPath, op)))
				continue
			}
		}
		start := len(sb.vals)
		failed := false
		for c := range s.cols {
			sp := spans[s.slots[c]]
			if row.Delete {
				// Only the key matters, from before (or key) when after is
				// null.
				if !slices.Contains(s.key, c) {
					sb.vals = append(sb.vals, Value{Null: true})
					sb.pres = append(sb.pres, false)
					offs = append(offs, off{})
					continue
				}
				for _, a := range s.alt[c] {
					if !isValue(payload, sp) && a >= 0 {
						sp = spans[a]
					}
				}
			}
			if !sp.Found() {
				if slices.Contains(s.key, c) {
					bad = addErr(bad, i, component.EventPermanent(fmt.Errorf("%s: key column %q: its path finds nothing in the record", s.name, s.cols[c].Name)))
					failed = true
					break
				}
				sb.vals = append(sb.vals, Value{Null: true})
				sb.pres = append(sb.pres, false)
				offs = append(offs, off{})
				continue
			}
			from := len(sb.buf)
			v, buf, err := s.d.Convert(&s.cols[c], payload[sp.Start:sp.End], sb.buf)
			sb.buf = buf
			if err != nil {
				bad = addErr(bad, i, component.EventPermanent(fmt.Errorf("%s: column %q: %v", s.name, s.cols[c].Name, err)))
				failed = true
				break
			}
			sb.vals = append(sb.vals, v)
			sb.pres = append(sb.pres, true)
			offs = append(offs, offOf(v, sb.buf, from))
		}
		if failed {
			sb.vals = sb.vals[:start]
			sb.pres = sb.pres[:start]
			offs = offs[:start]
			continue
		}
		if op == "u" {
			// An update that changed the key (UPDATE t SET id = 2 WHERE
			// id = 1) is a delete of the old key, from before, then the
			// upsert of the new row: the old row stayed in the target.
			var err error
			if offs, err = s.deleteOldKey(payload, spans, sb, offs, start, i); err != nil {
				bad = addErr(bad, i, err)
				sb.vals = sb.vals[:start]
				sb.pres = sb.pres[:start]
				offs = offs[:start]
				continue
			}
		}
		sb.rows = append(sb.rows, row)
	}
	for k := range sb.vals {
		if o := offs[k]; o.from >= 0 {
			sb.vals[k].Text = sb.buf[o.from:o.to:o.to]
		} else if o.from == -1 {
			sb.vals[k].Text = nil
		}
	}
	sb.ptrs = sb.ptrs[:0]
	for r := range sb.rows {
		sb.rows[r].Vals = sb.vals[r*n : (r+1)*n : (r+1)*n]
		sb.rows[r].Present = sb.pres[r*n : (r+1)*n : (r+1)*n]
		sb.ptrs = append(sb.ptrs, &sb.rows[r])
	}
	p := &Plan{Columns: s.cols, Key: s.key, Mode: s.cfg.Mode, Rows: sb.ptrs}
	if dedup {
		p.Rows = dedupe(p.Rows, s.key)
	}
	return p, bad
}

// deleteOldKey handles an update's key change: when before holds every key
// column and one differs from the row just built (the last n values, from
// start), it puts a delete row of before's key in front of it, in sb.rows
// and in the values. A before without the key (a source that sends only
// the new image) changes nothing.
func (s *Sink) deleteOldKey(payload []byte, spans []jsonpath.Span, sb *scratchBuf, offs []off, start, index int) ([]off, error) {
	// Most updates keep their key: the same JSON in before and after needs
	// no conversion (and no allocation) to tell.
	same := true
	for _, c := range s.key {
		a := s.alt[c][0] // before
		if a < 0 || !isValue(payload, spans[a]) {
			return offs, nil
		}
		b, n := spans[a], spans[s.slots[c]]
		same = same && bytes.Equal(payload[b.Start:b.End], payload[n.Start:n.End])
	}
	if same {
		return offs, nil
	}
	n := len(s.cols)
	old := make([]Value, n)
	oldOffs := make([]off, n)
	changed := false
	for _, c := range s.key {
		a := s.alt[c][0]
		from := len(sb.buf)
		v, buf, err := s.d.Convert(&s.cols[c], payload[spans[a].Start:spans[a].End], sb.buf)
		sb.buf = buf
		if err != nil {
			return offs, component.EventPermanent(fmt.Errorf("%s: key column %q of before: %v", s.name, s.cols[c].Name, err))
		}
		old[c], oldOffs[c] = v, offOf(v, sb.buf, from)
		now := sb.vals[start+c]
		if v.Null != now.Null || !bytes.Equal(v.Text, now.Text) {
			changed = true
		}
	}
	if !changed {
		return offs, nil
	}
	// The delete goes first: move the row's values one row on.
	vals := slices.Clone(sb.vals[start:])
	pres := slices.Clone(sb.pres[start:])
	rowOffs := slices.Clone(offs[start:])
	sb.vals, sb.pres, offs = sb.vals[:start], sb.pres[:start], offs[:start]
	for c := range s.cols {
		if slices.Contains(s.key, c) {
			sb.vals = append(sb.vals, old[c])
			sb.pres = append(sb.pres, true)
			offs = append(offs, oldOffs[c])
		} else {
			sb.vals = append(sb.vals, Value{Null: true})
			sb.pres = append(sb.pres, false)
			offs = append(offs, off{})
		}
	}
	sb.vals = append(sb.vals, vals...)
	sb.pres = append(sb.pres, pres...)
	offs = append(offs, rowOffs...)
	sb.rows = append(sb.rows, Row{Index: index, Delete: true})
	return offs, nil
}

// isValue reports whether sp holds a value other than null.
func isValue(payload []byte, sp jsonpath.Span) bool {
	return sp.Found() && !(sp.End-sp.Start == 4 && string(payload[sp.Start:sp.End]) == "null")
}

func addErr(m map[int]error, i int, err error) map[int]error {
	if m == nil {
		m = map[int]error{}
	}
	m[i] = err
	return m
}

// dedupe keeps the last row of each key, in the order of those last rows.
// A row missing columns an earlier upsert of the same key had inherits
// their values (an update that left out an unchanged value).
func dedupe(rows []*Row, key []int) []*Row {
	if len(rows) < 2 {
		return rows
	}
	last := make(map[string]int, len(rows))
	var kb []byte
	// A key with a NULL equals no other (a unique key lets each such row
	// in, a primary key refuses each): such a row is its own, kept under a
	// key no other row has.
	keyOf := func(i int, r *Row) string {
		kb = kb[:0]
		for _, k := range key {
			v := r.Vals[k]
			if v.Null {
				kb = append(kb[:0], 1, 'n')
				kb = strconv.AppendInt(kb, int64(i), 10)
				break
			}
			kb = append(kb, 0, 'v')
			kb = append(kb, v.Text...)
		}
		return string(kb)
	}
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = keyOf(i, r)
		if j, ok := last[keys[i]]; ok && !r.Delete && !rows[j].Delete {
			prev := rows[j]
			for c := range r.Present {
				if !r.Present[c] && prev.Present[c] {
					r.Vals[c], r.Present[c] = prev.Vals[c], true
				}
			}
		}
		last[keys[i]] = i
	}
	out := rows[:0:0]
	for i, r := range rows {
		if last[keys[i]] == i {
			out = append(out, r)
		}
	}
	return out
}

// Close closes the pool.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opened {
		s.opened = false
		s.d.Close()
	}
	return nil
}

// ErrNotOpen is returned by Write before Open.
var ErrNotOpen = errors.New("sink not open")

// AppendUTCDigits rewrites dst[from:], when it is an RFC 3339 instant, as
// its UTC digits without a zone ("2006-01-02 15:04:05.999999"), what a
// column without time zone takes (the CDC sources' convention); other text
// (infinity, a date before year 1, digits without a zone) is left to the
// server. The instant may also be spelled with a space or a t for the T, a
// z for the Z, and an offset without its colon (+0200) or of hours alone
// (+02, PostgreSQL's output): left to the server, such an offset was
// dropped without a word (PostgreSQL's timestamp input ignores it).
func AppendUTCDigits(dst []byte, from int) []byte {
	if t, ok := parseInstant(dst[from:]); ok {
		return t.UTC().AppendFormat(dst[:from], "2006-01-02 15:04:05.999999")
	}
	return dst
}

// parseInstant reads an RFC 3339 instant, and the spellings
// AppendUTCDigits takes besides.
func parseInstant(b []byte) (time.Time, bool) {
	if t, err := time.Parse(time.RFC3339Nano, string(b)); err == nil {
		return t, true
	}
	// 2006-01-02?15:04:05[.frac]<zone>
	if len(b) < 20 || len(b) > 64 || (b[10] != ' ' && b[10] != 't' && b[10] != 'T') {
		return time.Time{}, false
	}
	i := 19
	if b[i] == '.' {
		i++
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	zone := b[i:]
	norm := make([]byte, 0, 40)
	norm = append(norm, b[:10]...)
	norm = append(norm, 'T')
	norm = append(norm, b[11:i]...)
	switch {
	case len(zone) == 1 && (zone[0] == 'z' || zone[0] == 'Z'):
		norm = append(norm, 'Z')
	case len(zone) == 3 && (zone[0] == '+' || zone[0] == '-'): // +02
		norm = append(append(norm, zone...), ":00"...)
	case len(zone) == 5 && (zone[0] == '+' || zone[0] == '-'): // +0200
		norm = append(append(append(norm, zone[:3]...), ':'), zone[3:]...)
	case len(zone) == 6 && (zone[0] == '+' || zone[0] == '-'): // +02:00
		norm = append(norm, zone...)
	default:
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(norm))
	return t, err == nil
}

// JSONText returns the text a JSON token stands for: a string's content,
// the token itself otherwise (numbers, booleans, objects, arrays).
func JSONText(tok []byte, dst []byte) ([]byte, bool) {
	if len(tok) > 0 && tok[0] == '"' {
		if c, ok := jsonscan.StringContent(tok); ok {
			return append(dst, c...), true
		}
		return jsonscan.AppendString(dst, tok)
	}
	return append(dst, tok...), true
}

var _ component.Sink = (*Sink)(nil)

// Group is rows that one statement writes: deletes, or inserts/upserts
// that give the same columns.
type Group struct {
	Delete bool
	Cols   []int // indexes into Plan.Columns: the key for deletes
	Rows   []*Row
}

// Groups splits the plan's rows into statements, in record order: each run
// of deletes is one statement, and each run of inserts/upserts giving the
// same columns another. Record order matters because deduplication
// compares the keys' JSON text, and the database may hold two spellings
// equal (a uuid in upper and lower case, a case-insensitive collation, "1"
// and "1.0" in a numeric column): an upsert of "ABC" followed by a delete
// of "abc" must leave no row, and an upsert of "abc" giving two columns
// followed by one of "ABC" giving one must leave the second's values. A
// batch whose rows are all of one kind and give the same columns, the
// usual case, is one statement.
func (p *Plan) Groups() []Group {
	var out []Group
	var mk, last []byte // the column set of this row, and of the last group
	for _, r := range p.Rows {
		if r.Delete {
			if len(out) == 0 || !out[len(out)-1].Delete {
				out = append(out, Group{Delete: true, Cols: p.Key})
			}
			out[len(out)-1].Rows = append(out[len(out)-1].Rows, r)
			continue
		}
		mk = mk[:0]
		for _, ok := range r.Present {
			if ok {
				mk = append(mk, 1)
			} else {
				mk = append(mk, 0)
			}
		}
		if len(out) == 0 || out[len(out)-1].Delete || string(mk) != string(last) {
			g := Group{}
			for c, ok := range r.Present {
				if ok {
					g.Cols = append(g.Cols, c)
				}
			}
			out = append(out, g)
			last = append(last[:0], mk...)
		}
		out[len(out)-1].Rows = append(out[len(out)-1].Rows, r)
	}
	return out
}

// RowGroup returns the one-row group of r, for ApplyEach.
func (p *Plan) RowGroup(r *Row) Group {
	if r.Delete {
		return Group{Delete: true, Cols: p.Key, Rows: []*Row{r}}
	}
	g := Group{Rows: []*Row{r}}
	for c, ok := range r.Present {
		if ok {
			g.Cols = append(g.Cols, c)
		}
	}
	return g
}
