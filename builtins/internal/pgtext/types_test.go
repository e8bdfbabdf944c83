package pgtext

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestTypeCacheLookup resolves types that are not built in from pg_type:
// a domain converts as its base type, an array of a domain as an array of
// the base type, an enum as a string, an OID pg_type lacks as a string
// named after it. An array of box (whose typdelim is ';') records the
// delimiter, as does an array of a domain over box.
func TestTypeCacheLookup(t *testing.T) {
	cc, err := pgconnect.Config(pgconnect.Settings{DSN: testkit.Postgres(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	// Temporary types: they vanish with the session.
	if _, err := pgconnect.Exec(ctx, c, "CREATE DOMAIN pg_temp.money_d AS numeric(10,2); CREATE TYPE pg_temp.mood AS ENUM ('sad', 'happy'); CREATE DOMAIN pg_temp.box_d AS box"); err != nil {
		t.Fatal(err)
	}
	oid := func(typ string) uint32 {
		row, err := pgconnect.QueryRow(ctx, c, "SELECT $1::regtype::oid", []byte(typ))
		if err != nil {
			t.Fatal(err)
		}
		n, err := pgconnect.Uint32(row[0])
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	tc := NewTypeCache()
	for _, want := range []struct {
		oid   uint32
		kind  kind
		elem  kind
		name  string
		delim byte
	}{
		{oid("pg_temp.money_d"), kNumeric, 0, "money_d", ','},
		{oid("pg_temp.money_d[]"), kArray, kNumeric, "money_d[]", ','},
		{oid("pg_temp.mood"), kString, 0, "mood", ','},
		{oid("pg_temp.mood[]"), kArray, kString, "mood[]", ','},
		{oid("int4"), kNumber, 0, "int4", ','},
		{4294967295, kString, 0, "oid 4294967295", ','},
		{oid("box[]"), kArray, kString, "box[]", ';'},
		{oid("pg_temp.box_d[]"), kArray, kString, "box_d[]", ';'},
		{oid("point[]"), kArray, kString, "point[]", ','},
	} {
		ct, err := tc.Get(ctx, c, want.oid)
		if err != nil {
			t.Fatalf("oid %d: %v", want.oid, err)
		}
		if ct.kind != want.kind || ct.elem != want.elem || ct.name != want.name || ct.delimiter() != want.delim {
			t.Errorf("oid %d: got %+v, want kind %d elem %d name %q delimiter %q", want.oid, ct, want.kind, want.elem, want.name, want.delim)
		}
	}
}
