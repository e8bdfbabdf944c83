package jsonpath

import (
	"errors"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// FuzzParse: Parse never panics, points inside the path when it fails, and
// what it accepts survives a Format round trip.
func FuzzParse(f *testing.F) {
	for _, s := range []string{`$`, `$.data.key`, `$['a b'][0]`, `$["\u00e9\n"]`, `$..a`, `$.a[*]`, `$.a[01]`, `$['\ud83d\ude00']`, `$.x-y.1st`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		segs, err := Parse(path)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(path) || pe.Msg == "" {
				t.Fatalf("Parse(%q) error %#v", path, err)
			}
			return
		}
		back, err := Parse(Format(segs))
		if err != nil || !reflect.DeepEqual(back, segs) {
			t.Fatalf("Parse(%q) = %#v; Format %q parses to %#v, %v", path, segs, Format(segs), back, err)
		}
	})
}

// FuzzResolve: on any input, a Set agrees with jsonscan.Valid + jsonscan.Get.
func FuzzResolve(f *testing.F) {
	f.Add([]byte(kafkaEvent), `$.data.key`)
	f.Add([]byte(`{"a":[1,{"b":2}],"a":[3]}`), `$.a[1].b`)
	f.Add([]byte(`{"a\u0062":1}`), `$.ab`)
	f.Add([]byte(`[[0],[1,[2]]]`), `$[1][1][0]`)
	f.Add([]byte(`{"a":1} x`), `$.a`)
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		segs, err := Parse(path)
		if err != nil || len(data) > 8000 { // deeper than jsonscan's nesting bound is not comparable
			return
		}
		set := NewSet()
		root := set.Add(nil)
		slot := set.Add(segs)
		spans := make([]Span, set.Slots())
		ok := set.Resolve(data, spans)
		if ok != jsonscan.Valid(data) {
			t.Fatalf("Resolve(%q) valid=%v, jsonscan.Valid says %v", data, ok, !ok)
		}
		if !ok {
			if spans[root].Found() || spans[slot].Found() {
				t.Fatalf("invalid input left spans %v", spans)
			}
			return
		}
		s, e, found := jsonscan.Get(data, segs)
		if found != spans[slot].Found() || (found && (spans[slot] != Span{s, e})) {
			t.Fatalf("%s on %q: Set %v, Get %v %d..%d", path, data, spans[slot], found, s, e)
		}
	})
}
