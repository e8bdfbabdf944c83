// Command hostile misbehaves on request: the payload's "do" field says
// what to do with the record. It exercises every path of the host.
package main

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
	// Config is a struct decoded by its tags: the hostile guest also
	// covers the reflection-based decoder in WASM.
	_ "github.com/sluicehq/sluice/sdk/structconfig"
)

var cfg struct {
	Reject bool   `json:"reject" doc:"reject the config at init"`
	Tag    string `json:"tag" doc:"a value to log at init"`
}

var sink [][]byte

func init() {
	sdk.Register(sdk.Plugin{
		Name: "hostile", Version: "0.0.1", Summary: "misbehaves on request",
		Config: &cfg,
		Init: func() error {
			if cfg.Reject {
				return errors.New("reject is set")
			}
			if cfg.Tag == "reject-silently" {
				return errors.New("") // a rejection without a message
			}
			if cfg.Tag == "reject-at-length" {
				return errors.New("too long: " + strings.Repeat("\u00e9", 5000))
			}
			sdk.Infof("hostile started with tag %q", cfg.Tag)
			return nil
		},
		Handler: sdk.FlatMapFunc(handle),
	})
}

func handle(r *sdk.Record, out *sdk.Output) error {
	do, _ := jsonfield.GetString(r.Payload(), "do")
	switch string(do) {
	case "panic":
		var m map[string]int
		m["x"] = 1
	case "loop":
		for {
		}
	case "bomb":
		for {
			sink = append(sink, make([]byte, 1<<20))
		}
	case "exit":
		os.Exit(7)
	case "giant":
		big := make([]byte, 6<<20)
		for i := range big {
			big[i] = 'x'
		}
		out.Emit(big)
		return nil
	case "file":
		_, err := os.ReadFile("/etc/passwd")
		return report(err)
	case "env":
		out.Emit([]byte(strconv.Itoa(len(os.Environ()))))
		return nil
	case "fail":
		return sdk.Fail(42, errors.New("told to fail"))
	case "retry":
		return sdk.Retry(errors.New("told to retry"))
	case "drop":
		return nil
	case "split":
		out.Emit([]byte(`{"part":1}`))
		out.Emit([]byte(`{"part":2}`))
		return nil
	case "meta":
		out.EmitRecord(sdk.Out{Payload: r.Payload(), Key: []byte("k2"), SetKey: true,
			Headers: []sdk.Header{{Key: []byte("h"), Value: []byte("v")}}, SetHeaders: true})
		return nil
	case "count":
		key, _ := jsonfield.GetString(r.Payload(), "key")
		n := 0
		if v, ok := sdk.State.Get(key); ok {
			n, _ = strconv.Atoi(string(v))
		}
		n++
		if err := sdk.State.Put(key, []byte(strconv.Itoa(n)), 0); err != nil {
			return err
		}
		sdk.CounterAdd("counted", 1)
		sdk.GaugeSet("last", float64(n))
		out.Emit([]byte(strconv.Itoa(n)))
		return nil
	case "fill":
		// Put 1000-byte values under new keys until the host refuses.
		val := make([]byte, 1000)
		for n := 0; ; n++ {
			if err := sdk.State.Put([]byte("fill-"+strconv.Itoa(n)), val, 0); err != nil {
				out.Emit([]byte(strconv.Itoa(n) + " " + err.Error()))
				return nil
			}
		}
	case "log":
		sdk.Warnf("record %d says hello", r.Index())
		os.Stdout.WriteString("to stdout\n")
	case "attrs":
		id, _ := jsonfield.GetString(r.Event(), "id")
		key, hasKey := r.Key()
		ts, _ := r.Time()
		h, _ := r.HeaderValue("h1")
		out.Emit([]byte(string(id) + "|" + string(key) + "|" + strconv.FormatBool(hasKey) + "|" + string(r.Stream()) + "|" +
			strconv.Itoa(int(r.Partition())) + "|" + strconv.FormatInt(r.Offset(), 10) + "|" + strconv.FormatInt(ts.UnixMilli(), 10) + "|" + string(h)))
		return nil
	}
	out.Pass()
	return nil
}

func report(err error) error {
	if err == nil {
		return errors.New("no error: the sandbox let it through")
	}
	return sdk.Fail(9, err)
}

func main() {}
