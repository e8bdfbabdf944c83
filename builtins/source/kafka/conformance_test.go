package kafka

import (
	"encoding/json"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestConformance runs the source suite on a three-partition topic of a
// local cluster; every new source joins the same group, so it goes on from
// what the last one committed.
func TestConformance(t *testing.T) {
	c := cluster(t, 3, "conf")
	group := uniq(t, "g")
	n := 0
	componenttest.Source(t, componenttest.SourceSuite{
		New: func(t testing.TB) component.Source {
			cfg := decode(t, baseTree(c, "conf", group))
			src, err := build(cfg, testEnv(t))
			if err != nil {
				t.Fatal(err)
			}
			s := src.(*Source)
			s.extra = fastOpts
			return s
		},
		Produce: func(t testing.TB, bodies [][]byte) {
			recs := make([]*kgo.Record, len(bodies))
			for i, b := range bodies {
				// Spread over the partitions; each Produce call keeps its
				// order within a partition.
				recs[i] = &kgo.Record{Topic: "conf", Partition: int32(n % 3), Value: b}
				n++
			}
			produce(t, c.Addr(), recs...)
		},
		Body: func(t testing.TB, m message.Message) []byte {
			var ev struct {
				Data struct{ Value json.RawMessage }
			}
			if err := json.Unmarshal(m.Payload, &ev); err != nil {
				t.Fatalf("payload %q: %v", m.Payload, err)
			}
			return ev.Data.Value
		},
		Redelivers: true,
		Ordered:    true,
	})
}
