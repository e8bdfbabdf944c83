// Command empty passes every record on unchanged.
package main

import "github.com/sluicehq/sluice/sdk"

func init() {
	sdk.Register(sdk.Plugin{
		Name: "empty", Version: "1.0.0",
		Handler: sdk.FilterFunc(func(*sdk.Record) (bool, error) { return true, nil }),
	})
}

func main() {}
