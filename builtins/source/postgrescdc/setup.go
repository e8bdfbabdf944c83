package postgrescdc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/runtime/component"
)

// tableMeta is what the catalog says about a captured table.
type tableMeta struct {
	schema, name string
	pk           []string // primary key columns, in key order
	replIdent    byte     // d(efault), f(ull), i(ndex), n(othing)
}

func (t *tableMeta) qualified() string { return t.schema + "." + t.name }

// quoteIdent quotes a name for SQL.
func quoteIdent(s string) string { return pgconnect.Ident(s) }

func (t *tableMeta) sqlName() string { return pgconnect.Ident(t.schema, t.name) }

// checkServer verifies what logical replication needs and says what to
// change when it is missing.
func (s *Source) checkServer(ctx context.Context, c *pgconn.PgConn) error {
	row, err := pgconnect.QueryRow(ctx, c, "SHOW wal_level")
	if err != nil {
		return s.queryErr("SHOW wal_level", err)
	}
	level := string(row[0])
	if level != "logical" {
		return component.TaskPermanent(fmt.Errorf("postgres %s: wal_level is %q, logical replication needs \"logical\": "+
			"run ALTER SYSTEM SET wal_level = logical (or set it in postgresql.conf) and restart the server", s.where, level))
	}
	return nil
}

// queryErr classifies a failed query: a lost connection, and the server's
// transient errors (its shutdown, a terminated backend, a cancelled
// statement, a lack of resources, a serialization failure), are retried;
// any other error (privileges, a missing object) stops the task.
func (s *Source) queryErr(what string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && !transientState(pe.Code) {
		return component.TaskPermanent(fmt.Errorf("postgres %s: %s: %s (SQLSTATE %s)", s.where, what, pe.Message, pe.Code))
	}
	if pe != nil {
		return component.Retryable(fmt.Errorf("postgres %s: %s: %s (SQLSTATE %s)", s.where, what, pe.Message, pe.Code), 0)
	}
	return component.Retryable(fmt.Errorf("postgres %s: %s: %w", s.where, what, err), 0)
}

// transientState reports whether a SQLSTATE says the server could not
// answer now rather than that the query is wrong: connection exceptions
// (08), serialization failures and deadlocks (40), insufficient resources
// (53), a lock not available (55P03), operator intervention (57: a
// shutdown, a terminated backend, a cancelled statement) and system errors
// (58).
func transientState(code string) bool {
	if len(code) != 5 {
		return false
	}
	switch code[:2] {
	case "08", "40", "53", "57", "58":
		return true
	}
	return code == "55P03"
}

// ensurePublication uses the publication when it exists and creates it
// over the configured tables or schema when it does not. It returns the
// tables the publication covers.
func (s *Source) ensurePublication(ctx context.Context, c *pgconn.PgConn) ([]*tableMeta, error) {
	pub := s.cfg.publication()
	row, err := pgconnect.QueryRow(ctx, c, "SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)", []byte(pub))
	if err != nil {
		return nil, s.queryErr("reading pg_publication", err)
	}
	exists, err := pgconnect.Bool(row[0])
	if err != nil {
		return nil, s.queryErr("reading pg_publication", err)
	}
	if !exists {
		if err := s.createPublication(ctx, c, pub); err != nil {
			return nil, err
		}
	}
	rows, err := pgconnect.Query(ctx, c, "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1, 2", []byte(pub))
	if err != nil {
		return nil, s.queryErr("reading pg_publication_tables", err)
	}
	var names [][2]string
	for _, r := range rows {
		names = append(names, [2]string{string(r[0]), string(r[1])})
	}
	// Listed tables must be in an existing publication too.
	for _, t := range s.cfg.Tables {
		sc, tb, _ := splitTable(t)
		found := false
		for _, n := range names {
			found = found || (n[0] == sc && n[1] == tb)
		}
		if !found {
			if _, err := s.lookupTable(ctx, c, sc, tb); err != nil {
				return nil, err
			}
			return nil, component.TaskPermanent(fmt.Errorf("postgres %s: table %s.%s is not in publication %q: ALTER PUBLICATION %s ADD TABLE %s, or remove it from tables",
				s.where, sc, tb, pub, quoteIdent(pub), pgconnect.Ident(sc, tb)))
		}
	}
	var out []*tableMeta
	for _, n := range names {
		m, err := s.lookupTable(ctx, c, n[0], n[1])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, component.TaskPermanent(fmt.Errorf("postgres %s: publication %q covers no table: add tables to it or list tables", s.where, pub))
	}
	return out, nil
}

