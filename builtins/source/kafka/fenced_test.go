package kafka

import (
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/sluicehq/sluice/runtime/component"
)

// TestFencedByStaleEpochStopsTheTask: a process fenced by another with the
// same transactional_id may learn it as INVALID_PRODUCER_EPOCH (its produce
// carried the epoch the newer process bumped); franz-go then fails every
// later Begin with it. That stops the task, naming the id, as
// PRODUCER_FENCED does: retried, the process stayed Running for ever,
// holding its partitions in the group with nothing read from them.
func TestFencedByStaleEpochStopsTheTask(t *testing.T) {
	for _, cause := range []error{kerr.ProducerFenced, kerr.InvalidProducerEpoch} {
		err := txnError(fmt.Errorf("kafka source: begin a transaction: producer ID has a fatal, unrecoverable error, err: %w", cause), "orders-1")
		if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), `transactional_id "orders-1"`) {
			t.Errorf("%v: %v (%v), want task-permanent naming the transactional_id", cause, err, component.ClassOf(err))
		}
	}
}
