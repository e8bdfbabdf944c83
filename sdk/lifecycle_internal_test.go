package sdk

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// registerForTest installs p as Register does and restores the previous
// plugin when the test ends.
func registerForTest(t *testing.T, p Plugin) {
	t.Helper()
	savedPlugin, savedDecoder := plugin, decoder
	t.Cleanup(func() { plugin, decoder = savedPlugin, savedDecoder })
	plugin, decoder = nil, nil
	if p.Handler == nil {
		p.Handler = MapFunc(func(r *Record, dst []byte) ([]byte, error) { return r.Payload(), nil })
	}
	Register(p)
}

type testConfig struct {
	Name   string
	On     bool
	Max    int
	Big    int64
	Ratio  float64
	Fields []string
	Table  map[string]string
	Raw    []byte
}

func testParams(c *testConfig) []Param {
	return []Param{
		{Name: "name", Into: &c.Name, Required: true, Doc: "a name"},
		{Name: "on", Into: &c.On},
		{Name: "max", Into: &c.Max},
		{Name: "big", Into: &c.Big},
		{Name: "ratio", Into: &c.Ratio},
		{Name: "fields", Into: &c.Fields},
		{Name: "table", Into: &c.Table},
		{Name: "raw", Type: "any", Decode: func(v []byte) error {
			if string(v) == `"bad"` {
				return ConfigTypeError("raw", "anything but bad", v)
			}
			c.Raw = append([]byte(nil), v...)
			return nil
		}},
	}
}

// TestParamsDecode: the config reaches the Into pointers and Decode
// functions; absent and null keys leave the defaults.
func TestParamsDecode(t *testing.T) {
	c := testConfig{Max: 7, Table: map[string]string{"keep": "me"}}
	registerForTest(t, Plugin{Params: testParams(&c)})
	err := initPlugin([]byte(` {"name":"a\u00e9\"b","on":true,"big":-9007199254740993,"ratio":0.25,"fields":["x","y\n"],
		"table":{"k\"1":"v1"},"raw":{"deep":[1,{"a":null}]},"max":null} `))
	if err != nil {
		t.Fatal(err)
	}
	want := testConfig{Name: "aé\"b", On: true, Max: 7, Big: -9007199254740993, Ratio: 0.25, Fields: []string{"x", "y\n"},
		Table: map[string]string{"keep": "me", "k\"1": "v1"}, Raw: []byte(`{"deep":[1,{"a":null}]}`)}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", c, want)
	}
}

