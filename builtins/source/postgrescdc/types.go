package postgrescdc

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// typeCache resolves column type OIDs to conversions: built-in types from
// a table, others (enums, domains, arrays of them) from pg_type, once.
type typeCache struct {
	m map[uint32]colType
}

func newTypeCache() *typeCache { return &typeCache{m: map[uint32]colType{}} }

func (tc *typeCache) get(ctx context.Context, c *pgx.Conn, oid uint32) (colType, error) {
	if ct, ok := builtinTypes[oid]; ok {
		return ct, nil
	}
	if ct, ok := tc.m[oid]; ok {
		return ct, nil
	}
	ct, err := tc.lookup(ctx, c, oid, 0)
	if err != nil {
		return ct, err
	}
	tc.m[oid] = ct
	return ct, nil
}

func (tc *typeCache) lookup(ctx context.Context, c *pgx.Conn, oid uint32, depth int) (colType, error) {
	if ct, ok := builtinTypes[oid]; ok {
		return ct, nil
	}
	if depth > 8 {
		return colType{kind: kString}, nil
	}
	var typtype, category string
	var elem, base uint32
	var name string
	err := c.QueryRow(ctx, "SELECT typtype::text, typcategory::text, typelem, typbasetype, format_type(oid, NULL) FROM pg_type WHERE oid = $1", oid).
		Scan(&typtype, &category, &elem, &base, &name)
	if err == pgx.ErrNoRows {
		return colType{kind: kString, name: fmt.Sprintf("oid %d", oid)}, nil
	}
	if err != nil {
		return colType{}, err
	}
	switch {
	case typtype == "d" && base != 0: // a domain converts as its base type
		ct, err := tc.lookup(ctx, c, base, depth+1)
		ct.name = name
		return ct, err
	case category == "A" && elem != 0:
		et, err := tc.lookup(ctx, c, elem, depth+1)
		if err != nil {
			return colType{}, err
		}
		if et.kind == kArray {
			et.kind = kString
		}
		return colType{kind: kArray, elem: et.kind, name: name}, nil
	}
	return colType{kind: kString, name: name}, nil
}
