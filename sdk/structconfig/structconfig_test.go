//go:build !wasip1

package structconfig_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/sdktest"
	"github.com/sluicehq/sluice/sdk/structconfig"
)

type Inner struct {
	Max  int    `json:"max"`
	Name string `json:"name,omitempty"`
}

type Embedded struct {
	Shared string `json:"shared" doc:"promoted from an embedded struct"`
}

type config struct {
	Embedded
	Field   string            `json:"field" doc:"a field" required:"true"`
	Limit   int               `json:"limit"`
	Small   int8              `json:"small"`
	Count   uint32            `json:"count"`
	Ratio   float32           `json:"ratio"`
	On      *bool             `json:"on"`
	List    []string          `json:"list"`
	Pair    [2]int            `json:"pair"`
	Limits  Inner             `json:"limits"`
	Ptr     *Inner            `json:"ptr"`
	Table   map[string]Inner  `json:"table"`
	ByID    map[int]string    `json:"by_id"`
	Raw     json.RawMessage   `json:"raw"`
	Bytes   []byte            `json:"bytes"`
	Any     any               `json:"any"`
	When    time.Time         `json:"when"`
	Wait    time.Duration     `json:"wait"`
	Skipped string            `json:"-"`
	NoTag   string            //
	Fields  map[string]string `json:"fields"`
	hidden  string
}

func decode(t *testing.T, c *config, in string) error {
	t.Helper()
	d, err := structconfig.Of(c)
	if err != nil {
		t.Fatal(err)
	}
	return d.DecodeConfig([]byte(in))
}

// TestDecode: what encoding/json would decode, structconfig decodes the
// same way.
func TestDecode(t *testing.T) {
	in := `{"shared":"s","field":"f\u00e9","limit":-3,"small":-128,"count":7,"ratio":0.5,"on":false,
		"list":["a","b"],"pair":[1,2,3],"limits":{"max":9},"ptr":{"name":"p"},"table":{"x":{"max":1}},
		"by_id":{"12":"twelve"},"raw":{"a": [1, 2]},"bytes":"aGk=","any":{"n":[1,"x",null,true]},
		"when":"2026-01-02T03:04:05Z","wait":1000,"NoTag":"nt","FIELDS":{"k":"v"}}`
	var got, want config
	got.Limits.Name = "kept"
	want.Limits.Name = "kept"
	if err := decode(t, &got, in); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&want); err != nil {
		t.Fatal(err)
	}
	if got.hidden != "" {
		t.Errorf("the unexported field was set: %q", got.hidden)
	}
	// json.RawMessage keeps the bytes as they were in both.
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%+v\nencoding/json\n%+v", got, want)
	}
}

func TestErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"limits":{"max":"many"}}`:    `invalid config: key "limits.max": expected an integer, got string`,
		`{"field":5}`:                  `invalid config: key "field": expected a string, got number`,
		`{"fild":"x"}`:                 `invalid config: unknown field "fild"`,
		`{"limits":{"mx":1}}`:          `invalid config: unknown field "limits.mx"`,
		`{"list":["a",1]}`:             `invalid config: key "list[1]": expected a string, got number`,
		`{"small":300}`:                `invalid config: key "small": expected an integer, got number 300`,
		`{"count":-1}`:                 `invalid config: key "count": expected an integer, got number -1`,
		`{"table":{"x":{"max":true}}}`: `invalid config: key "table.x.max": expected an integer, got bool`,
		`{"by_id":{"x":"y"}}`:          `invalid config: key "by_id.x": expected an integer key`,
		`{"when":"yesterday"}`:         `invalid config: key "when": parsing time`,
		`{"bytes":"!!"}`:               `invalid config: key "bytes": expected base64 text`,
		`{"limit":1}`:                  `missing required config key "field"`,
		`{"hidden":"x"}`:               `invalid config: unknown field "hidden"`,
		`[1]`:                          `invalid config: expected a table, got array`,
	} {
		var c config
		if err := decode(t, &c, in); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}

func TestParams(t *testing.T) {
	on := true
	c := config{Field: "f", Limit: 3, Ratio: 0.1, On: &on, List: []string{"a"}, Limits: Inner{Max: 2},
		Raw: json.RawMessage(`{"r": 1}`), Wait: time.Second, Embedded: Embedded{Shared: "x"}}
	d, err := structconfig.Of(&c)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]sdk.Param{}
	var names []string
	for _, p := range d.ConfigParams() {
		got[p.Name] = p
		names = append(names, p.Name)
	}
	if want := "shared field limit small count ratio on list pair limits ptr table by_id raw bytes any when wait NoTag fields"; strings.Join(names, " ") != want {
		t.Errorf("names %s\nwant  %s", strings.Join(names, " "), want)
	}
	for name, want := range map[string]sdk.Param{
		"field":  {Name: "field", Type: "string", Doc: "a field", Required: true, Default: "f"},
		"shared": {Name: "shared", Type: "string", Doc: "promoted from an embedded struct", Default: "x"},
		"limit":  {Name: "limit", Type: "int", Default: int64(3)},
		"on":     {Name: "on", Type: "bool", Default: true},
		"list":   {Name: "list", Type: "list of string", Default: []any{"a"}},
		"pair":   {Name: "pair", Type: "list of int"},
		"limits": {Name: "limits", Type: "table", Default: map[string]any{"max": int64(2), "name": ""}},
		"raw":    {Name: "raw", Type: "any"},
		"any":    {Name: "any", Type: "any"},
		"by_id":  {Name: "by_id", Type: "table"},
		"wait":   {Name: "wait", Type: "int", Default: int64(time.Second)},
	} {
		p := got[name]
		if name == "raw" {
			p.Default = nil // checked in the description below
		}
		if !reflect.DeepEqual(p, want) {
			t.Errorf("%s: %#v\nwant %#v", name, p, want)
		}
	}
}

type pluginConfig struct {
	Field string  `json:"field" doc:"the field" required:"true"`
	Ratio float32 `json:"ratio"`
	Raw   json.RawMessage
}

func defaults() pluginConfig { return pluginConfig{Ratio: 0.1, Raw: json.RawMessage(`[1, 2]`)} }

var cfg pluginConfig

// TestRegister: a plugin that imports structconfig sets Config to its
// struct as before the SDK left reflection out.
func TestRegister(t *testing.T) {
	cfg = defaults()
	sdk.ResetForTest()
	t.Cleanup(sdk.ResetForTest)
	sdk.Register(sdk.Plugin{Name: "s", Version: "1", Config: &cfg,
		Handler: sdk.FilterFunc(func(*sdk.Record) (bool, error) { return cfg.Field == "keep", nil })})
	h := sdktest.New(t, `{"field":"keep"}`)
	if res := h.Process(sdktest.Event(`{}`)); res[0].Kind != "pass" {
		t.Errorf("%+v", res)
	}
	if err := h.Init(`{"field":1}`); err == nil || !strings.Contains(err.Error(), `key "field"`) {
		t.Errorf("got %v", err)
	}
	raw, _ := json.Marshal(h.Describe()["parameters"])
	if want := `[{"doc":"the field","name":"field","required":true,"type":"string"},{"default":0.1,"name":"ratio","type":"float"},{"default":[1,2],"name":"Raw","type":"any"}]`; string(raw) != want {
		t.Errorf("parameters %s\nwant       %s", raw, want)
	}
}

func TestOfRejectsNonPointers(t *testing.T) {
	if _, err := structconfig.Of(defaults()); err == nil || !strings.Contains(err.Error(), "pointer") {
		t.Errorf("got %v", err)
	}
}
