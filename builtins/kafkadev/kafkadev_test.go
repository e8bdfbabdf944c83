package kafkadev

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestStartProduceConsume(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Start(ctx, "127.0.0.1:0", 3, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Addrs()) != 1 {
		t.Fatalf("want one broker, got %v", c.Addrs())
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("b"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "b", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatalf("poll: %v", err)
	}
	if n := fs.NumRecords(); n != 1 {
		t.Fatalf("got %d records, want 1", n)
	}
	if got := len(c.Kfake().PartitionInfos("a")); got != 3 {
		t.Fatalf("topic a has %d partitions, want 3", got)
	}
}

func TestFixedPortAndCut(t *testing.T) {
	// Find a free port, then ask for it explicitly.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Start(ctx, addr, 1, "t")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != addr {
		t.Fatalf("listening on %s, want %s", c.Addr(), addr)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordDeliveryTimeout(time.Second),
		// A request cut mid-flight may have landed; without this the
		// idempotent producer waits for the broker instead of timing out.
		kgo.AllowIdempotentProduceCancellation(),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("1")}).FirstErr(); err != nil {
		t.Fatalf("produce before cut: %v", err)
	}
	t0 := time.Now()
	c.Cut()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("2")}).FirstErr(); err == nil {
		t.Fatal("produce during cut succeeded")
	}
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cut produce failed after %v", time.Since(t0))
	t0 = time.Now()
	// The client may still be backing off from the outage: retry as the
	// engine would, within a bound.
	for i := 0; ; i++ {
		err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("3")}).FirstErr()
		if err == nil {
			break
		}
		if i == 10 {
			t.Fatalf("produce after restore: %v", err)
		}
	}
	t.Logf("restored produce after %v", time.Since(t0))
	// Cancelling the start context stops the cluster.
	cancel()
	testkit.WaitFor(t, "the cluster to stop accepting connections after its context ended", func() bool {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return true
		}
		conn.Close()
		return false
	})
}

func TestStartBadAddr(t *testing.T) {
	for _, addr := range []string{"nope", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := Start(context.Background(), addr, 1); err == nil {
			t.Errorf("Start(%q) succeeded", addr)
		}
	}
}
