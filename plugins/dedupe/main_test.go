package main

import (
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/sdk/sdktest"
)

func start(t *testing.T, config string) *sdktest.Host {
	t.Helper()
	cfg = defaults()
	return sdktest.New(t, config)
}

func at(offset int64, doc string) sdktest.Input {
	return sdktest.Input{Payload: []byte(doc), Stream: "orders", Offset: offset}
}

func kinds(res []sdktest.Outcome) string {
	var s []string
	for _, o := range res {
		s = append(s, o.Kind)
	}
	return strings.Join(s, " ")
}

func TestWindow(t *testing.T) {
	h := start(t, `{"key":"data.id","window":"10m"}`)
	res := h.Process(
		at(0, `{"data":{"id":"a"}}`),
		at(1, `{"data":{"id":"b"}}`),
		at(2, `{"data":{"id":"a"}}`),
		at(3, `{"data":{"id":7}}`),
		at(4, `{"data":{"id":"7"}}`),
		at(5, `{"data":{}}`),
	)
	// "7" (string) and 7 (number) share the text 7.
	if got := kinds(res); got != "pass pass drop pass drop pass" {
		t.Errorf("outcomes %s", got)
	}
	h.Advance(9 * time.Minute)
	if got := kinds(h.Process(at(6, `{"data":{"id":"a"}}`))); got != "drop" {
		t.Errorf("within the window: %s", got)
	}
	h.Advance(2 * time.Minute)
	if got := kinds(h.Process(at(7, `{"data":{"id":"a"}}`))); got != "pass" {
		t.Errorf("after the window: %s", got)
	}
	if h.Counters["duplicates_dropped"] != 3 {
		t.Errorf("duplicates_dropped = %v", h.Counters["duplicates_dropped"])
	}
}

// TestReplayPasses: the host re-runs records to isolate a failing one, and
// sources redeliver after a crash; the same record must pass again rather
// than be dropped as a duplicate of itself.
func TestReplayPasses(t *testing.T) {
	h := start(t, `{"key":"id","window":"1h"}`)
	batch := []sdktest.Input{at(10, `{"id":"x"}`), at(11, `{"id":"x"}`)}
	if got := kinds(h.Process(batch...)); got != "pass drop" {
		t.Fatalf("first run: %s", got)
	}
	if got := kinds(h.Process(batch...)); got != "pass drop" {
		t.Errorf("replay: %s", got)
	}
	// A different record with the same key at the same offset of another
	// stream is a duplicate.
	other := sdktest.Input{Payload: []byte(`{"id":"x"}`), Stream: "other", Offset: 10}
	if got := kinds(h.Process(other)); got != "drop" {
		t.Errorf("other stream: %s", got)
	}
}

func TestRecordKeyAndMissing(t *testing.T) {
	h := start(t, `{"record_key":true,"window":"1m","on_missing":"fail"}`)
	res := h.Process(
		sdktest.Input{Payload: []byte(`{}`), Key: []byte("k1"), Offset: 1},
		sdktest.Input{Payload: []byte(`{}`), Key: []byte("k1"), Offset: 2},
		sdktest.Input{Payload: []byte(`{}`), Offset: 3},
	)
	if got := kinds(res); got != "pass drop fail" {
		t.Errorf("outcomes %s", got)
	}
	long := strings.Repeat("k", 2000)
	h2 := start(t, `{"key":"id","window":"1m","on_missing":"drop"}`)
	res = h2.Process(at(1, `{"id":"`+long+`"}`), at(2, `{"id":"`+long+`"}`), at(3, `{}`))
	if got := kinds(res); got != "pass drop drop" {
		t.Errorf("long keys and drop: %s", got)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ config, want string }{
		{`{"key":"id"}`, `missing required config key "window"`},
		{`{"window":"1m"}`, "key: name the field"},
		{`{"key":"id","record_key":true,"window":"1m"}`, "set one, not both"},
		{`{"key":"id","window":"10 minutes"}`, `window: "10 minutes" is not a duration`},
		{`{"key":"id","window":"1m","on_missing":"x"}`, `on_missing: "x" is not one of pass, drop, fail`},
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

const readmeConfig = `{"key":"a","window":"1m"}`
