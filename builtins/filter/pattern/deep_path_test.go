package pattern

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// deepList is a pattern depth objects deep whose innermost field holds a
// list of n numbers.
func deepList(depth, n int) string {
	var b strings.Builder
	b.WriteString(strings.Repeat(`{"a":`, depth))
	b.WriteString("[")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%d", i)
	}
	b.WriteString("]")
	b.WriteString(strings.Repeat(`}`, depth))
	return b.String()
}

// TestDeepPatternCompilesInLinearMemory: the compiler copied the path from
// the root at every value it descended into, which is quadratic in the
// depth: a pattern 9,000 objects deep (54 KB, within the JSON nesting
// limit) allocated 1.3 GB and took seconds to compile, and a value list
// deep down copied the path once per value (5,000 deep with 20,000 values:
// 2 GB).
func TestDeepPatternCompilesInLinearMemory(t *testing.T) {
	for _, c := range []struct{ depth, n int }{{9000, 1}, {5000, 20000}} {
		text := []byte(deepList(c.depth, c.n))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		p, err := CompileJSON(text)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 200 {
			t.Errorf("%d deep, %d values (%d bytes): compiling allocated %d MB", c.depth, c.n, len(text), mb)
		}
		// The event: the same objects, the list's last value as the leaf.
		ev := deepList(c.depth, 0)
		ev = ev[:len(`{"a":`)*c.depth] + fmt.Sprint(c.n-1) + ev[len(`{"a":`)*c.depth+2:]
		if !p.Match([]byte(ev)) {
			t.Errorf("%d deep, %d values: the event does not match", c.depth, c.n)
		}
	}
}

// TestProblemPathsAreKept: the compiler extends one path in place as it
// descends; each problem keeps its own, whatever was compiled after it.
func TestProblemPathsAreKept(t *testing.T) {
	_, err := CompileJSON([]byte(`{"a":{"x":"bad","y":{"z":[[1]]},"w":[{"anything-but":{"prefix":["",1,"ok",""]}}]},"b":[{"prefix":""},{"numeric":["<",1,"~",2]}],"c":{"$or":[{"d":"x"},{"e":[]}]}}`))
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, p := range pe.Problems {
		got = append(got, JSONPath(p.Path)+" "+p.Code)
	}
	want := []string{
		"$.a.w[0].anything-but.prefix[0] OPERAND_TYPE",
		"$.a.w[0].anything-but.prefix[1] OPERAND_TYPE",
		"$.a.w[0].anything-but.prefix[3] OPERAND_TYPE",
		"$.a.x NOT_ARRAY",
		"$.a.y.z[0] NESTED_ARRAY",
		"$.b[0].prefix OPERAND_TYPE",
		"$.b[1].numeric[2] NUMERIC_SYNTAX",
		"$.c.$or[0].d NOT_ARRAY",
		"$.c.$or[1].e EMPTY_ARRAY",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestLongKeyCompilesInLinearMemory: a field is copied into every
// alternative it holds in, and interning each copy wrote its key out: a
// 50 KB key beside a $or of 10,000 branches (190 KB in all) made the
// compiler allocate 1.9 GB (100 KB and 20,000 branches: 7 GB, 20 s).
func TestLongKeyCompilesInLinearMemory(t *testing.T) {
	long := strings.Repeat("k", 50000)
	var b strings.Builder
	b.WriteString(`{"` + long + `":[1],"$or":[`)
	for i := range 10000 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"b%d":[1]}`, i)
	}
	b.WriteString("]}")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p, err := CompileJSON([]byte(b.String()))
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 300 {
		t.Errorf("a %d-byte key beside a $or of 10,000 branches (%d bytes): compiling allocated %d MB", len(long), b.Len(), mb)
	}
	for ev, want := range map[string]bool{
		`{"` + long + `":1,"b9999":1}`:  true,
		`{"` + long + `":1,"b10000":1}`: false,
		`{"` + long[1:] + `":1,"b0":1}`: false,
	} {
		if got := p.Match([]byte(ev)); got != want {
			t.Errorf("Match(%.40s...) = %v, want %v", ev[len(long):], got, want)
		}
	}
}
