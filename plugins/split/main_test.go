package main

import (
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Host {
	t.Helper()
	cfg = defaults()
	return sdktest.New(t, config)
}

func payloads(o sdktest.Outcome) []string {
	var s []string
	for _, out := range o.Outputs {
		s = append(s, string(out.Payload))
	}
	return s
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		name, config, in string
		kind             string
		want             []string
	}{
		{"in place", `{"field":"data.items"}`, `{"id":"a","data":{"items":[{"sku":1},{"sku":2}],"n":2}}`,
			"emit", []string{`{"id":"a","data":{"items":{"sku":1},"n":2}}`, `{"id":"a","data":{"items":{"sku":2},"n":2}}`}},
		{"as and index", `{"field":"data.items","as":"data.item","index_field":"data.i"}`, `{"data":{"items":["x","y"],"n":2}}`,
			"emit", []string{`{"data":{"n":2,"item":"x","i":0}}`, `{"data":{"n":2,"item":"y","i":1}}`}},
		{"root array", `{"field":"items","as":"item"}`, `{"items":[1,2,3]}`,
			"emit", []string{`{"item":1}`, `{"item":2}`, `{"item":3}`}},
		{"empty drops", `{"field":"data.items"}`, `{"data":{"items":[]}}`, "drop", nil},
		{"empty passes", `{"field":"data.items","on_empty":"pass"}`, `{"data":{"items":[]}}`, "pass", nil},
		{"missing passes", `{"field":"data.items"}`, `{"data":{}}`, "pass", nil},
		{"not an array passes", `{"field":"data.items"}`, `{"data":{"items":"x"}}`, "pass", nil},
		{"missing drops", `{"field":"data.items","on_missing":"drop"}`, `{"data":{}}`, "drop", nil},
		{"missing fails", `{"field":"data.items","on_missing":"fail"}`, `{"data":{}}`, "fail", nil},
		{"too many", `{"field":"a","max_elements":2}`, `{"a":[1,2,3]}`, "fail", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.config)
			res := h.Process(sdktest.Event(tc.in))
			if res[0].Kind != tc.kind {
				t.Fatalf("kind %s (%s), want %s", res[0].Kind, res[0].Message, tc.kind)
			}
			if got := payloads(res[0]); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("outputs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestBatch checks that the outputs of several records in one batch keep
// their own bytes (the SDK's scratch arena is shared by the batch).
func TestBatch(t *testing.T) {
	h := start(t, `{"field":"a"}`)
	res := h.Process(sdktest.Event(`{"a":[1,2]}`), sdktest.Event(`{"b":0}`), sdktest.Event(`{"a":[3]}`))
	got := strings.Join(append(append(payloads(res[0]), res[1].Kind), payloads(res[2])...), " ")
	if got != `{"a":1} {"a":2} pass {"a":3}` {
		t.Errorf("got %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{}`, `missing required config key "field"`},
		{`{"field":""}`, "field: name a field"},
		{`{"field":"a","on_empty":"keep"}`, `on_empty: "keep" is not one of drop, pass`},
		{`{"field":"a","on_missing":"x"}`, `on_missing: "x" is not one of pass, drop, fail`},
		{`{"field":"a","max_elements":0}`, "max_elements: 0 must be at least 1"},
		{`{"field":"a","as":"b..c"}`, "as: path"},
	} {
		t.Run(tc.config, func(t *testing.T) {
			cfg = defaults()
			h := sdktest.Start(t)
			if err := h.Init(tc.config); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Init(%s) = %v, want %q", tc.config, err, tc.want)
			}
		})
	}
}

func TestREADME(t *testing.T) {
	h := start(t, readmeConfig)
	plugintest.CheckREADME(t, plugintest.ParamNames(h.Describe()))
}

const readmeConfig = `{"field":"a"}`
