//go:build !wasip1

package sdktest_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
	"github.com/sluicehq/sluice/sdk/sdktest"
)

var cfg struct {
	Field string
	Limit int
}

func init() {
	cfg.Limit = 3
	sdk.Register(sdk.Plugin{
		Name: "test", Version: "1.2.3", Summary: "exercises the SDK",
		Params: []sdk.Param{
			{Name: "field", Into: &cfg.Field, Doc: "field of data to upper-case", Required: true},
			{Name: "limit", Into: &cfg.Limit, Doc: "records to count"},
		},
		Init: func() error {
			if cfg.Field == "bad" {
				return errors.New("field must not be bad")
			}
			return nil
		},
		Handler: sdk.FlatMapFunc(func(r *sdk.Record, out *sdk.Output) error {
			switch op, _ := jsonfield.GetString(r.Payload(), "op"); string(op) {
			case "upper":
				v, _ := jsonfield.GetString(r.Payload(), "data", cfg.Field)
				p, err := jsonfield.SetString(out.Scratch(), r.Payload(), []byte(strings.ToUpper(string(v))), "data", cfg.Field)
				if err != nil {
					return err
				}
				out.Emit(p)
			case "twice":
				out.Pass()
				out.Emit([]byte(`"copy"`))
			case "panic":
				out.Emit([]byte("discarded"))
				var p *int
				_ = *p
			case "retry":
				return sdk.Retry(errors.New("later"))
			case "count":
				n := 0
				if v, ok := sdk.State.Get([]byte("n")); ok {
					n, _ = strconv.Atoi(string(v))
				}
				sdk.State.Put([]byte("n"), []byte(strconv.Itoa(n+1)), time.Minute)
				sdk.CounterAdd("seen", 1)
				sdk.Infof("count %d", n+1)
				out.Pass()
			case "meta":
				k, _ := r.Key()
				h, _ := r.HeaderValue("x")
				ts, _ := r.Time()
				out.EmitRecord(sdk.Out{Payload: []byte(string(k) + string(h) + ts.UTC().Format(time.RFC3339) + string(r.Stream())),
					SetKey: true, Key: []byte("nk")})
			}
			return nil
		}),
	})
}

func TestHarness(t *testing.T) {
	h := sdktest.New(t, `{"field":"name"}`)
	res := h.Process(
		sdktest.Event(`{"op":"upper","data":{"name":"ada"}}`),
		sdktest.Event(`{"op":"twice"}`),
		sdktest.Event(`{"op":"panic"}`),
		sdktest.Event(`{"op":"retry"}`),
		sdktest.Event(`{"op":"none"}`),
		sdktest.Input{Payload: []byte(`{"op":"meta"}`), Key: []byte("k"), Stream: "s",
			Headers: []sdk.Header{{Key: []byte("x"), Value: []byte("y")}}, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	)
	check := func(i int, kind string, payloads ...string) {
		t.Helper()
		if res[i].Kind != kind {
			t.Fatalf("record %d: kind %s (%s), want %s", i, res[i].Kind, res[i].Message, kind)
		}
		var got []string
		for _, o := range res[i].Outputs {
			got = append(got, string(o.Payload))
		}
		if strings.Join(got, "|") != strings.Join(payloads, "|") {
			t.Errorf("record %d: outputs %q, want %q", i, got, payloads)
		}
	}
	check(0, "emit", `{"op":"upper","data":{"name":"ADA"}}`)
	check(1, "emit", `"copy"`, `{"op":"twice"}`)
	check(2, "fail")
	if !strings.Contains(res[2].Message, "panic in handler: runtime error: invalid memory address") || res[2].Code != sdk.CodePanic {
		t.Errorf("panic outcome: %+v", res[2])
	}
	check(3, "retry")
	check(4, "drop")
	check(5, "emit", "ky2026-01-02T03:04:05Zs")
	if o := res[5].Outputs[0]; !o.SetKey || string(o.Key) != "nk" {
		t.Errorf("meta key: %+v", o)
	}
	// The instance is healthy after the panic.
	if res := h.Process(sdktest.Event(`{"op":"twice"}`)); res[0].Kind != "emit" {
		t.Errorf("after panic: %+v", res[0])
	}
}

func TestStateLogsMetrics(t *testing.T) {
	h := sdktest.New(t, `{"field":"x"}`)
	h.Process(sdktest.Event(`{"op":"count"}`), sdktest.Event(`{"op":"count"}`))
	if v, _ := h.State("n"); string(v) != "2" {
		t.Errorf("state n = %q", v)
	}
	if h.Counters["seen"] != 2 || len(h.Logs) != 2 || h.Logs[1].Msg != "count 2" {
		t.Errorf("counters %v logs %v", h.Counters, h.Logs)
	}
}

func TestStateTTLAndAdd(t *testing.T) {
	h := sdktest.New(t, `{"field":"x"}`)
	if err := sdk.State.Put([]byte("p"), []byte("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if ok, err := sdk.State.Add([]byte("a"), []byte("first"), time.Minute); !ok || err != nil {
		t.Fatalf("add = %v, %v", ok, err)
	}
	if ok, _ := sdk.State.Add([]byte("a"), []byte("second"), time.Minute); ok {
		t.Fatal("add over a live entry succeeded")
	}
	if v, _ := sdk.State.Get([]byte("a")); string(v) != "first" {
		t.Errorf("a = %q", v)
	}
	h.Advance(time.Minute)
	if _, ok := h.State("p"); ok {
		t.Error("p did not expire")
	}
	if ok, _ := sdk.State.Add([]byte("a"), []byte("third"), 0); !ok {
		t.Error("add over an expired entry failed")
	}
	if _, err := sdk.State.Add(make([]byte, 2000), nil, 0); err != sdk.ErrStateTooLarge {
		t.Errorf("long key: %v", err)
	}
}

func TestInitAndDescribe(t *testing.T) {
	h := sdktest.Start(t)
	for _, tc := range []struct{ config, want string }{
		{`{"field":"bad"}`, "field must not be bad"},
		{`{"feld":"x"}`, `invalid config: unknown field "feld"`},
		{`{"limit":2}`, `missing required config key "field"`},
		{`{"field":1}`, "invalid config"},
	} {
		if err := h.Init(tc.config); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Init(%s) = %v, want %q", tc.config, err, tc.want)
		}
	}
	d := h.Describe()
	if d["name"] != "test" || d["version"] != "1.2.3" || d["sdk"] != "go" {
		t.Errorf("describe = %v", d)
	}
	params := d["parameters"].([]any)
	if len(params) != 2 {
		t.Fatalf("parameters = %v", params)
	}
	p0 := params[0].(map[string]any)
	if p0["name"] != "field" || p0["required"] != true || p0["type"] != "string" || p0["doc"] == "" {
		t.Errorf("parameter 0 = %v", p0)
	}
	if p1 := params[1].(map[string]any); p1["default"] != float64(3) {
		t.Errorf("parameter 1 = %v", p1)
	}
}
