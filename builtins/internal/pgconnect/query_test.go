package pgconnect

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// awkward are names that a text[] literal would quote and escape, and that
// JSON carries as they are.
var awkward = []string{`id`, `we"ird`, `a,b`, `sp ace`, `{braced}`, `back\slash`, `NULL`, `"`, `\`, `Ünï`, `x'y`}

func TestDecoders(t *testing.T) {
	for in, want := range map[string]bool{"t": true, "f": false} {
		if got, err := Bool([]byte(in)); err != nil || got != want {
			t.Errorf("Bool(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "true", "T", "1"} {
		if _, err := Bool([]byte(in)); err == nil {
			t.Errorf("Bool(%q): no error", in)
		}
	}
	if n, err := Int32([]byte("-2147483648")); err != nil || n != -2147483648 {
		t.Errorf("Int32: %d, %v", n, err)
	}
	if _, err := Int32([]byte("2147483648")); err == nil {
		t.Error("Int32 of 2^31: no error")
	}
	if n, err := Uint32([]byte("4294967295")); err != nil || n != 4294967295 {
		t.Errorf("Uint32: %d, %v", n, err)
	}
	for _, in := range []string{"-1", "4294967296", "", "1x"} {
		if _, err := Uint32([]byte(in)); err == nil {
			t.Errorf("Uint32(%q): no error", in)
		}
	}
	// As json_agg prints them (PostgreSQL 15).
	for in, want := range map[string][]string{
		`[]`:     {},
		`["id"]`: {"id"},
		`["we\"ird", "a,b", "sp ace", "{braced}", "back\\slash", "NULL", "\"", "\\", "Ünï", "x'y", "tab\there", "\u0001"]`: {
			`we"ird`, `a,b`, `sp ace`, `{braced}`, `back\slash`, `NULL`, `"`, `\`, `Ünï`, `x'y`, "tab\there", "\x01"},
	} {
		got, err := Strings([]byte(in))
		if err != nil || !slices.Equal(got, want) || got == nil {
			t.Errorf("Strings(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`{id}`, `[1]`, ``, `["a"`} {
		if _, err := Strings([]byte(in)); err == nil {
			t.Errorf("Strings(%q): no error", in)
		}
	}
}

func connect(t *testing.T, dsn string) *pgconn.PgConn {
	t.Helper()
	cc, err := Config(Settings{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgconn.ConnectConfig(context.Background(), cc)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// TestQuery runs catalog-style queries on the server: text parameters,
// NULL both ways, no rows, and a list of names through json_agg.
func TestQuery(t *testing.T) {
	c := connect(t, testkit.Postgres(t))
	ctx := context.Background()

	row, err := QueryRow(ctx, c, "SELECT $1::text IS NULL, $2::text, NULL::int4, 42::int4, 'pg_class'::regclass::oid, ''::text", nil, []byte("x y"))
	if err != nil {
		t.Fatal(err)
	}
	isNull, _ := Bool(row[0])
	n, _ := Int32(row[3])
	oid, _ := Uint32(row[4])
	if !isNull || string(row[1]) != "x y" || row[2] != nil || n != 42 || oid != 1259 || row[5] == nil || len(row[5]) != 0 {
		t.Fatalf("row %q", row)
	}

	if _, err := QueryRow(ctx, c, "SELECT 1 WHERE false"); !errors.Is(err, ErrNoRows) {
		t.Fatalf("no rows: %v", err)
	}
	rows, err := Query(ctx, c, "SELECT g FROM generate_series(1, $1::int) g", []byte("3"))
	if err != nil || len(rows) != 3 || string(rows[2][0]) != "3" {
		t.Fatalf("rows %q, %v", rows, err)
	}
	var pe *pgconn.PgError
	if _, err := Query(ctx, c, "SELECT * FROM no_such_table_at_all"); !errors.As(err, &pe) || pe.Code != "42P01" {
		t.Fatalf("a failed query: %v", err)
	}

	// The names come back as they went in, in order, through the same
	// json_agg ... ::text the connectors' catalog queries use.
	arr := make([]string, len(awkward))
	for i, s := range awkward {
		arr[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	row, err = QueryRow(ctx, c, "SELECT coalesce((SELECT json_agg(n ORDER BY o) FROM unnest($1::text[]) WITH ORDINALITY AS u(n, o)), '[]')::text",
		[]byte("{"+strings.Join(arr, ",")+"}"))
	if err != nil {
		t.Fatal(err)
	}
	names, err := Strings(row[0])
	if err != nil || !slices.Equal(names, awkward) {
		t.Fatalf("got %q, %v\nwant %q", names, err, awkward)
	}

	tag, err := Exec(ctx, c, "BEGIN; SELECT 1; ROLLBACK")
	if err != nil || tag.String() != "ROLLBACK" {
		t.Fatalf("Exec: %q, %v", tag, err)
	}
}

// TestConnectWithPgxSettings: a DSN written for pgx or pgxpool, with the
// settings they took for themselves, still connects, in both forms.
func TestConnectWithPgxSettings(t *testing.T) {
	dsn := testkit.Postgres(t)
	cc, err := pgconn.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pgxSettings := []string{"statement_cache_capacity=128", "description_cache_capacity=64", "default_query_exec_mode=exec",
		"pool_max_conns=10", "pool_min_conns=1", "pool_min_idle_conns=1", "pool_max_conn_lifetime=1h", "pool_max_conn_idle_time=30m",
		"pool_health_check_period=1m", "pool_max_conn_lifetime_jitter=1s", "pool_ping_timeout=5s"}
	if len(pgxSettings) != len(PgxOnly) {
		t.Fatalf("the test covers %d settings, PgxOnly lists %d", len(pgxSettings), len(PgxOnly))
	}
	sep := "&"
	if !strings.Contains(dsn, "?") {
		sep = "?"
	}
	for _, d := range []string{
		dsn + sep + strings.Join(pgxSettings, "&"),
		"host=" + cc.Host + " port=" + strconv.Itoa(int(cc.Port)) + " user=" + cc.User + " password='" + cc.Password + "' dbname=" + cc.Database +
			" sslmode=disable " + strings.Join(pgxSettings, " "),
	} {
		c := connect(t, d)
		row, err := QueryRow(context.Background(), c, "SELECT current_setting('application_name')")
		if err != nil || string(row[0]) != "sluice" {
			t.Fatalf("%q, %v", row, err)
		}
	}
}
