package partial

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/jsonpath"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// refPartial is the partial transform written with encoding/json: decode the
// whole input, walk the path, render the value.
func refPartial(input []byte, segs []jsonscan.Seg) (value any, found bool) {
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil || dec.More() || !json.Valid(input) {
		return nil, false
	}
	for _, s := range segs {
		if s.IsIndex {
			l, ok := v.([]any)
			if !ok || s.Index >= len(l) {
				return nil, false
			}
			v = l[s.Index]
			continue
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[s.Key]; !ok {
			return nil, false
		}
	}
	return v, true
}

// FuzzPartial compares the transform with refPartial on arbitrary input.
func FuzzPartial(f *testing.F) {
	f.Add([]byte(kafkaEvent), `$.data.headers`)
	f.Add([]byte(valuesEvent), `$.o`)
	f.Add([]byte(valuesEvent), `$.q`)
	f.Add([]byte(`{"a": [ 1 , {"b" : [true, null, -0.5e-3]} ] }`), `$.a[1].b`)
	f.Add([]byte(`{"k":1,"k":{"x":"\u00e9\ud83d\ude00"}}`), `$.k`)
	f.Add([]byte(`"\ud800"`), `$`)
	f.Add([]byte(`{"a": 1} {"a": 2}`), `$.a`)
	f.Fuzz(func(t *testing.T, input []byte, path string) {
		segs, err := jsonpath.Parse(path)
		if err != nil {
			return
		}
		tr := newTransform(t, &Config{Path: &path}, component.Env{})
		if !json.Valid(input) {
			// Not JSON: the record fails, nothing is emitted.
			var out component.Output
			if err := tr.Apply(context.Background(), []message.Message{{Payload: input}}, &out); err != nil || len(out.Messages) != 0 || len(out.Failures) != 1 {
				t.Fatalf("non-JSON %q: err %v, %d outputs, %d failures", input, err, len(out.Messages), len(out.Failures))
			}
			return
		}
		got := []byte(run(t, tr, string(input))[0])
		if !utf8.Valid(input) || len(input) > 8000 {
			return // encoding/json replaces bad UTF-8; deep nesting limits differ
		}
		want, found := refPartial(input, segs)
		if !found {
			if len(got) != 0 {
				t.Fatalf("%s on %q = %q, want empty", path, input, got)
			}
			return
		}
		switch w := want.(type) {
		case string:
			if string(got) != w {
				t.Fatalf("%s on %q = %q, want %q", path, input, got, w)
			}
		case json.Number:
			if string(got) != string(w) {
				t.Fatalf("%s on %q = %q, want %s", path, input, got, w)
			}
		case bool, nil:
			b, _ := json.Marshal(w)
			if !bytes.Equal(got, b) {
				t.Fatalf("%s on %q = %q, want %s", path, input, got, b)
			}
		default: // object or array: compact JSON equal to the value
			var c bytes.Buffer
			if err := json.Compact(&c, got); err != nil || !bytes.Equal(c.Bytes(), got) {
				t.Fatalf("%s on %q = %q: not compact JSON (%v)", path, input, got, err)
			}
			dec := json.NewDecoder(bytes.NewReader(got))
			dec.UseNumber()
			var back any
			if err := dec.Decode(&back); err != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("%s on %q = %q, want %v", path, input, got, want)
			}
		}
	})
}
