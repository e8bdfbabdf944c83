package mysql

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestJSONColumnKeepsTheJSONValue: a JSON column stores the record's JSON
// value, strings included, as mysql_cdc and the sql source write a JSON
// column (embedded). A JSON string was written as its content: "abc"
// failed MariaDB's json_valid check (the record dead-lettered) and "123"
// became the number 123, "true" the boolean.
func TestJSONColumnKeepsTheJSONValue(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id int PRIMARY KEY, j json")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"cdc\"", tbl))
	open(t, s)
	var payloads []string
	vals := []string{`"abc"`, `"123"`, `"true"`, `{"a":[1,"x"]}`, `5`, `"{\"a\":1}"`}
	for i, v := range vals {
		payloads = append(payloads, fmt.Sprintf(`{"data":{"op":"c","before":null,"after":{"id":%d,"j":%s}}}`, i, v))
	}
	if err := write(t, s, payloads...); err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	for i, v := range vals {
		var same bool
		if err := e.db.QueryRow("SELECT JSON_EQUALS(j, ?) FROM "+tbl+" WHERE id = ?", v, i).Scan(&same); err != nil {
			t.Fatal(err)
		}
		if !same {
			var got string
			e.db.QueryRow("SELECT j FROM "+tbl+" WHERE id = ?", i).Scan(&got)
			t.Errorf("row %d: stored %s, want %s", i, got, v)
		}
	}
}
