package sdk

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

// TestSprintfMatchesFmt: the log functions' formatter prints what
// fmt.Sprintf prints for the values it knows.
func TestSprintfMatchesFmt(t *testing.T) {
	cases := []struct {
		format string
		args   []any
	}{
		{"plain", nil},
		{"100%%", nil},
		{"%s and %v", []any{"a", "b"}},
		{"%q %+q %#q %x % X", []any{"tab\there é", "é", "back`quote", "hi", "hi"}},
		{"%d %d %d %d %d %v", []any{0, -5, int8(-128), int64(math.MinInt64), uint64(math.MaxUint64), uint8(200)}},
		{"%x %X %#x %o %#o %O %b %#b", []any{255, 255, 255, 8, 8, 8, 5, 5}},
		{"%5d|%-5d|%05d|%+d|% d|%.3d|%8.3d", []any{42, 42, -42, 42, 42, 7, 7}},
		{"%c %q %U", []any{'é', 'x', 0x1F600}},
		{"%t %v", []any{true, false}},
		{"%v %g %f %.2f %e %E %G %8.3f|%-8.2f|%+.1f %F", []any{1.5, 1e21, 3.0, 2.345, 123456.789, 0.000123, 1e-7, math.Pi, 2.5, 3.0, 1.0}},
		{"%v %v %v", []any{math.Inf(1), math.NaN(), float32(0.1)}},
		{"%v: %s", []any{errors.New("boom"), errors.New("err as s")}},
		{"%v %s", []any{time.Second, 90 * time.Minute}},
		{"%v %s", []any{nil, []byte("bytes")}},
		{"%10s|%-10s|%.2s|%5.1s|", []any{"right", "left", "truncate", "xyz"}},
		{"%*d|%-*d|%.*f", []any{5, 1, 4, 2, 2, math.E}},
		{"%d", []any{"not a number"}},
		{"%s", []any{42}},
		{"%t", []any{1}},
		{"%d %d", []any{1}},
		{"%d", []any{1, 2, "three"}},
		{"trailing %", nil},
		{"%!", nil},
	}
	for _, c := range cases {
		want := fmt.Sprintf(c.format, c.args...)
		if got := sprintf(c.format, c.args...); got != want {
			t.Errorf("sprintf(%q, %v)\n got %q\nwant %q", c.format, c.args, got, want)
		}
	}
	if got := sprintf("%v", struct{ A int }{1}); got != "%!v(unsupported)" {
		t.Errorf("a struct printed as %q", got)
	}
}
