package mysql

import (
	"fmt"
	"testing"
)

// An update that changes the primary key is op "u" with the old row in
// before and the new one in after (mysql_cdc, binlog_row_image FULL).
// Applied in cdc mode the old row must not survive.
func TestCDCKeyChangingUpdate(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id int PRIMARY KEY, name varchar(20)")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	ev := func(op, before, after string) string {
		return fmt.Sprintf(`{"specversion":"1.0","id":"x","data":{"op":%q,"before":%s,"after":%s,"key":null}}`, op, before, after)
	}
	if err := write(t, s, ev("c", "null", `{"id":1,"name":"a"}`)); err != nil {
		t.Fatal(err)
	}
	if err := write(t, s, ev("u", `{"id":1,"name":"a"}`, `{"id":2,"name":"a"}`)); err != nil {
		t.Fatal(err)
	}
	var ids []int
	rows, err := e.db.Query("SELECT id FROM " + tbl + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int
		rows.Scan(&id)
		ids = append(ids, id)
	}
	if len(ids) != 1 || ids[0] != 2 {
		t.Fatalf("after a key-changing update the table holds ids %v, want [2]", ids)
	}
}
