package pgtext

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
)

// TypeCache resolves column type OIDs to conversions: built-in types from
// a table, others (enums, domains, arrays of them) from pg_type, once.
type TypeCache struct {
	m map[uint32]ColType
}

func NewTypeCache() *TypeCache { return &TypeCache{m: map[uint32]ColType{}} }

func (tc *TypeCache) Get(ctx context.Context, c *pgconn.PgConn, oid uint32) (ColType, error) {
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

func (tc *TypeCache) lookup(ctx context.Context, c *pgconn.PgConn, oid uint32, depth int) (ColType, error) {
	if ct, ok := builtinTypes[oid]; ok {
		return ct, nil
	}
	if depth > 8 {
		return ColType{kind: kString}, nil
	}
	row, err := pgconnect.QueryRow(ctx, c, "SELECT typtype::text, typcategory::text, typelem, typbasetype, format_type(oid, NULL), typdelim::text FROM pg_type WHERE oid = $1",
		strconv.AppendUint(nil, uint64(oid), 10))
	if errors.Is(err, pgconnect.ErrNoRows) {
		return ColType{kind: kString, name: fmt.Sprintf("oid %d", oid)}, nil
	}
	if err != nil {
		return ColType{}, err
	}
	typtype, category, name := string(row[0]), string(row[1]), string(row[4])
	var delim byte
	if len(row[5]) == 1 && row[5][0] != ',' {
		delim = row[5][0]
	}
	elem, err := pgconnect.Uint32(row[2])
	if err != nil {
		return ColType{}, fmt.Errorf("pg_type.typelem of oid %d: %w", oid, err)
	}
	base, err := pgconnect.Uint32(row[3])
	if err != nil {
		return ColType{}, fmt.Errorf("pg_type.typbasetype of oid %d: %w", oid, err)
	}
	switch {
	case typtype == "d" && base != 0: // a domain converts as its base type
		ct, err := tc.lookup(ctx, c, base, depth+1)
		ct.name = name
		if ct.kind != kArray {
			ct.delim = delim
		}
		return ct, err
	case category == "A" && elem != 0:
		et, err := tc.lookup(ctx, c, elem, depth+1)
		if err != nil {
			return ColType{}, err
		}
		if et.kind == kArray {
			et.kind = kString
		}
		// Elements are separated by the element type's typdelim.
		return ColType{kind: kArray, elem: et.kind, delim: et.delim, name: name}, nil
	}
	return ColType{kind: kString, delim: delim, name: name}, nil
}
