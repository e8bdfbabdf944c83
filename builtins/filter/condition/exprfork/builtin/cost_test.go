package builtin

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// call runs builtin name on args as the VM does.
func call(t *testing.T, name string, args ...any) any {
	t.Helper()
	f := Builtins[Index[name]]
	switch {
	case f.Fast != nil:
		return f.Fast(args[0])
	case f.Safe != nil:
		out, _, err := f.Safe(args...)
		if err != nil {
			t.Fatalf("%s%v: %v", name, args, err)
		}
		return out
	default:
		out, err := f.Func(args...)
		if err != nil {
			t.Fatalf("%s%v: %v", name, args, err)
		}
		return out
	}
}

// Sluice (SLUICE.md): the bytes a cost function tells are at least the
// length of the string the builtin then builds, for every builtin that
// builds one, on values of every kind a condition holds.
func TestCostBoundsTheStringBuilt(t *testing.T) {
	value := map[string]any{
		"s":    "plain",
		"esc":  "quote \" back \\ nl \n tab \t ctl \x01 html <a&b> \u2028 é 漢",
		"bad":  "\xff\xfe ok",
		"n":    []any{0, -1, math.MaxInt64, math.MinInt64, 1.5, -1e-7, 1.7976931348623157e308, 5e-324, -0.0},
		"b":    []any{true, false, nil},
		"deep": []any{[]any{[]any{map[string]any{"k": []any{}}}}, map[string]any{}},
		"ints": []int{1, 2, 3},
		"strs": []string{"a", "b"},
		"time": time.Date(2026, 12, 7, 11, 26, 23, 123456789, time.FixedZone("CET", 3600)),
		"dur":  90 * time.Minute,
	}
	notJSON := []any{map[any][]any{1: {"x"}, "k": {2.5}}, math.Inf(-1), []any{math.NaN()}, time.UTC}
	strs := []string{"", "plain", "MiXeD", "ﬀ ǅ ß ı ſ", "\xff\xfe\xfd", "ⱥⱦ", "a,b,,c", strings.Repeat("ab", 100)}
	values := []any{value, nil, 3, 2.5, true}
	for _, v := range value {
		values = append(values, v)
	}
	for _, x := range append(values, notJSON...) {
		for _, name := range []string{"string", "toJSON"} {
			if name == "toJSON" && slices.ContainsFunc(notJSON, func(y any) bool { return fmt.Sprint(x) == fmt.Sprint(y) }) {
				continue // toJSON fails
			}
			out := call(t, name, x).(string)
			if _, bytes := Builtins[Index[name]].Cost([]any{x}); bytes < uint64(len(out)) {
				t.Errorf("%s(%v): told %d bytes, built %d", name, x, bytes, len(out))
			}
		}
	}
	for _, s := range strs {
		cases := [][]any{
			{"upper", s}, {"lower", s}, {"repeat", s, 3}, {"repeat", s, 0}, {"toBase64", s},
			{"replace", s, "a", "xyz"}, {"replace", s, "", "--"}, {"replace", s, "b", "long replacement", 1},
			{"join", []any{s, s, s}, ", "}, {"join", []string{s, s}}, {"string", s},
		}
		for _, c := range cases {
			name := c[0].(string)
			out := call(t, name, c[1:]...).(string)
			if _, bytes := Builtins[Index[name]].Cost(c[1:]); bytes < uint64(len(out)) {
				t.Errorf("%s%q: told %d bytes, built %d", name, c[1:], bytes, len(out))
			}
		}
		out := call(t, "split", s, ",").([]string)
		if _, bytes := Builtins[Index["split"]].Cost([]any{s, ","}); bytes < 16*uint64(len(out)) {
			t.Errorf("split(%q): told %d bytes for %d parts", s, bytes, len(out))
		}
	}
	// Cost functions never panic: on arguments of the wrong kind they
	// tell nothing and the builtin reports the error.
	for _, f := range Builtins {
		if f.Cost == nil {
			continue
		}
		for _, args := range [][]any{{nil}, {1, nil, true}, {"s", "t", 2.5, -1}, {[]any{1, "x"}, 3}, {map[string]any{"a": 1}, "x", "y"}} {
			f.Cost(args)
		}
	}
}

// Sluice: repeat and the other builders tell the size before anything is
// built, saturating instead of overflowing.
func TestCostSaturates(t *testing.T) {
	if _, bytes := Builtins[Index["repeat"]].Cost([]any{strings.Repeat("x", 1<<20), math.MaxInt64}); bytes != math.MaxUint64 {
		t.Errorf("repeat of 2^20 bytes 2^63 times: told %d bytes", bytes)
	}
	big := make([]any, 1<<20)
	if steps, _ := Builtins[Index["uniq"]].Cost([]any{big}); steps != 1<<39 {
		t.Errorf("uniq of 2^20 elements: told %d steps, want 2^39 (each against the others)", steps)
	}
}
