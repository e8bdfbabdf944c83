package postgres

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestUpsertRowsWithANullKeyAreNotOneRow: rows of one batch whose key is
// NULL are not the same row (NULL equals nothing: a unique key lets each
// in, a primary key refuses each). The batch's deduplication took them for
// one key and kept only the last: the others were neither written nor
// dead-lettered, but reported delivered.
func TestUpsertRowsWithANullKeyAreNotOneRow(t *testing.T) {
	e := newPG(t)
	t.Run("nullable unique key", func(t *testing.T) {
		tbl := e.table("id serial PRIMARY KEY, email text UNIQUE, name text")
		s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\nkey = [\"email\"]\ncolumns = { email = \"$.email\", name = \"$.name\" }", tbl))
		open(t, s)
		if err := write(t, s, `{"email":null,"name":"a"}`, `{"email":null,"name":"b"}`, `{"email":"x","name":"c"}`, `{"email":"x","name":"d"}`); err != nil {
			t.Fatalf("Write: (%s) %v", component.ClassOf(err), err)
		}
		if got := e.dump(tbl, "name"); strings.Count(got, `"id"`) != 3 || !strings.Contains(got, `"name":"a"`) || !strings.Contains(got, `"name":"b"`) || !strings.Contains(got, `"name":"d"`) {
			t.Fatalf("got %s, want the rows a, b and d", got)
		}
	})
	t.Run("primary key", func(t *testing.T) {
		tbl := e.table("id int PRIMARY KEY, name text")
		s := e.sink(t, e.dsn, fmt.Sprintf("table = %q\nmode = \"upsert\"\ncolumns = { id = \"$.id\", name = \"$.name\" }", tbl))
		open(t, s)
		err := write(t, s, `{"id":null,"name":"a"}`, `{"id":null,"name":"b"}`, `{"id":1,"name":"c"}`)
		var re *component.RecordErrors
		if !errors.As(err, &re) || len(re.Errs) != 2 || re.Errs[0] == nil || re.Errs[1] == nil {
			t.Fatalf("want records 0 and 1 failed (a NULL key), got (%s) %v", component.ClassOf(err), err)
		}
		if got := e.dump(tbl, "id"); got != `[{"id":1,"name":"c"}]` {
			t.Fatal(got)
		}
	})
}
