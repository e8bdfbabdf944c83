package mqtt

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestClientIDCollisionBacksOff: two processes with one client id take the
// session from each other at every connect (the broker disconnects the
// older client). Each source waits longer and longer before reconnecting,
// rather than reconnecting at once: they took the session from each other
// hundreds of times a second, logging a warning at each loss.
func TestClientIDCollisionBacksOff(t *testing.T) {
	url := testkit.MQTT(t)
	id := testkit.Unique(t, "dup")
	t.Cleanup(func() { cleanSession(t, url, id) })
	cfg := fmt.Sprintf("url = %q\ntopics = [%q]\nclient_id = %q\n", url, testkit.Unique(t, "t"), id)
	a, b := newSource(t, cfg), newSource(t, cfg)
	openT(t, a)
	openT(t, b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, s := range []*Source{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if bt, err := s.Read(ctx); err == nil && bt.Ack != nil {
					bt.Ack(nil)
				}
			}
		}()
	}
	reconnects := func() float64 { return a.m.reconnects.Value() + b.m.reconnects.Value() }
	// However slow the machine, the broker takes the session from one of
	// them sooner or later.
	testkit.WaitFor(t, "the broker to disconnect one of the clients", func() bool { return reconnects() > 0 })
	// Time is the subject: count the reconnects of the next two seconds.
	// Backing off from 100 ms, each reconnects a handful of times in that
	// window (a slow machine only makes it fewer); without a backoff, it
	// was hundreds.
	const window = 2 * time.Second
	from := reconnects()
	<-time.After(window)
	if n := reconnects() - from; n > 30 {
		t.Fatalf("%v reconnects in %v between two clients with one id: want a backoff between them", n, window)
	}
}
