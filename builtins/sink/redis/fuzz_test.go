package redis

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/message"
)

// FuzzHashCommand feeds arbitrary payloads to the hash mode: it never
// panics, a JSON object becomes HSET with one field per distinct member, JSON
// null becomes DEL, and anything else is an error.
func FuzzHashCommand(f *testing.F) {
	for _, s := range []string{`{"a":"x","b":1}`, `null`, `[1]`, `{"k\u00e9":"v\n","n":{"x":[1,2]}}`, `{}`, `{"a":`, `"s"`, ` {"a" : true } `} {
		f.Add([]byte(s))
	}
	s := &Sink{cfg: &Config{Mode: ModeHash}, tpl: &templates{}}
	f.Fuzz(func(t *testing.T, payload []byte) {
		m := &message.Message{Payload: payload}
		ab := &argBuf{}
		_, err := s.command(ab, nil, "k", m)
		args := ab.args
		var v any
		valid := json.Unmarshal(payload, &v) == nil
		obj, isObj := v.(map[string]any)
		switch {
		case valid && v == nil:
			if err != nil || len(args) != 2 || args[0] != "DEL" {
				t.Fatalf("%q: %v %v", payload, args, err)
			}
		case valid && isObj:
			if err != nil {
				t.Fatalf("%q: %v", payload, err)
			}
			if len(obj) == 0 {
				if len(args) != 0 {
					t.Fatalf("%q: %v", payload, args)
				}
				return
			}
			if args[0] != "HSET" || len(args) < 2+2*len(obj) {
				t.Fatalf("%q: %d args for %d members", payload, len(args), len(obj))
			}
			// encoding/json turns invalid UTF-8 in member names into
			// U+FFFD; the sink writes the names' bytes as they are.
			for i := 2; i < len(args) && utf8.Valid(payload); i += 2 {
				if _, ok := obj[args[i].(string)]; !ok {
					t.Fatalf("%q: field %q is not a member", payload, args[i])
				}
			}
		case valid:
			if err == nil {
				t.Fatalf("%q: no error for a payload that is not an object", payload)
			}
		}
	})
}
