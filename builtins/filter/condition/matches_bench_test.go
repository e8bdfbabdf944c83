package condition

import "testing"

// BenchmarkEvalMatches: a constant regular expression over a short field,
// the common use of matches (what charging its steps costs shows here).
func BenchmarkEvalMatches(b *testing.B) {
	ev := []byte(`{"data":{"path":"/api/v2/orders/12345/items","method":"GET"}}`)
	c := MustCompile(`data.method == "GET" && data.path matches "^/api/v[0-9]+/orders/[0-9]+"`)
	if ok, err := c.Eval(ev); !ok || err != nil {
		b.Fatal(ok, err)
	}
	benchEval(b, c, ev)
}
