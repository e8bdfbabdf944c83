//go:build !wasip1

package structconfig_test

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"

	"github.com/sluicehq/sluice/sdk/jsonfield"
	"github.com/sluicehq/sluice/sdk/structconfig"
)

// fuzzDefaults are config's values before decoding: some non-zero, so
// that what a key leaves alone shows.
func fuzzDefaults() config {
	return config{Embedded: Embedded{Shared: "s"}, Limit: 3, Ptr: &Inner{Max: 1}, Table: map[string]Inner{"keep": {Max: 2}},
		List: []string{"d"}, Raw: json.RawMessage(`[1]`)}
}

// refDecode decodes in as structconfig is meant to: encoding/json with
// unknown keys disallowed and nothing after the value, and the required
// key "field" present as spelled (the host checks required keys exactly,
// docs/abi.md "parameters", and so does DecodeConfig).
func refDecode(in []byte) (config, bool) {
	c := fuzzDefaults()
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return c, false
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(in, &keys); err != nil {
		return c, false
	}
	_, ok := keys["field"]
	return c, ok
}

// FuzzDecode: structconfig never panics, decodes what encoding/json
// decodes into the same struct, and takes every config encoding/json
// takes.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"field":"f","shared":"x","limit":-5,"small":127,"count":4294967295,"ratio":0.1,"on":true,"list":["a"],"pair":[1,2,3],
		"limits":{"max":1,"name":"n"},"ptr":{"max":2},"table":{"t":{"max":3}},"by_id":{"-1":"x"},"raw":{"a":[1]},
		"bytes":"aGk=","any":{"x":[1.5,"s",null,true]},"when":"2024-01-02T03:04:05Z","wait":1000,"NoTag":"n","fields":{"a":"b"}}`,
		`{"FIELD":"f","Field":"g","field":"h","LIMITS":{"MAX":1}}`,
		`{"field":"f","raw":null,"ptr":null,"list":null,"when":null,"any":null}`,
		`{"field":"f","small":128}`, `{"field":"f","count":-1}`, `{"field":"f","ratio":1e39}`,
		`{"field":"f","bytes":"not base64"}`, `{"field":"f","by_id":{"x":"y"}}`,
		`{"field":"f","Skipped":"x"}`, `{"field":"f","hidden":"x"}`,
		`null`, `{}`, `[]`, `{"field":"\ud800\udc00"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(bytes.TrimSpace(in)) == 0 {
			return // no config: the SDK does not call DecodeConfig
		}
		c := fuzzDefaults()
		d, err := structconfig.Of(&c)
		if err != nil {
			t.Fatal(err)
		}
		if jsonfield.Valid(in) { // the SDK checks before DecodeConfig (initPlugin)
			err = d.DecodeConfig(in)
		} else {
			err = errInvalid
		}
		ref, refOK := refDecode(in)
		if refOK && err != nil {
			t.Fatalf("%q: encoding/json takes it (%+v), structconfig rejects it: %v", in, ref, err)
		}
		if err != nil {
			return
		}
		if !refOK {
			t.Fatalf("%q: structconfig takes it (%+v), encoding/json rejects it", in, c)
		}
		if !reflect.DeepEqual(c, ref) {
			t.Fatalf("%q:\nstructconfig  %#v\nencoding/json %#v", in, c, ref)
		}
	})
}

var errInvalid = jsonErr("not valid JSON")

type jsonErr string

func (e jsonErr) Error() string { return string(e) }
