package config

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/component"
)

// A task file saved with a UTF-8 byte order mark (Windows editors add one)
// has its problems located as in one without it: the mark is not a column.
// The syntax-only pass that finds positions used to stop at the mark, so
// every problem of such a file came without a line and a column, and the
// decoder's syntax errors were placed 3 bytes early (on the line before
// when at the start of a line).
func TestByteOrderMarkKeepsPositions(t *testing.T) {
	const bom = "\ufeff"
	_, ds := load(t, bom+"nam = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\nformt = \"json\"\n[sink]\ntype = \"out\"\n")
	want := map[string]string{
		"nam":          "task.toml:1:1: nam: unknown key",
		"source.formt": "task.toml:5:1: source.formt: unknown key",
	}
	for _, d := range ds {
		if w, ok := want[d.Path]; ok {
			if !strings.HasPrefix(d.Error(), w) {
				t.Errorf("got %q, want it to start with %q", d.Error(), w)
			}
			if !strings.Contains(d.Snippet, "\n      | ^") || strings.Contains(d.Snippet, bom) {
				t.Errorf("%s: snippet with the caret not under the key, or holding the mark:\n%s", d.Path, d.Snippet)
			}
			delete(want, d.Path)
		}
	}
	if len(want) > 0 {
		t.Fatalf("missing %v in:\n%v", want, ds)
	}

	// A syntax error at the start of line 3.
	_, ds = load(t, bom+"name = \"t\"\n[source]\n= 1\n")
	if len(ds) != 1 || ds[0].Line != 3 || ds[0].Col != 1 {
		t.Fatalf("want the syntax error at 3:1, got %v", ds)
	}
}

// A component table written as an array of tables ([[sink]] for [sink],
// as [[transform]] is spelt) is refused at its header; the problem used to
// come with no line or column.
func TestArrayOfTablesWhereATableIsExpectedHasAPosition(t *testing.T) {
	for _, c := range []struct{ text, path string }{
		{"name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[[sink]]\ntype = \"out\"\n", "sink"},
		{"name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[sink]\ntype = \"out\"\n[[dead_letter]]\ntype = \"out\"\n", "dead_letter"},
		{"name = \"t\"\n[[source]]\ntype = \"thing\"\npath = \"x\"\n[sink]\ntype = \"out\"\n", "source"},
	} {
		_, ds := load(t, c.text)
		found := false
		for _, d := range ds {
			if d.Path == c.path {
				found = true
				header := "[[" + c.path + "]]"
				line := strings.Count(c.text[:strings.Index(c.text, header)], "\n") + 1
				if d.Line != line || d.Col != 3 {
					t.Errorf("%s: got %q, want it at %d:3 (the header)", c.path, d.Error(), line)
				}
			}
		}
		if !found {
			t.Errorf("%s: no problem at that path: %v", c.path, ds)
		}
	}
}

// A task name used by two files is reported at the second file's name,
// with its line and column; it used to come with neither.
func TestDuplicateTaskNameHasAPosition(t *testing.T) {
	dir := t.TempDir()
	body := "[source]\ntype = \"thing\"\npath = \"p\"\n[sink]\ntype = \"out\"\n"
	os.WriteFile(filepath.Join(dir, "a.toml"), []byte("name = \"x\"\n"+body), 0o644)
	os.WriteFile(filepath.Join(dir, "b.toml"), []byte("# the same task\n\nname = \"x\"\n"+body), 0o644)
	l := &Loader{Registry: testRegistry()}
	_, err := l.LoadAll([]string{dir})
	var ds Diagnostics
	if !errors.As(err, &ds) || len(ds) != 1 {
		t.Fatalf("want one diagnostic, got %v", err)
	}
	if want := filepath.Join(dir, "b.toml") + `:3:8: name: task name "x" is already used by`; !strings.HasPrefix(ds[0].Error(), want) || ds[0].Snippet == "" {
		t.Fatalf("got %q (snippet %q), want it to start with %q", ds[0].Error(), ds[0].Snippet, want)
	}
}

type closeCounter struct {
	nopComp
	n *int
}

func (c closeCounter) Close(context.Context) error { *c.n++; return nil }

// The components built for a file whose task name is taken are released
// like those of any refused file (a WASM module compiled for it used to
// stay, at each refused reload).
func TestDuplicateTaskNameReleasesItsComponents(t *testing.T) {
	closed := 0
	r := testRegistry()
	r.Register(component.Spec{Kind: component.KindSource, Name: "counted", New: func() any { return &struct{}{} },
		Build: func(any, component.Env) (any, error) { return closeCounter{n: &closed}, nil }})
	dir := t.TempDir()
	body := "[source]\ntype = \"counted\"\n[sink]\ntype = \"out\"\n"
	os.WriteFile(filepath.Join(dir, "a.toml"), []byte("name = \"x\"\n"+body), 0o644)
	os.WriteFile(filepath.Join(dir, "b.toml"), []byte("name = \"x\"\n"+body), 0o644)
	l := &Loader{Registry: r}
	if _, err := l.LoadAll([]string{dir}); err == nil {
		t.Fatal("two tasks named x were accepted")
	}
	if closed != 2 {
		t.Fatalf("%d of the 2 sources built were closed", closed)
	}
}

// max_event_size is at most config.MaxEventLimit: components size their
// own limits from it (4 times it for a line), which wrapped around for a
// huge value ("2097152TiB" made the stdin source's line limit negative,
// and every line was cut to nothing and dead-lettered).
func TestMaxEventSizeIsBounded(t *testing.T) {
	_, ds := load(t, "name = \"t\"\nmax_event_size = \"2097152TiB\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[sink]\ntype = \"out\"\n")
	if len(ds) != 1 || ds[0].Path != "max_event_size" || ds[0].Line != 2 || !strings.Contains(ds[0].Msg, "256MiB") {
		t.Fatalf("want one problem at max_event_size (line 2) naming 256MiB, got %v", ds)
	}
	if _, ds := load(t, "name = \"t\"\nmax_event_size = \"256MiB\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[sink]\ntype = \"out\"\n"); len(ds) != 0 {
		t.Fatalf("256MiB refused: %v", ds)
	}
}

// A table the file creates only through a dotted key ([snk.tls] for a
// misspelt [sink.tls], snk.x = 1, [transform.0] for [[transform]]) is
// located at the part of the key that names it; its problems used to come
// with no line or column, as the index held only the full dotted path.
func TestImplicitTableHasAPosition(t *testing.T) {
	const base = "name = \"t\"\n[source]\ntype = \"thing\"\npath = \"x\"\n[sink]\ntype = \"out\"\n"
	for _, c := range []struct{ text, path, at string }{
		{"[snk.tls]\nca = \"x\"\n", "snk", "7:2"},
		{"[[snk.tls.x]]\nca = \"x\"\n", "snk", "7:3"},
		{"[transform.0]\ntype = \"x\"\n", "transform", "7:2"},
	} {
		_, ds := load(t, base+c.text)
		found := false
		for _, d := range ds {
			if d.Path == c.path {
				found = true
				if got := strconv.Itoa(d.Line) + ":" + strconv.Itoa(d.Col); got != c.at {
					t.Errorf("%q: got %q, want it at %s", c.text, d.Error(), c.at)
				}
			}
		}
		if !found {
			t.Errorf("%q: no problem at %s: %v", c.text, c.path, ds)
		}
	}
	_, ds := load(t, "snk.x = 1\n"+base)
	if len(ds) != 1 || ds[0].Path != "snk" || ds[0].Line != 1 || ds[0].Col != 1 {
		t.Errorf("dotted key: %v", ds)
	}
}
