// Command upper is the benchmark guest: it reads one string field of the
// event's data, and writes its upper-cased copy to another field.
package main

import (
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

var cfg = struct {
	From string `json:"from" doc:"field of data to read"`
	To   string `json:"to" doc:"field of data to write"`
}{From: "name", To: "name_upper"}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "upper", Version: "1.0.0", Summary: "upper-cases one field into another",
		Config: &cfg,
		Handler: sdk.MapFunc(func(r *sdk.Record, dst []byte) ([]byte, error) {
			v, ok := jsonfield.GetString(r.Payload(), "data", cfg.From)
			if !ok {
				return r.Payload(), nil
			}
			// Upper-case into the scratch space, then splice it in.
			q := append(dst, '"')
			for _, c := range v {
				if c >= 'a' && c <= 'z' {
					c -= 'a' - 'A'
				}
				q = append(q, c)
			}
			q = append(q, '"')
			return jsonfield.Set(q[len(q):], r.Payload(), q, "data", cfg.To)
		}),
	})
}

func main() {}