func (s *Source) createPublication(ctx context.Context, c *pgconn.PgConn, pub string) error {
	var target string
	switch {
	case len(s.cfg.Tables) > 0:
		var names []string
		for _, t := range s.cfg.Tables {
			sc, tb, _ := splitTable(t)
			m, err := s.lookupTable(ctx, c, sc, tb)
			if err != nil {
				return err
			}
			if len(m.pk) == 0 && m.replIdent != 'f' && m.replIdent != 'i' {
				return component.TaskPermanent(fmt.Errorf("postgres %s: table %s has no primary key: once published, its UPDATEs and DELETEs would fail; "+
					"add a primary key or run ALTER TABLE %s REPLICA IDENTITY FULL", s.where, m.qualified(), m.sqlName()))
			}
			names = append(names, m.sqlName())
		}
		target = "TABLE " + strings.Join(names, ", ")
	case s.cfg.Schema != "":
		row, err := pgconnect.QueryRow(ctx, c, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", []byte(s.cfg.Schema))
		if err != nil {
			return s.queryErr("reading pg_namespace", err)
		}
		ok, err := pgconnect.Bool(row[0])
		if err != nil {
			return s.queryErr("reading pg_namespace", err)
		}
		if !ok {
			return component.TaskPermanent(fmt.Errorf("postgres %s: schema %q does not exist: fix schema", s.where, s.cfg.Schema))
		}
		target = "TABLES IN SCHEMA " + quoteIdent(s.cfg.Schema)
	default:
		return component.TaskPermanent(fmt.Errorf("postgres %s: publication %q does not exist and neither tables nor schema is set to create it: set tables (or schema), or create the publication", s.where, pub))
	}
	if _, err := pgconnect.Exec(ctx, c, "CREATE PUBLICATION "+quoteIdent(pub)+" FOR "+target); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42710" {
			return nil // created concurrently
		}
		return s.queryErr("CREATE PUBLICATION "+pub, err)
	}
	s.log.Info().Str("publication", pub).Str("for", target).Msg("created publication")
	return nil
}

// errNoTable is in the chain of lookupTable's error for a missing table;
// its text is empty.
var errNoTable = noTableError{}

type noTableError struct{}

func (noTableError) Error() string { return "" }

// lookupTable reads a table's primary key (else its replica identity
// index's columns) and replica identity; a missing table stops the task.
func (s *Source) lookupTable(ctx context.Context, c *pgconn.PgConn, schema, name string) (*tableMeta, error) {
	m := &tableMeta{schema: schema, name: name}
	// The key's names come as JSON (pgconnect.Strings says why).
	row, err := pgconnect.QueryRow(ctx, c, `
SELECT c.relreplident::text,
       coalesce((SELECT json_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisprimary), '[]')::text,
       coalesce((SELECT json_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum))
                 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
                 WHERE i.indrelid = c.oid AND i.indisreplident), '[]')::text
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')`, []byte(schema), []byte(name))
	if errors.Is(err, pgconnect.ErrNoRows) {
		return nil, component.TaskPermanent(fmt.Errorf("postgres %s: table %s.%s does not exist: create it or fix tables%w", s.where, schema, name, errNoTable))
	}
	if err == nil {
		m.pk, err = pgconnect.Strings(row[1])
	}
	if err != nil {
		return nil, s.queryErr("reading table "+schema+"."+name, err)
	}
	if ident := row[0]; len(ident) > 0 {
		m.replIdent = ident[0]
	}
	if len(m.pk) == 0 && m.replIdent == 'i' {
		// Without a primary key, the replica identity's unique index (on
		// NOT NULL columns) is the key: the stream's changes carry it, so
		// the snapshot's rows must too (they had none), and the snapshot
		// can read the table in chunks of it.
		if m.pk, err = pgconnect.Strings(row[2]); err != nil {
			return nil, s.queryErr("reading table "+schema+"."+name, err)
		}
	}
	return m, nil
}

