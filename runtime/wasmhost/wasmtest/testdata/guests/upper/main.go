// Command upper is the benchmark guest: it reads one string field of the
// event's data and rewrites it upper-cased, in one scan of the event.
package main

import (
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

var cfg = struct{ Field string }{Field: "name"}

func init() {
	sdk.Register(sdk.Plugin{
		Name: "upper", Version: "1.0.0", Summary: "upper-cases one field of data",
		Params: []sdk.Param{{Name: "field", Into: &cfg.Field, Doc: "field of data to upper-case"}},
		Handler: sdk.MapFunc(func(r *sdk.Record, dst []byte) ([]byte, error) {
			doc := r.Payload()
			s, e, ok := jsonfield.Span(doc, "data", cfg.Field)
			if !ok || jsonfield.KindOf(doc[s:e]) != jsonfield.String {
				return doc, nil // unchanged: passed on without a copy
			}
			// The string's bytes are copied as they are and only ASCII
			// letters outside escapes change: \n stays \n (\N is not JSON).
			dst = append(dst, doc...)
			v := dst[s:e]
			for i := 0; i < len(v); i++ {
				switch c := v[i]; {
				case c == '\\':
					i++ // the escaped character stays
					if i < len(v) && v[i] == 'u' {
						i += 4
					}
				case c >= 'a' && c <= 'z':
					v[i] = c - ('a' - 'A')
				}
			}
			return dst, nil
		}),
	})
}

func main() {}
