package function

import (
	"encoding/json"
	"testing"
)

type collect struct {
	n       int
	outputs int
	fails   int
	t       *testing.T
}

func (c *collect) output(i int, v []byte) {
	if i < 0 || i >= c.n {
		c.t.Fatalf("output for event %d of %d", i, c.n)
	}
	if !json.Valid(v) {
		c.t.Fatalf("output %q is not JSON", v)
	}
	c.outputs++
}

func (c *collect) fail(i int, msg string, retry bool) {
	if i < 0 || i >= c.n || msg == "" {
		c.t.Fatalf("failure %d of %d: %q", i, c.n, msg)
	}
	c.fails++
}

// FuzzParse: any answer either is refused as a whole or gives every event
// outputs that are valid JSON, or failures, and never more than one
// failure per event.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`[{"output":{"a":1}},{"drop":true},{"error":"no"},{"outputs":[1,"x",null]}]`,
		`[{"error":"later","retry":true}]`, `[null, 1, "s"]`, `[{}]`, `[{"outputs":{}}]`, `{"a":1}`, `[1,`, ` [ ] `,
		`[{"output":1,"outputs":[2]}]`, `[{"error":{"code":7}}]`, `[{"error":null,"output":"ok"}]`,
	} {
		f.Add([]byte(s), 1, true)
		f.Add([]byte(s), 4, false)
	}
	f.Fuzz(func(t *testing.T, body []byte, n int, results bool) {
		if n < 0 || n > 64 {
			return
		}
		mode := ResponseValues
		if results {
			mode = ResponseResults
		}
		c := &collect{n: n, t: t}
		err := parse(body, n, mode, c)
		if err != nil && c.outputs+c.fails > 0 {
			t.Fatalf("refused answer %q still produced %d outputs and %d failures", body, c.outputs, c.fails)
		}
		if c.fails > n {
			t.Fatalf("%d failures for %d events", c.fails, n)
		}
		if err == nil && !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}
