package redis

import (
	"encoding/json"
	"testing"
	"time"
)

// TestEntryTimePastYear9999: a producer may give XADD any id, such as
// 253402300800000-0 (year 10000) or 18446744073709551615-0. The event's
// `time` was written with a 5+ digit year, which is not RFC 3339, or (past
// 2^63 ms) wrapped to a time before 1970. It is the time the entry was read
// (docs/connectors/redis.md); data.id keeps the producer's id.
func TestEntryTimePastYear9999(t *testing.T) {
	e := newEncoder("127.0.0.1:6379", 0, "s", "json", 1<<20)
	for _, id := range []string{"253402300800000-0", "9223372036854775808-0", "18446744073709551615-0"} {
		before := time.Now().Add(-time.Millisecond)
		m := e.encode([]entry{{id: id, fields: []string{"payload", "1"}}}).msgs[0]
		after := time.Now().Add(time.Millisecond)
		var ev struct {
			Time string
			Data struct{ ID string }
		}
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		ts, err := time.Parse(time.RFC3339, ev.Time)
		if err != nil || ts.Before(before) || ts.After(after) || ev.Data.ID != id {
			t.Errorf("entry %s: time %q (%v), data.id %q; want the time of reading in RFC 3339 and the id", id, ev.Time, err, ev.Data.ID)
		}
	}
}
