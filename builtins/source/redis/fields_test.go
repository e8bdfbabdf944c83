package redis

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestManyFieldsGroupAsFewFieldsDo checks the map-based grouping of large
// entries against the scan of small ones, on entries whose names repeat in
// every pattern (none, some, all, adjacent, far apart).
func TestManyFieldsGroupAsFewFieldsDo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, format := range []string{"json", "text", "base64"} {
		e := newEncoder("127.0.0.1:6379", 0, "s", format, 1<<20)
		for i := range 500 {
			n := rng.IntN(80)
			names := 1 + rng.IntN(n+1)
			fs := make([]string, 0, 2*n)
			for k := range n {
				fs = append(fs, "f"+strconv.Itoa(rng.IntN(names)), strconv.Itoa(k))
			}
			few := string(e.appendFewFields(nil, fs))
			many := string(e.appendManyFields(nil, fs))
			if few != many {
				t.Fatalf("%s, entry %d (%d fields over %d names):\nscan %s\n map %s", format, i, n, names, few, many)
			}
		}
	}
}

// TestEntryOfManyFields encodes one entry of 200,000 fields, a few of them
// repeated. A producer chooses how many fields an entry has: grouping them
// by scanning took 20 s for 100,000 and grows with the square.
func TestEntryOfManyFields(t *testing.T) {
	const n = 200_000
	fs := make([]string, 0, 2*n)
	for i := range n {
		name := "f" + strconv.Itoa(i)
		if i%50_000 == 49_999 {
			name = "dup"
		}
		fs = append(fs, name, strconv.Itoa(i))
	}
	e := newEncoder("127.0.0.1:6379", 0, "s", "json", 64<<20)
	m := e.encode([]entry{{id: "1-1", fields: fs}}).msgs[0]
	if m.Err != nil {
		t.Fatal(m.Err)
	}
	var ev struct {
		Data struct{ Fields map[string]json.RawMessage }
	}
	if err := json.Unmarshal(m.Payload, &ev); err != nil {
		t.Fatal(err)
	}
	if got := len(ev.Data.Fields); got != n-4+1 {
		t.Fatalf("%d names, want %d", got, n-4+1)
	}
	if got := string(ev.Data.Fields["dup"]); got != "[49999,99999,149999,199999]" {
		t.Fatalf("dup = %s", got)
	}
}
