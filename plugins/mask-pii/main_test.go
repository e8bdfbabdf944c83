package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/sdk/sdktest"
)

// start resets the config to its defaults (plugins keep it in a global)
// and initializes the plugin natively.
func start(t *testing.T, config string) *sdktest.Host {
	t.Helper()
	cfg = defaults()
	return sdktest.New(t, config)
}

func TestMaskFields(t *testing.T) {
	h := start(t, `{"fields":["data.email","data.phone","data.card","data.note","data.contacts","data.num"]}`)
	res := h.Process(
		sdktest.Event(`{"data":{"email":"ada.lovelace@example.com","phone":"+44 20 7946 0958","card":"4111 1111 1111 1111","id":7}}`),
		sdktest.Event(`{"data":{"note":"call (415) 555-0132 or mail bob@corp.io, order of 2026-11-25","num":4155550132}}`),
		sdktest.Event(`{"data":{"contacts":[{"kind":"mail","value":"x@y.org"},"5555555555554444"]}}`),
		sdktest.Event(`{"data":{"email":"not an address","note":"order 1234 of 2026-11-25 09:00"}}`),
		sdktest.Event(`{"data":{"other":"ada@example.com"}}`),
	)
	want := []struct{ kind, payload string }{
		{"emit", `{"data":{"email":"a***********@example.com","phone":"+** ** **** 0958","card":"**** **** **** 1111","id":7}}`},
		{"emit", `{"data":{"note":"call (***) ***-0132 or mail b**@corp.io, order of 2026-11-25","num":"******0132"}}`},
		{"emit", `{"data":{"contacts":[{"kind":"mail","value":"*@y.org"},"************4444"]}}`},
		{"pass", ""},
		{"pass", ""},
	}
	for i, w := range want {
		if res[i].Kind != w.kind {
			t.Errorf("record %d: %s (%s), want %s", i, res[i].Kind, res[i].Message, w.kind)
			continue
		}
		if w.kind == "emit" {
			if got := string(res[i].Outputs[0].Payload); got != w.payload {
				t.Errorf("record %d:\n got %s\nwant %s", i, got, w.payload)
			}
		}
	}
	if h.Counters["masked_values"] != 8 {
		t.Errorf("masked_values = %v, want 8", h.Counters["masked_values"])
	}
}

func TestOptions(t *testing.T) {
	h := start(t, `{"fields":["data.v"],"types":["card"],"keep_last":2,"mask_char":"#"}`)
	res := h.Process(
		sdktest.Event(`{"data":{"v":"card 4111-1111-1111-1111, phone 415 555 0132, a@b.co"}}`),
		sdktest.Event(`{"data":{"v":"4111 1111 1111 1112"}}`), // fails the Luhn check
	)
	if got := string(res[0].Outputs[0].Payload); got != `{"data":{"v":"card ####-####-####-##11, phone 415 555 0132, a@b.co"}}` {
		t.Errorf("got %s", got)
	}
	if res[1].Kind != "pass" {
		t.Errorf("a number failing the Luhn check was masked: %+v", res[1])
	}
}

func TestEscapesAndKeysAreLeftAlone(t *testing.T) {
	h := start(t, `{"fields":["data"]}`)
	res := h.Process(sdktest.Event(`{"data":{"ada@example.com":"x\n5551234567\u0041","t":"\"bob@x.io\""}}`))
	want := `{"data":{"ada@example.com":"x\n******4567\u0041","t":"\"b**@x.io\""}}`
	if got := string(res[0].Outputs[0].Payload); got != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{}`, `missing required config key "fields"`},
		{`{"fields":[]}`, "fields: list at least one field"},
		{`{"fields":["$"]}`, "fields: name a field"},
		{`{"fields":["a"],"types":["ssn"]}`, `types: "ssn" is not one of email, phone, card`},
		{`{"fields":["a"],"keep_last":12}`, "keep_last: 12 is out of range"},
		{`{"fields":["a"],"mask_char":"**"}`, "mask_char"},
		{`{"field":["a"]}`, `unknown field "field"`},
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

func TestDescribe(t *testing.T) {
	h := start(t, `{"fields":["a"]}`)
	d := h.Describe()
	if d["name"] != "mask-pii" || len(d["parameters"].([]any)) != 4 {
		t.Errorf("describe = %v", d)
	}
}

func FuzzMask(f *testing.F) {
	f.Add(`call +1 (415) 555-0132, mail ada@example.com, card 4111 1111 1111 1111`)
	f.Add(`\u00e9@x.y 12345678901234567890`)
	m, _ := NewMasker([]string{"email", "phone", "card"}, 4, "*")
	f.Fuzz(func(t *testing.T, s string) {
		q := []byte(`"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`)
		before := string(q)
		m.MaskJSON(q)
		if len(q) != len(before) {
			t.Fatalf("length changed")
		}
		for i := range q {
			if q[i] != before[i] && (q[i] != '*' || !isLocal(before[i])) {
				t.Fatalf("byte %d: %q -> %q (only letters, digits and . _ %% + - may become the mask)", i, before[i], q[i])
			}
		}
		if json.Valid([]byte(before)) && !json.Valid(q) {
			t.Fatalf("masked %s is not valid JSON", q)
		}
	})
}

func TestREADME(t *testing.T) {
	h := start(t, readmeConfig)
	plugintest.CheckREADME(t, plugintest.ParamNames(h.Describe()))
}

const readmeConfig = `{"fields":["a"]}`
