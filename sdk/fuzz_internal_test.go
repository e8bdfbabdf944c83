//go:build !wasip1

package sdk

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
)

// fuzzRef is what encoding/json decodes the fuzzed config into: the keys
// of fuzzParams, with the same defaults.
type fuzzRef struct {
	Name   string                        `json:"name"`
	On     bool                          `json:"on"`
	Max    int                           `json:"max"`
	Big    int64                         `json:"big"`
	Ratio  float64                       `json:"ratio"`
	Fields keptOnNull[[]string]          `json:"fields"`
	Table  keptOnNull[map[string]string] `json:"table"`
	Raw    rawNotNull                    `json:"raw"`
}

// keptOnNull decodes as encoding/json does, except that null leaves the
// value as it is instead of setting a slice or map to nil: Param.Into's
// documentation says a key that is null leaves the default.
type keptOnNull[T any] struct{ v T }

func (k *keptOnNull[T]) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	return json.Unmarshal(b, &k.v) // into the map as it is: merged, as Into does
}

// rawNotNull is json.RawMessage except that null leaves it as it is:
// Param.Decode is never given null (its documentation says so; null leaves
// the default, as for Into), while encoding/json hands null to a
// RawMessage. "bad" is rejected, as fuzzParams' Decode does.
type rawNotNull []byte

func (r *rawNotNull) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if string(b) == `"bad"` {
		return ConfigTypeError("raw", "anything but bad", b)
	}
	*r = append((*r)[:0:0], b...)
	return nil
}

func fuzzDefaults() testConfig {
	return testConfig{Name: "n", Max: 7, Fields: []string{"d"}, Table: map[string]string{"keep": "me"}}
}

// refDecode decodes in as the SDK is meant to: encoding/json with unknown
// keys disallowed and nothing after the object, keys matched exactly (the
// host rejects any key not spelled as a parameter before sluice_init
// runs, docs/abi.md "parameters"; encoding/json would also take "NAME"),
// and the required key "name" present.
func refDecode(in []byte) (fuzzRef, bool) {
	d := fuzzDefaults()
	ref := fuzzRef{Name: d.Name, Max: d.Max, Fields: keptOnNull[[]string]{d.Fields}, Table: keptOnNull[map[string]string]{d.Table}}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ref); err != nil {
		return ref, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return ref, false
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(in, &keys); err != nil {
		return ref, false
	}
	if _, ok := keys["name"]; !ok {
		return ref, false
	}
	for k := range keys {
		switch k {
		case "name", "on", "max", "big", "ratio", "fields", "table", "raw":
		default:
			return ref, false
		}
	}
	return ref, true
}

// FuzzParams: the SDK's decoding by Params (Into of every type and one
// Decode) never panics, decodes what encoding/json decodes, and takes
// every config encoding/json takes.
func FuzzParams(f *testing.F) {
	for _, s := range []string{
		`{"name":"a\u00e9\"b","on":true,"big":-9007199254740993,"ratio":0.25,"fields":["x","y\n"],"table":{"k\"1":"v1"},"raw":{"deep":[1,{"a":null}]},"max":null}`,
		`{"name":"x","max":1,"max":2,"table":{"a":"1"},"table":{"b":"2"}}`,
		`{"name":"x","fields":[],"raw":null}`,
		`null`, `{}`, ``, `[1]`, `{"name":"a",}`,
		`{"name":"x","big":99999999999999999999}`,
		`{"name":"x","ratio":1e400}`,
		`{"name":"\ud800"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := fuzzDefaults()
		ps := testParams(&c)
		ps[len(ps)-1].Decode = func(v []byte) error {
			if string(v) == `"bad"` {
				return ConfigTypeError("raw", "anything but bad", v)
			}
			c.Raw = append([]byte(nil), v...)
			return nil
		}
		registerForTest(t, Plugin{Params: ps})
		err := initPlugin(in)
		ref, refOK := refDecode(in)
		if refOK && err != nil {
			t.Fatalf("%q: encoding/json takes it (%+v), the SDK rejects it: %v", in, ref, err)
		}
		if err != nil {
			return
		}
		if len(bytes.TrimSpace(in)) == 0 {
			return // no config at all: the host's to check (TestConfigErrorNamesTheKey)
		}
		if !refOK {
			t.Fatalf("%q: the SDK takes it (%+v), encoding/json rejects it", in, c)
		}
		got := fuzzRef{Name: c.Name, On: c.On, Max: c.Max, Big: c.Big, Ratio: c.Ratio, Fields: keptOnNull[[]string]{c.Fields}, Table: keptOnNull[map[string]string]{c.Table}, Raw: c.Raw}
		if !reflect.DeepEqual(got, ref) {
			t.Fatalf("%q:\nSDK           %#v\nencoding/json %#v", in, got, ref)
		}
	})
}
