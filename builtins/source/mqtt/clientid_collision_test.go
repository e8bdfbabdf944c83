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
	// Time is the subject: both read for two seconds. Backing off from
	// 100 ms, each reconnects a handful of times in that window.
	const window = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), window)
	defer cancel()
	var wg sync.WaitGroup
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
	wg.Wait()
	n := a.m.reconnects.Value() + b.m.reconnects.Value()
	if n == 0 {
		t.Fatal("no reconnect: the broker did not disconnect either client")
	}
	if n > 30 {
		t.Fatalf("%v reconnects in %v between two clients with one id: want a backoff between them", n, window)
	}
}
