package engine_test

import (
	"context"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/builtins/filter"
	"github.com/sluicehq/sluice/builtins/filter/condition"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// A condition stopped by the end of its context (a worker past the
// shutdown deadline, the playground's 10 s) stops the batch: Process
// returns the context's error and the event is not dead-lettered, for it
// did not fail; it is read again. Filter.Match took no context, so such a
// condition ran to its end (found in review).
func TestStoppedConditionStopsTheBatch(t *testing.T) {
	f := filter.New(nil, condition.MustCompile(`let r = 1..1000; all(r, all(r, all(r, all(r, true))))`))
	p := engine.NewProcessor(f, nil, 1<<20, delivery.Policy{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	msgs := []message.Message{{Payload: []byte(`{}`)}}
	fates := make([]engine.Fate, 1)
	outs, err := p.Process(ctx, msgs, fates)
	if !errors.Is(err, context.Canceled) || len(outs) != 0 || fates[0].Failed() {
		t.Fatalf("Process with its context ended: outputs %d, err %v, fate %+v; want context.Canceled and no failure", len(outs), err, fates[0])
	}
}
