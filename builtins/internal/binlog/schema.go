package binlog

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// TableSchema is what information_schema says about a table: the facts a
// table map event leaves out.
type TableSchema struct {
	Schema, Table string
	Columns       []SchemaColumn // in ordinal order
	// Key lists the primary key's column indexes, in key order (empty: no
	// primary key).
	Key []int
}

// SchemaColumn is one column of a TableSchema.
type SchemaColumn struct {
	Name       string
	DataType   string // information_schema DATA_TYPE: int, varchar, enum, ...
	ColumnType string // COLUMN_TYPE: int(10) unsigned, enum('a','b'), ...
	Unsigned   bool
	Binary     bool
	Latin1     bool
	JSON       bool
	Members    []string
	FixedLen   int
	Generated  bool // a VIRTUAL generated column
}

// LoadSchema reads a table's columns and primary key. It returns nil, nil
// when the table does not exist.
func LoadSchema(ctx context.Context, db *sql.DB, schema, table string) (*TableSchema, error) {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, CHARACTER_SET_NAME,
		COALESCE(CHARACTER_OCTET_LENGTH, 0), COLUMN_KEY, EXTRA
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, schema, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ts := &TableSchema{Schema: schema, Table: table}
	for rows.Next() {
		var c SchemaColumn
		var charset sql.NullString
		var octets int64
		var key, extra string
		if err := rows.Scan(&c.Name, &c.DataType, &c.ColumnType, &charset, &octets, &key, &extra); err != nil {
			return nil, err
		}
		c.DataType = strings.ToLower(c.DataType)
		c.Unsigned = strings.Contains(strings.ToLower(c.ColumnType), "unsigned")
		switch c.DataType {
		case "binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "uuid", "inet6", "inet4":
			c.Binary = true
		case "enum", "set":
			c.Members = ParseMembers(c.ColumnType)
		case "geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection":
			c.Binary = true
		}
		if c.DataType == "binary" {
			c.FixedLen = int(octets)
		}
		c.Latin1 = charset.Valid && charset.String == "latin1"
		c.Generated = strings.Contains(strings.ToUpper(extra), "VIRTUAL")
		ts.Columns = append(ts.Columns, c)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ts.Columns) == 0 {
		return nil, nil
	}
	if err := ts.loadKey(ctx, db); err != nil {
		return nil, err
	}
	// MariaDB's JSON is LONGTEXT checked by json_valid(col).
	checks, err := db.QueryContext(ctx, `SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
		WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`, schema, table)
	if err != nil {
		// MySQL before 8.0.16 has no CHECK_CONSTRAINTS: no MariaDB JSON.
		return ts, nil
	}
	defer checks.Close()
	for checks.Next() {
		var clause string
		if err := checks.Scan(&clause); err != nil {
			return nil, err
		}
		for i := range ts.Columns {
			c := &ts.Columns[i]
			if c.DataType == "longtext" && strings.EqualFold(clause, "json_valid(`"+c.Name+"`)") {
				c.JSON = true
			}
		}
	}
	return ts, checks.Err()
}

func (ts *TableSchema) loadKey(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, `SELECT COLUMN_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`, ts.Schema, ts.Table)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return err
		}
		for i, c := range ts.Columns {
			if c.Name == name {
				ts.Key = append(ts.Key, i)
			}
		}
	}
	return rows.Err()
}

// ParseMembers reads the members of "enum('a','b”c')" or "set(...)".
func ParseMembers(columnType string) []string {
	i := strings.IndexByte(columnType, '(')
	if i < 0 {
		return nil
	}
	s := columnType[i+1:]
	var out []string
	for len(s) > 0 && s[0] == '\'' {
		var b strings.Builder
		j := 1
		for j < len(s) {
			if s[j] == '\'' {
				if j+1 < len(s) && s[j+1] == '\'' {
					b.WriteByte('\'')
					j += 2
					continue
				}
				break
			}
			if s[j] == '\\' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
			j++
		}
		out = append(out, b.String())
		s = s[min(j+1, len(s)):]
		s = strings.TrimPrefix(s, ",")
	}
	return out
}

// Apply copies what the schema knows onto the columns of a table map. It
// fails when they do not describe the same table (a column added or
// dropped since the events were written), unless the event carries its
// own column names.
func (ts *TableSchema) Apply(tm *TableMap) error {
	if len(ts.Columns) != len(tm.Columns) {
		return fmt.Errorf("%s.%s has %d columns now but %d in the binlog event: the table changed since (set binlog_row_metadata = FULL on the server so events carry their column names)",
			ts.Schema, ts.Table, len(ts.Columns), len(tm.Columns))
	}
	for i := range tm.Columns {
		c, s := &tm.Columns[i], &ts.Columns[i]
		if tm.HasNames && c.Name != s.Name {
			return fmt.Errorf("%s.%s column %d is %q in the binlog event but %q now: the table changed since", ts.Schema, ts.Table, i+1, c.Name, s.Name)
		}
		if !compatible(c.Type, s.DataType) {
			return fmt.Errorf("%s.%s column %q is %s now but binlog type %d in the event: the table changed since (set binlog_row_metadata = FULL on the server so events carry their column names)",
				ts.Schema, ts.Table, s.Name, s.DataType, c.Type)
		}
		c.Name = s.Name
		if !tm.HasSignedness {
			c.Unsigned = s.Unsigned
		}
		c.Binary, c.Latin1, c.JSON, c.FixedLen = s.Binary, s.Latin1, s.JSON, s.FixedLen
		if c.Members == nil {
			c.Members = s.Members
		}
	}
	return nil
}

// compatible reports whether a binlog column type can hold a column whose
// information_schema DATA_TYPE is dt.
func compatible(t ColumnType, dt string) bool {
	switch t {
	case TypeTiny:
		return dt == "tinyint" || dt == "bool" || dt == "boolean"
	case TypeShort:
		return dt == "smallint"
	case TypeInt24:
		return dt == "mediumint"
	case TypeLong:
		return dt == "int" || dt == "integer"
	case TypeLongLong:
		return dt == "bigint"
	case TypeFloat:
		return dt == "float"
	case TypeDouble:
		return dt == "double" || dt == "real" || dt == "double precision"
	case TypeNewDecimal, TypeDecimal:
		return dt == "decimal" || dt == "numeric"
	case TypeDate, TypeNewDate:
		return dt == "date"
	case TypeTime, TypeTime2:
		return dt == "time"
	case TypeDateTime, TypeDateTime2:
		return dt == "datetime"
	case TypeTimestamp, TypeTimestamp2:
		return dt == "timestamp"
	case TypeYear:
		return dt == "year"
	case TypeBit:
		return dt == "bit"
	case TypeEnum:
		return dt == "enum"
	case TypeSet:
		return dt == "set"
	case TypeJSON:
		return dt == "json"
	case TypeVarchar, TypeVarString, TypeString:
		return dt == "varchar" || dt == "char" || dt == "binary" || dt == "varbinary" || dt == "inet6" || dt == "inet4" || dt == "uuid"
	case TypeBlob, TypeTinyBlob, TypeMediumBlob, TypeLongBlob:
		return strings.HasSuffix(dt, "text") || strings.HasSuffix(dt, "blob") || dt == "json"
	case TypeGeometry:
		return true
	}
	return false
}