// slotInfo is the state of the replication slot.
type slotInfo struct {
	exists    bool
	plugin    string
	activePID int32 // 0: not in use
	confirmed uint64
	database  string
}

func (s *Source) readSlot(ctx context.Context, c *pgconn.PgConn) (slotInfo, error) {
	var si slotInfo
	// Every column may be NULL (nil): a physical slot has no plugin nor
	// database, an idle one no active_pid, a new one no confirmed position.
	row, err := pgconnect.QueryRow(ctx, c, `SELECT plugin, active_pid, confirmed_flush_lsn::text, database FROM pg_replication_slots WHERE slot_name = $1`, []byte(s.cfg.Slot))
	if errors.Is(err, pgconnect.ErrNoRows) {
		return si, nil
	}
	if err == nil && row[1] != nil {
		si.activePID, err = pgconnect.Int32(row[1])
	}
	if err != nil {
		return si, s.queryErr("reading pg_replication_slots", err)
	}
	si.exists = true
	si.plugin = string(row[0])
	si.database = string(row[3])
	if row[2] != nil {
		si.confirmed, _ = parseLSN(string(row[2]))
	}
	return si, nil
}

// waitSlotFree checks that no other process streams from the slot. A
// process that just died (kill -9) may hold it for a moment while the
// server notices, so an active slot gets a short grace period before the
// task fails.
func (s *Source) waitSlotFree(ctx context.Context, c *pgconn.PgConn) (slotInfo, error) {
	deadline := time.Now().Add(slotGrace)
	for {
		si, err := s.readSlot(ctx, c)
		if err != nil || !si.exists || si.activePID == 0 {
			return si, err
		}
		if time.Now().After(deadline) {
			return si, component.TaskPermanent(fmt.Errorf("postgres %s: replication slot %q is in use by server process %d (another reader streams from it): "+
				"stop that reader (SELECT pg_terminate_backend(%d)) or give this task another slot", s.where, s.cfg.Slot, si.activePID, si.activePID))
		}
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return si, ctx.Err()
		case <-t.C:
		}
	}
}

// slotGrace is how long an active slot is waited for before giving up.
var slotGrace = 10 * time.Second

// parseLSN reads PostgreSQL's "16/B374D848" form.
func parseLSN(s string) (uint64, error) {
	i := strings.IndexByte(s, '/')
	if i <= 0 || i == len(s)-1 {
		return 0, fmt.Errorf("invalid LSN %q", s)
	}
	var hi, lo uint64
	for _, p := range []struct {
		s string
		v *uint64
	}{{s[:i], &hi}, {s[i+1:], &lo}} {
		if len(p.s) > 8 {
			return 0, fmt.Errorf("invalid LSN %q", s)
		}
		for _, ch := range []byte(p.s) {
			var d byte
			switch {
			case ch >= '0' && ch <= '9':
				d = ch - '0'
			case ch >= 'A' && ch <= 'F':
				d = ch - 'A' + 10
			case ch >= 'a' && ch <= 'f':
				d = ch - 'a' + 10
			default:
				return 0, fmt.Errorf("invalid LSN %q", s)
			}
			*p.v = *p.v<<4 | uint64(d)
		}
	}
	return hi<<32 | lo, nil
}

// appendLSN appends lsn in PostgreSQL's form.
func appendLSN(dst []byte, lsn uint64) []byte {
	dst = appendHex(dst, lsn>>32)
	dst = append(dst, '/')
	return appendHex(dst, lsn&0xffffffff)
}

func appendHex(dst []byte, v uint64) []byte {
	const digits = "0123456789ABCDEF"
	if v == 0 {
		return append(dst, '0')
	}
	var tmp [16]byte
	i := len(tmp)
	for v > 0 {
		i--
		tmp[i] = digits[v&0xf]
		v >>= 4
	}
	return append(dst, tmp[i:]...)
}

// appendHex16 appends lsn as 16 hex digits, so ids sort by position.
func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789ABCDEF"
	for sh := 60; sh >= 0; sh -= 4 {
		dst = append(dst, digits[(v>>uint(sh))&0xf])
	}
	return dst
}
