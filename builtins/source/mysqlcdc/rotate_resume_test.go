package mysqlcdc

import (
	"context"
	"fmt"
	"testing"
)

func (f *fixture) masterFile() string {
	f.t.Helper()
	rows, err := f.db.Query("SHOW MASTER STATUS")
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	var file string
	vals[0] = &file
	for i := 1; i < len(cols); i++ {
		var x any
		vals[i] = &x
	}
	if !rows.Next() {
		f.t.Fatal("no master status")
	}
	if err := rows.Scan(vals...); err != nil {
		f.t.Fatal(err)
	}
	return file
}

// TestResumeAfterRotationNamesTheFile: the source stops, the server rotates
// its binlog (FLUSH BINARY LOGS), the source resumes from its GTID
// position: the changes it then reads are in a newer file, and their
// source.file names it. It named the checkpoint's file, with offsets of
// the new one (review).
func TestResumeAfterRotationNamesTheFile(t *testing.T) {
	f := newFixture(t)
	table := f.table("rv8rot", "id INT PRIMARY KEY, v INT")
	cfg := f.config([]string{table}, "snapshot = false\n")
	s := f.open(cfg)
	c := collect(t, s)
	f.exec("INSERT INTO " + table + " VALUES (1, 1)")
	c.waitFor(t, "the first insert", func(ch []change) bool { return len(ch) >= 1 })
	c.stop()
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := f.masterFile()
	f.exec("FLUSH BINARY LOGS")
	s2 := f.open(cfg)
	c2 := collect(t, s2)
	f.exec("INSERT INTO " + table + " VALUES (2, 2)")
	got := c2.waitFor(t, "the insert after the rotation", func(ch []change) bool { return len(ch) >= 1 })
	g := got[0]
	if fmt.Sprint(g.Data.After["id"]) != "2" {
		t.Fatalf("first change after restart: %+v", g.Data)
	}
	// Binlog file names are zero-padded: a later file sorts after. Another
	// client's rotation in between only moves the change further on.
	if g.Data.Source.File <= before {
		t.Errorf("source.file of a change written after the rotation away from %s is %q (pos %d)", before, g.Data.Source.File, g.Data.Source.Pos)
	}
}