// TestConfigErrorNamesTheKey: a config value of the wrong type is rejected
// with `key "PATH": ...`, which the host turns into the position of that
// key in the task file (docs/abi.md, sluice_init).
func TestConfigErrorNamesTheKey(t *testing.T) {
	var c testConfig
	registerForTest(t, Plugin{Params: testParams(&c)})
	for in, want := range map[string]string{
		`{"name":5}`:                    `invalid config: key "name": expected a string, got number`,
		`{"name":"a","max":"many"}`:     `invalid config: key "max": expected an integer, got string`,
		`{"name":"a","max":1.5}`:        `invalid config: key "max": expected an integer, got number 1.5`,
		`{"name":"a","on":"yes"}`:       `invalid config: key "on": expected a bool, got string`,
		`{"name":"a","ratio":[]}`:       `invalid config: key "ratio": expected a number, got array`,
		`{"name":"a","fields":["x",2]}`: `invalid config: key "fields[1]": expected a string, got number`,
		`{"name":"a","table":{"k":{}}}`: `invalid config: key "table.k": expected a string, got object`,
		`{"name":"a","table":[]}`:       `invalid config: key "table": expected a table, got array`,
		`{"name":"a","raw":"bad"}`:      `invalid config: key "raw": expected anything but bad, got string`,
		`{"nmae":"x"}`:                  `invalid config: unknown field "nmae"`,
		`{"max":1}`:                     `missing required config key "name"`,
		`{}`:                            `missing required config key "name"`,
		`null`:                          `missing required config key "name"`,
		`[1]`:                           `invalid config: array where a table (JSON object) belongs`,
		`{"name":"a",}`:                 `invalid config: not valid JSON`,
		`{"name":"a","big":99999999999999999999}`: `invalid config: key "big": expected an integer, got number 99999999999999999999`,
	} {
		err := initPlugin([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
	if err := initPlugin(nil); err != nil {
		t.Errorf("no config at all: %v (the required keys are the host's to check)", err)
	}
}

// TestDescribe: the self-description is valid JSON with the types and
// defaults derived from Into.
func TestDescribe(t *testing.T) {
	c := testConfig{Name: "n\"1", On: true, Max: 3, Ratio: 1e-7, Fields: []string{"a"}, Table: map[string]string{"b": "2", "a": "1"}}
	ps := testParams(&c)
	ps = append(ps, Param{Name: "custom", Default: map[string]any{"x": []any{1.5, "s", nil, true}}},
		Param{Name: "unrenderable", Default: struct{}{}})
	registerForTest(t, Plugin{Name: "t\"", Version: "1", Summary: "sum", Params: ps})
	var d struct {
		Name, Version, Summary, SDK string
		Parameters                  []map[string]any
	}
	raw := describeJSON()
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("describe: %v\n%s", err, raw)
	}
	if d.Name != `t"` || d.Version != "1" || d.Summary != "sum" || d.SDK != "go" || len(d.Parameters) != 10 {
		t.Fatalf("describe = %s", raw)
	}
	want := []string{
		`{"doc":"a name","name":"name","required":true,"type":"string","default":"n\"1"}`,
		`{"name":"on","type":"bool","default":true}`,
		`{"name":"max","type":"int","default":3}`,
		`{"name":"big","type":"int"}`,
		`{"name":"ratio","type":"float","default":1e-7}`,
		`{"name":"fields","type":"list of string","default":["a"]}`,
		`{"name":"table","type":"table","default":{"a":"1","b":"2"}}`,
		`{"name":"raw","type":"any"}`,
		`{"name":"custom","default":{"x":[1.5,"s",null,true]}}`,
		`{"name":"unrenderable"}`,
	}
	for i, w := range want {
		var wm map[string]any
		json.Unmarshal([]byte(w), &wm)
		if !reflect.DeepEqual(d.Parameters[i], wm) {
			t.Errorf("parameter %d = %v, want %s", i, d.Parameters[i], w)
		}
	}
	if !strings.Contains(string(raw), `"default":1e-7`) {
		t.Errorf("a small float is not written as encoding/json writes it: %s", raw)
	}
}

// TestRegisterMisuse: what Register cannot work with panics with what to
// change, at the plugin's first `go test`.
func TestRegisterMisuse(t *testing.T) {
	var s struct{ A string }
	var u uint16
	for name, tc := range map[string]struct {
		p    Plugin
		want string
	}{
		"struct config":    {Plugin{Config: &s}, "sdk/structconfig"},
		"both":             {Plugin{Config: &s, Params: []Param{{Name: "a", Into: &s.A}}}, "set one of them"},
		"unsupported into": {Plugin{Params: []Param{{Name: "u", Into: &u}}}, `Param "u": Into must be`},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if v := recover(); v == nil || !strings.Contains(v.(string), tc.want) {
					t.Errorf("panic %v, want one mentioning %s", v, tc.want)
				}
			}()
			registerForTest(t, tc.p)
		})
	}
}

// TestNoConfig: a plugin that declares no keys takes an empty config and
// rejects any other.
func TestNoConfig(t *testing.T) {
	registerForTest(t, Plugin{Params: []Param{{Name: "documented only"}}})
	for _, in := range []string{"", " ", "{}", "{ }", "null"} {
		if err := initPlugin([]byte(in)); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	if err := initPlugin([]byte(`{"a":1}`)); err == nil || err.Error() != "this module takes no config" {
		t.Errorf("got %v", err)
	}
}

type decoderFunc func([]byte) error

func (f decoderFunc) DecodeConfig(b []byte) error { return f(b) }
func (decoderFunc) ConfigParams() []Param         { return []Param{{Name: "own", Type: "string"}} }

// TestConfigDecoder: a Config that is a ConfigDecoder gets the config and
// lists the parameters.
func TestConfigDecoder(t *testing.T) {
	var got string
	registerForTest(t, Plugin{Config: decoderFunc(func(b []byte) error {
		got = string(b)
		if got == `{"own":"no"}` {
			return errors.New("no")
		}
		return nil
	})})
	if err := initPlugin([]byte(`{"own":"yes"}`)); err != nil || got != `{"own":"yes"}` {
		t.Errorf("got %q, %v", got, err)
	}
	if err := initPlugin([]byte(`{"own":"no"}`)); err == nil {
		t.Error("the decoder's error was lost")
	}
	if d := string(describeJSON()); !strings.Contains(d, `"parameters":[{"name":"own","type":"string"}]`) {
		t.Errorf("describe = %s", d)
	}
}

// TestPanicText: recovered values print as fmt's %v would.
func TestPanicText(t *testing.T) {
	for v, want := range map[any]string{"boom": "boom", 42: "42", int64(-1): "-1", 1.5: "1.5", true: "true",
		errors.New("e"): "e", struct{}{}: "(a value the SDK does not print)"} {
		if got := panicText(v); got != want {
			t.Errorf("panicText(%#v) = %q, want %q", v, got, want)
		}
	}
}
