// Package sdk writes Sluice WASM transforms in Go.
//
// A plugin is a main package that registers one handler from an init
// function and is built as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o upper.wasm .
//
//	package main
//
//	import (
//		"bytes"
//
//		"github.com/sluicehq/sluice/sdk"
//		"github.com/sluicehq/sluice/sdk/jsonfield"
//	)
//
//	var cfg struct{ Field string }
//
//	func init() {
//		sdk.Register(sdk.Plugin{
//			Name: "upper", Version: "1.0.0",
//			Params: []sdk.Param{
//				{Name: "field", Into: &cfg.Field, Required: true, Doc: "field of data to upper-case"},
//			},
//			Handler: sdk.MapFunc(func(r *sdk.Record, dst []byte) ([]byte, error) {
//				v, ok := jsonfield.GetString(r.Payload(), "data", cfg.Field)
//				if !ok {
//					return r.Payload(), nil // unchanged: passed through without a copy
//				}
//				return jsonfield.SetString(dst, r.Payload(), bytes.ToUpper(v), "data", cfg.Field)
//			}),
//		})
//	}
//
//	func main() {}
//
// The handler sees each record without copies (Record's slices point into
// the batch the host wrote), may emit 0..N outputs that change the payload,
// key and headers, and reports failures by returning an error: a plain
// error sends the record to the dead-letter queue, Retry(err) asks the
// task's retry policy to try it again later. A panic in a handler fails
// only its record; the instance stays healthy.
//
// Config: Params lists the keys of the task's `config` table; Into says
// where each value goes (a *string, *bool, *int, *int64, *float64,
// *[]string or *map[string]string; Decode takes any other shape as raw
// JSON). The SDK decodes the config before Init runs, rejecting unknown
// keys, wrong types (`key "PATH": expected ...`, which the host points at
// the key in the task file) and missing required keys, and describes the
// keys to the host with the values Into points to at Register as
// defaults.
//
// Size: the SDK imports neither encoding/json nor fmt nor reflect, and a
// plugin that does not import them either is about 2.4 MB of WebAssembly
// and 9.3 MiB of compiled code in the host, against 3.5 MB and 13.7 MiB
// with them: the host's memory and a task's start time grow with the
// module (docs/edge.md, "What a Go plugin links"). The log functions
// format with fmt's verbs for strings, numbers, booleans, errors and
// Stringers without fmt; errors are best built with errors.New, strconv
// and concatenation.
//
// Plugins written for the SDK before it left reflect out set Config to a
// pointer to a struct with `json`, `doc` and `required` tags. That keeps
// working, decoded as before, with one more import (it brings reflect
// back: 0.4 MB of WebAssembly, 1.6 MiB of compiled code):
//
//	import _ "github.com/sluicehq/sluice/sdk/structconfig"
//
// Without it, Register panics and says so. Config may also be any
// ConfigDecoder.
//
// Package sdktest runs a plugin natively in `go test`, with no WASM. The
// ABI the SDK implements is specified in Sluice's docs/abi.md.
package sdk
