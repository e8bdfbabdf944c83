package pgtext

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// TypeCache resolves column type OIDs to conversions: built-in types from
// a table, others (enums, domains, arrays of them) from pg_type, once.
type TypeCache struct {
	m map[uint32]ColType
}

func NewTypeCache() *TypeCache { return &TypeCache{m: map[uint32]ColType{}} }

func (tc *TypeCache) Get(ctx context.Context, c *pgx.Conn, oid uint32) (ColType, error) {
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

func (tc *TypeCache) lookup(ctx context.Context, c *pgx.Conn, oid uint32, depth int) (ColType, error) {
	if ct, ok := builtinTypes[oid]; ok {
		return ct, nil
	}
	if depth > 8 {
		return ColType{kind: kString}, nil
	}
	var typtype, category string
	var elem, base uint32
	var name string
	err := c.QueryRow(ctx, "SELECT typtype::text, typcategory::text, typelem, typbasetype, format_type(oid, NULL) FROM pg_type WHERE oid = $1", oid).
		Scan(&typtype, &category, &elem, &base, &name)
	if err == pgx.ErrNoRows {
		return ColType{kind: kString, name: fmt.Sprintf("oid %d", oid)}, nil
	}
	if err != nil {
		return ColType{}, err
	}
	switch {
	case typtype == "d" && base != 0: // a domain converts as its base type
		ct, err := tc.lookup(ctx, c, base, depth+1)
		ct.name = name
		return ct, err
	case category == "A" && elem != 0:
		et, err := tc.lookup(ctx, c, elem, depth+1)
		if err != nil {
			return ColType{}, err
		}
		if et.kind == kArray {
			et.kind = kString
		}
		return ColType{kind: kArray, elem: et.kind, name: name}, nil
	}
	return ColType{kind: kString, name: name}, nil
}
