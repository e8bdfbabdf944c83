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

const regions = `"table":{"eu-west-1":{"site":"Dublin","zone":1},"eu-central-1":{"site":"Frankfurt","tags":["a", "b"]},"7":{"lucky":true}}`

func TestEnrich(t *testing.T) {
	for _, tc := range []struct {
		name, config, in string
		kind, want       string
	}{
		{"into the key's object", `{"key":"data.region",` + regions + `}`,
			`{"id":"a","data":{"region":"eu-west-1","amount":5}}`, "emit",
			`{"id":"a","data":{"region":"eu-west-1","amount":5,"site":"Dublin","zone":1}}`},
		{"compacted values", `{"key":"data.region",` + regions + `}`,
			`{"data":{"region":"eu-central-1"}}`, "emit",
			`{"data":{"region":"eu-central-1","site":"Frankfurt","tags":["a","b"]}}`},
		{"numeric key", `{"key":"data.n",` + regions + `}`,
			`{"data":{"n":7}}`, "emit", `{"data":{"n":7,"lucky":true}}`},
		{"other target", `{"key":"data.region","target":"meta",` + regions + `}`,
			`{"data":{"region":"eu-west-1"},"meta":{ }}`, "emit",
			`{"data":{"region":"eu-west-1"},"meta":{ "site":"Dublin","zone":1}}`},
		{"root target", `{"key":"region",` + regions + `}`,
			`{"region":"eu-west-1"}`, "emit", `{"region":"eu-west-1","site":"Dublin","zone":1}`},
		{"overwrite", `{"key":"data.region",` + regions + `}`,
			`{"data":{"zone":9,"region":"eu-west-1"}}`, "emit",
			`{"data":{"zone":1,"region":"eu-west-1","site":"Dublin"}}`},
		{"keep existing", `{"key":"data.region","overwrite":false,` + regions + `}`,
			`{"data":{"zone":9,"region":"eu-west-1"}}`, "emit",
			`{"data":{"zone":9,"region":"eu-west-1","site":"Dublin"}}`},
		{"keep all existing", `{"key":"n","overwrite":false,` + regions + `}`,
			`{"n":7,"lucky":false}`, "pass", ""},
		{"missing passes", `{"key":"data.region",` + regions + `}`,
			`{"data":{"region":"us-east-1"}}`, "pass", ""},
		{"missing drops", `{"key":"data.region","on_missing":"drop",` + regions + `}`,
			`{"data":{}}`, "drop", ""},
		{"missing fails", `{"key":"data.region","on_missing":"fail",` + regions + `}`,
			`{"data":{"region":"x"}}`, "fail", ""},
		{"default", `{"key":"data.region","default":{"site":"elsewhere"},` + regions + `}`,
			`{"data":{"region":"us-east-1"}}`, "emit", `{"data":{"region":"us-east-1","site":"elsewhere"}}`},
		{"escaped key", `{"key":"data.region",` + regions + `}`,
			`{"data":{"region":"eu-west-\u0031"}}`, "emit", `{"data":{"region":"eu-west-\u0031","site":"Dublin","zone":1}}`},
		{"target not an object", `{"key":"data.region","target":"data.region",` + regions + `}`,
			`{"data":{"region":"eu-west-1"}}`, "fail", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := start(t, tc.config)
			res := h.Process(sdktest.Event(tc.in))
			if res[0].Kind != tc.kind {
				t.Fatalf("kind %s (%s), want %s", res[0].Kind, res[0].Message, tc.kind)
			}
			if tc.kind == "emit" {
				if got := string(res[0].Outputs[0].Payload); got != tc.want {
					t.Errorf("\n got %s\nwant %s", got, tc.want)
				}
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{"table":{"a":{"b":1}}}`, `missing required config key "key"`},
		{`{"key":"a"}`, `missing required config key "table"`},
		{`{"key":"a","table":{}}`, "table: give at least one key"},
		{`{"key":"a","table":{"x":{"b":1}},"on_missing":"keep"}`, `on_missing: "keep" is not one of pass, drop, fail`},
		{`{"key":"a","table":{"x":1}}`, "invalid config"},
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

const readmeConfig = `{"key":"a","table":{"x":{"y":1}}}`
