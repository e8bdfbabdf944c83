package pattern

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Nested $or shapes, depth levels deep. Each level pushes the fields of
// its enclosing objects into every alternative below it.
var deepShapes = map[string]func(depth int) string{
	// {"$or":[{"a0":[0]},{"$or":[{"a1":[1]},…]}]}
	"or in or": func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"$or":[{"a%d":[%d]},`, i, i)
		}
		b.WriteString(`{"z":[1]}` + strings.Repeat(`]}`, n))
		return b.String()
	},
	// {"$or":[{"a":[0]},{"x":{"$or":[…]}}]}: through objects.
	"or under key": func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"$or":[{"a":[%d]},{"x":`, i)
		}
		b.WriteString(`{"z":[1]}` + strings.Repeat(`}]}`, n))
		return b.String()
	},
	// {"k0":[0],"$or":[{"a":[0]},{"k1":[1],"$or":[…]}]}: a sibling field at
	// every level, which every alternative below inherits. This shape took
	// 54 s to compile at 400 levels (n³ fields copied), 0.4 s at 100.
	"or with siblings": func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"k%d":[%d],"$or":[{"a":[%d]},`, i, i, i)
		}
		b.WriteString(`{"z":[1]}` + strings.Repeat(`]}`, n))
		return b.String()
	},
}

// wide is "or with siblings" with w branches of f fields at each level.
func wide(depth, w, f int) string {
	var b strings.Builder
	for i := range depth {
		fmt.Fprintf(&b, `{"k%d":[%d],"$or":[`, i, i)
		for j := range w {
			b.WriteString(`{`)
			for x := range f {
				if x > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `"b%d_%d_%d":[1]`, i, j, x)
			}
			b.WriteString(`},`)
		}
	}
	b.WriteString(`{"z":[1]}` + strings.Repeat(`]}`, depth))
	return b.String()
}

// TestDeepOrIsRefused: a $or nested 400 levels deep (hostile input: a
// pattern comes from a task file, the console or the playground) is
// refused with one problem naming the limit and where it is passed. It
// used to compile, in 0.2 s to 54 s depending on the shape.
func TestDeepOrIsRefused(t *testing.T) {
	for name, shape := range deepShapes {
		t.Run(name, func(t *testing.T) {
			_, err := CompileJSON([]byte(shape(400)))
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want PATTERN_TOO_COMPLEX", err)
			}
			if len(pe.Problems) != 1 {
				t.Fatalf("%d problems, want 1: %v", len(pe.Problems), err)
			}
			p := pe.Problems[0]
			if p.Code != CodeTooComplex || !strings.Contains(p.Detail, fmt.Sprintf("nested more than %d levels", maxOrDepth)) {
				t.Fatalf("problem %+v, want PATTERN_TOO_COMPLEX about the nesting limit of %d", p, maxOrDepth)
			}
			if n := strings.Count(strings.Join(p.Path, " "), "$or"); n != maxOrDepth+1 {
				t.Errorf("path %v names %d $or, want the %d-th (the first too deep)", p.Path, n, maxOrDepth+1)
			}
			if p.Offset <= 0 {
				t.Errorf("offset %d, want the offending $or's", p.Offset)
			}
		})
	}
}

// TestDeepOrCostsNoMerge: the operation-count side of the test above. The
// refusal comes before any alternative is built, however deep the input,
// and at the deepest nesting allowed the copies stay within the cap.
func TestDeepOrCostsNoMerge(t *testing.T) {
	for name, shape := range deepShapes {
		t.Run(name, func(t *testing.T) {
			for _, depth := range []int{maxOrDepth + 1, 400, 2000} {
				v, perr := fromJSON([]byte(shape(depth)))
				if perr != nil {
					t.Fatal(perr)
				}
				c := newCompiler()
				if _, err := c.compile(v); err == nil {
					t.Fatalf("depth %d compiled", depth)
				}
				if c.work != 0 {
					t.Errorf("depth %d: %d fields copied before the refusal, want 0", depth, c.work)
				}
			}
			// At the deepest nesting allowed, a shape either compiles or
			// meets the merge cap; either way the copies stay near the cap
			// (one merge may finish after it is passed).
			v, _ := fromJSON([]byte(shape(maxOrDepth)))
			c := newCompiler()
			_, err := c.compile(v)
			if c.work > c.maxWork+2*countValues(v) {
				t.Errorf("depth %d: %d fields copied, cap %d (%v)", maxOrDepth, c.work, c.maxWork, err)
			}
			// 32 levels, the same: the shape with siblings copies 7,072
			// fields (about 32³/4.6), the others a few dozen.
			v, _ = fromJSON([]byte(shape(32)))
			c = newCompiler()
			if _, err := c.compile(v); err != nil || c.work > 32*32*32/4 {
				t.Errorf("depth 32: %d fields copied: %v", c.work, err)
			}
		})
	}
}

// TestMergeWorkIsBounded: within the depth limit, a wide pattern still
// copies depth² × branches fields; the cap (262,144 plus 4 per value)
// stops the copying shortly after it is passed, with a problem that names
// it and where, and lets patterns of ordinary size through.
func TestMergeWorkIsBounded(t *testing.T) {
	cases := []struct {
		depth, w, f int
		ok          bool
	}{
		{2, 1000, 5, true},         // 19,005 copies
		{8, 100, 5, true},          // 30,044
		{32, 10, 1, true},          // 65,680
		{maxOrDepth, 1, 1, true},   // 181,900
		{32, 30, 3, true},          // 227,600
		{maxOrDepth, 10, 1, false}, // over 1,000,000 uncapped
		{32, 100, 3, false},        // 757,360 uncapped
		{32, 300, 1, false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%dx%d", tc.depth, tc.w, tc.f), func(t *testing.T) {
			v, perr := fromJSON([]byte(wide(tc.depth, tc.w, tc.f)))
			if perr != nil {
				t.Fatal(perr)
			}
			values := countValues(v)
			c := newCompiler()
			_, err := c.compile(v)
			if c.maxWork != mergeWorkBase+mergeWorkPerValue*values {
				t.Fatalf("cap %d, want %d", c.maxWork, mergeWorkBase+mergeWorkPerValue*values)
			}
			// One merge may finish after the cap is passed; it copies at
			// most the fields of two alternatives, each at most one per key.
			if c.work > c.maxWork+2*values {
				t.Errorf("%d fields copied, cap %d", c.work, c.maxWork)
			}
			if tc.ok {
				if err != nil {
					t.Fatalf("refused (%d fields copied, cap %d): %v", c.work, c.maxWork, err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Code != CodeTooComplex ||
				!strings.Contains(pe.Problems[0].Detail, fmt.Sprintf("more than %d fields", c.maxWork)) || len(pe.Problems[0].Path) == 0 {
				t.Fatalf("err = %v, want one PATTERN_TOO_COMPLEX naming the cap %d and a path", err, c.maxWork)
			}
		})
	}
}

// BenchmarkCompileDeepOr compiles the costliest shape 32 levels deep;
// fields-copied/op is the operation count behind the time.
func BenchmarkCompileDeepOr(b *testing.B) {
	text := []byte(deepShapes["or with siblings"](32))
	b.ReportAllocs()
	work := 0
	for b.Loop() {
		v, _ := fromJSON(text)
		c := newCompiler()
		if _, err := c.compile(v); err != nil {
			b.Fatal(err)
		}
		work = c.work
	}
	b.ReportMetric(float64(work), "fields-copied/op")
}

// BenchmarkParseDeep parses a pattern nested 2,000 $or deep (6,000 JSON
// levels, 40 KB): reading it is linear in its size, where each level used
// to scan its whole subtree again (1.9 s; now about 10 ms). The compiler
// then refuses it at the 101st $or.
func BenchmarkParseDeep(b *testing.B) {
	text := []byte(deepShapes["or with siblings"](2000))
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, p := fromJSON(text); p != nil {
			b.Fatal(p)
		}
	}
}
