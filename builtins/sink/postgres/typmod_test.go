package postgres

import (
	"fmt"
	"strings"
	"testing"
)

// TestValueTooLongForItsColumn: a string longer than its varchar(n) or
// char(n) column, or a bit string longer than its bit(n) column, is
// refused by the column (SQLSTATE 22001, 22026): the record goes to the
// dead-letter queue alone and the others are written. The parameters'
// casts to the column's type used to cut such a value to the column's
// length without a word (an explicit cast truncates where an INSERT
// refuses).
func TestValueTooLongForItsColumn(t *testing.T) {
	for name, c := range map[string]struct{ typ, short, long, want string }{
		"varchar":       {"varchar(3)", `"ab"`, `"abcdef"`, "SQLSTATE 22001"},
		"char":          {"char(3)", `"ab"`, `"abcdef"`, "SQLSTATE 22001"},
		"bit":           {"bit(3)", `"101"`, `"101101"`, "SQLSTATE 22026"},
		"varchar array": {"varchar(3)[]", `["ab"]`, `["ab","abcdef"]`, "SQLSTATE 22001"},
	} {
		t.Run(name, func(t *testing.T) {
			e := newPG(t)
			tbl := e.table("id int PRIMARY KEY, v " + c.typ)
			s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\ncolumns = { id = \"$.id\", v = \"$.v\" }", tbl))
			open(t, s)
			err := write(t, s, fmt.Sprintf(`{"id":1,"v":%s}`, c.short), fmt.Sprintf(`{"id":2,"v":%s}`, c.long), `{"id":3,"v":null}`)
			wantAlone(t, err, 1, c.want)
			if got := e.dump(tbl, "id"); strings.Count(got, `"id"`) != 2 || strings.Contains(got, `"id":2`) {
				t.Fatalf("got %s, want the rows 1 and 3", got)
			}
		})
	}
}
