package condition

import (
	"errors"
	"testing"
)

// FuzzCondition compiles and runs arbitrary conditions on arbitrary
// events: nothing panics, compile errors point inside the source, and a
// failed evaluation is false with a RuntimeError (or false and nil for a
// missing field).
func FuzzCondition(f *testing.F) {
	for _, src := range []string{
		`data.value.amount > 100 && data.value.region startsWith "eu-"`,
		`(data.value.missing ?? 5) > 3`, `data?.a?.b == nil`, `any(data.items, .sku == "A")`,
		`let x = data.n; x * 2 > 3`, `$env.source == "x"`, `data.items[-1].qty > 1`,
		`source matches "^acs"`, `len(data.tags) > 0`, `data.x +`, `foo()`, `1 + 2`,
		`data.s + 1 > 0`, `"k" in data`, `data["a b"] == 1`,
	} {
		f.Add(src, []byte(event))
		f.Add(src, []byte(`{"data":{"items":[{"sku":"A","qty":2}],"n":1.5,"s":"x","tags":[]},"source":"acs:x"}`))
	}
	f.Fuzz(func(t *testing.T, src string, ev []byte) {
		c, err := Compile(src)
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("%q: error %T, want *CompileError", src, err)
			}
			if ce.Offset < 0 || ce.Offset > len(src) || ce.Msg == "" {
				t.Fatalf("%q: bad CompileError %+v", src, ce)
			}
			return
		}
		got, err := c.Eval(ev)
		// Decoding only what the expression reads must not change the answer.
		whole := *c
		whole.need = nil
		if g, e := whole.Eval(ev); g != got || (e == nil) != (err == nil) {
			t.Fatalf("%q on %q: partial decoding gives %v, %v; full decoding %v, %v", src, ev, got, err, g, e)
		}
		if err != nil {
			var re *RuntimeError
			if got || !errors.As(err, &re) {
				t.Fatalf("%q on %q: got %v, %v; want false and a *RuntimeError", src, ev, got, err)
			}
		}
	})
}
