package mysql

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestBitColumns: a BIT(1) column takes true and false, and a BIT(n)
// column a number, as mysql_cdc and the sql source write them. They were
// sent as the strings '1' and '200', which MySQL reads as the bytes of
// the text (0x31, 0x323030): too long for the column (error 1406), so
// every such record went to the dead-letter queue.
func TestBitColumns(t *testing.T) {
	e := newMy(t)
	tbl := e.table("id int PRIMARY KEY, flag bit(1), bits bit(12), small tinyint(1)")
	s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"", tbl))
	open(t, s)
	err := write(t, s,
		`{"data":{"id":1,"flag":true,"bits":200,"small":true}}`,
		`{"data":{"id":2,"flag":false,"bits":4095,"small":false}}`,
		`{"data":{"id":3,"flag":null,"bits":0,"small":7}}`)
	if err != nil {
		t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
	}
	var got string
	if err := e.db.QueryRow("SELECT GROUP_CONCAT(CONCAT_WS(',', id, COALESCE(flag+0, 'null'), bits+0, small) ORDER BY id SEPARATOR ';') FROM " + tbl).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if want := "1,1,200,1;2,0,4095,0;3,null,0,7"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}
