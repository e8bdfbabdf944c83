package redis

import (
	"encoding/json"
	"fmt"
	"testing"
)

// FuzzEncodeEntry encodes an entry with arbitrary ids, field names and
// values: the event is always valid JSON and its data keeps the id.
func FuzzEncodeEntry(f *testing.F) {
	f.Add("1700000000123-5", "payload", `{"a":1}`, "tag", "x")
	f.Add("0-0", "p", "\xff\xfe", "p", "dup")
	f.Add("bad", "", "", "\"", "\\")
	f.Fuzz(func(t *testing.T, id, f1, v1, f2, v2 string) {
		for _, format := range []string{"json", "text", "base64"} {
			e := newEncoder("127.0.0.1:6379", 0, "s\"tream", format, 1<<20)
			b := e.encode([]entry{{id: id, fields: []string{f1, v1, f2, v2}}})
			m := b.msgs[0]
			var ev struct {
				ID   string
				Data struct {
					ID     string
					Fields map[string]any
				}
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("%s: invalid JSON %s: %v", format, m.Payload, err)
			}
			if _, _, ok := parseID(id); ok && (ev.ID != "s\"tream-"+id || ev.Data.ID != id || m.Err != nil) {
				t.Fatalf("id %q -> %q", id, ev.ID)
			}
		}
	})
}

// FuzzParseID checks that parseID never panics and accepts only
// "<ms>-<seq>" with both numbers in range.
func FuzzParseID(f *testing.F) {
	for _, s := range []string{"1-0", "1700000000123-5", "-", "1-", "-1", "x-1", "18446744073709551615-18446744073709551615", "18446744073709551616-0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		ms, seq, ok := parseID(id)
		if ok && fmt.Sprintf("%d-%d", ms, seq) != id {
			// Leading zeros or a '+' parse too; the numbers must still match.
			var m2, s2 uint64
			if _, err := fmt.Sscanf(id, "%d-%d", &m2, &s2); err != nil || m2 != ms || s2 != seq {
				t.Fatalf("%q parsed as %d-%d", id, ms, seq)
			}
		}
	})
}
