// Command pass passes every record on: it measures the SDK's own cost per
// record (decode, handler call with panic recovery, result encoding).
package main

import "github.com/sluicehq/sluice/sdk"

func init() {
	sdk.Register(sdk.Plugin{
		Name: "pass", Version: "1.0.0",
		Handler: sdk.FilterFunc(func(*sdk.Record) (bool, error) { return true, nil }),
	})
}

func main() {}
