package sqlsink

import (
	"fmt"
	"testing"
)

func row(i int, del bool, vals ...string) *Row {
	r := &Row{Index: i, Delete: del}
	for _, v := range vals {
		if v == "-" {
			r.Vals = append(r.Vals, Value{Null: true})
			r.Present = append(r.Present, false)
		} else {
			r.Vals = append(r.Vals, Value{Text: []byte(v)})
			r.Present = append(r.Present, true)
		}
	}
	return r
}

// TestDedupeAndGroups checks that a batch keeps the last row of each key,
// that an update missing a column inherits it from an earlier upsert of
// the same key, and that rows split into statements by kind and columns.
func TestDedupeAndGroups(t *testing.T) {
	rows := []*Row{
		row(0, false, "1", "a", "body"),
		row(1, false, "2", "b", "x"),
		row(2, false, "1", "a2", "-"), // body left out: unchanged
		row(3, true, "2", "-", "-"),
		row(4, false, "3", "c", "-"),
	}
	out := dedupe(rows, []int{0})
	if len(out) != 3 || out[0].Index != 2 || out[1].Index != 3 || out[2].Index != 4 {
		t.Fatalf("kept %v", out)
	}
	if !out[0].Present[2] || string(out[0].Vals[2].Text) != "body" {
		t.Fatalf("the update did not inherit the earlier value: %+v", out[0])
	}
	p := &Plan{Key: []int{0}, Rows: out}
	gs := p.Groups()
	if len(gs) != 3 || gs[0].Delete || len(gs[0].Cols) != 3 || !gs[1].Delete || len(gs[1].Rows) != 1 || len(gs[2].Cols) != 2 {
		t.Fatalf("groups %+v, want the upsert, the delete, the upsert in record order", gs)
	}
	if g := p.RowGroup(out[2]); len(g.Cols) != 2 || g.Delete {
		t.Fatalf("row group %+v", g)
	}
}

func TestJSONText(t *testing.T) {
	for in, want := range map[string]string{`"a\nb"`: "a\nb", `"plain"`: "plain", `12.5`: "12.5", `{"a":1}`: `{"a":1}`, `true`: "true"} {
		got, ok := JSONText([]byte(in), nil)
		if !ok || string(got) != want {
			t.Errorf("%s: %q %v", in, got, ok)
		}
	}
	if _, ok := JSONText([]byte(`"bad \x"`), nil); ok {
		t.Error("a bad escape was accepted")
	}
}

// Groups wrote every delete of a batch before its upserts, and each set of
// columns where its first row stood, which is right only when keys are
// distinct; deduplication compares their JSON text, and the database may
// hold two spellings equal. Runs now keep record order.
func TestGroupsKeepRunsInOrder(t *testing.T) {
	p := &Plan{Key: []int{0}, Rows: []*Row{
		row(0, false, "A", "x"),
		row(1, false, "B", "-"),
		row(2, false, "C", "y"),
		row(3, true, "a", "-"),
		row(4, true, "b", "-"),
		row(5, false, "a", "z"),
	}}
	var got []string
	for _, g := range p.Groups() {
		s := "upsert"
		if g.Delete {
			s = "delete"
		}
		for _, r := range g.Rows {
			s += " " + string(r.Vals[0].Text)
		}
		got = append(got, s)
	}
	want := []string{"upsert A", "upsert B", "upsert C", "delete a b", "upsert a"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statements %q, want %q", got, want)
	}
}

// Within a run of upserts, rows were grouped by column set and a
// group is written where its first row stands, so a later row of an earlier
// column set is written before an earlier row of a later one. With one key
// in two spellings (which deduplication keeps apart), the earlier row wins.
func TestGroupsUpsertsOfOneKeyKeepRecordOrder(t *testing.T) {
	p := &Plan{Key: []int{0}, Rows: []*Row{
		row(0, false, "J", "j", "-"),      // columns id, name
		row(1, false, "k", "second", "2"), // columns id, name, n
		row(2, false, "K", "third", "-"),  // columns id, name: the same key, later
	}}
	pos := map[int]int{}
	n := 0
	for _, g := range p.Groups() {
		for _, r := range g.Rows {
			pos[r.Index] = n
			n++
		}
	}
	if pos[2] < pos[1] {
		t.Fatalf("row 2 (key K) is written before row 1 (key k, earlier): the earlier row's values are left in the table")
	}
}
