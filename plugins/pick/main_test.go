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

func TestPick(t *testing.T) {
	h := start(t, `{"fields":{"order":"data.order_id","amount":"$.data.amount","tier":"data.customer.tier","first":"data.items.0","gone":"data.nope"}}`)
	res := h.Process(sdktest.Event(`{"id":"1","data":{"order_id":"o-1","amount":12.5,"customer":{"tier":"gold"},"items":[{"a":1},2]}}`))
	if got := string(res[0].Outputs[0].Payload); got != `{"amount":12.5,"first":{"a":1},"order":"o-1","tier":"gold"}` {
		t.Errorf("got %s", got)
	}
	h = start(t, `{"fields":{"b":"x","a":"y"},"missing":"null"}`)
	res = h.Process(sdktest.Event(`{"x":true}`), sdktest.Event(`{}`))
	if got := string(res[0].Outputs[0].Payload) + " " + string(res[1].Outputs[0].Payload); got != `{"a":null,"b":true} {"a":null,"b":null}` {
		t.Errorf("got %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{}`, `missing required config key "fields"`},
		{`{"fields":{}}`, "fields: name at least one"},
		{`{"fields":{"a":"b..c"}}`, "fields.a: path"},
		{`{"fields":{"a":"b"},"missing":"skip"}`, `missing: "skip" is not one of omit, null`},
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

const readmeConfig = `{"fields":{"a":"b"}}`
