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
//	var cfg struct {
//		Field string `json:"field" doc:"top-level field of data to upper-case" required:"true"`
//	}
//
//	func init() {
//		sdk.Register(sdk.Plugin{
//			Name: "upper", Version: "1.0.0", Config: &cfg,
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
// Package sdktest runs a plugin natively in `go test`, with no WASM. The
// ABI the SDK implements is specified in Sluice's docs/abi.md.
package sdk
