package natsredise2e

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/gomodule/redigo/redis"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/natstest"
	natssink "github.com/sluicehq/sluice/builtins/sink/nats"
	redissink "github.com/sluicehq/sluice/builtins/sink/redis"
	natssource "github.com/sluicehq/sluice/builtins/source/nats"
	redissource "github.com/sluicehq/sluice/builtins/source/redis"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// The connector benchmarks measure each source and sink against the real
// local server, next to a floor: a plain program using the same client the
// simplest fast way with the same acknowledgement discipline, in the same
// run. b.N is the number of messages (make bench uses -benchtime Nx). They
// report events/s of both and the connector's share of the floor.

const benchBatch = 256

func benchBody(i int) []byte {
	return fmt.Appendf(nil, `{"order_id":"o-%08d","region":"eu-west","amount":129.5,"items":3,"email":"someone@example.com"}`, i)
}

// compare runs floor and sluice three times each, in the order floor,
// sluice, sluice, floor, floor, sluice so that neither always runs on a
// warmer server, and reports the fastest run of each: on a shared machine
// the slower runs measure the neighbours. round numbers the runs (resources per
// run, such as a durable, take it in their name).
//
// It also reports the CPU time this process spent per event (user and
// system, every goroutine: the client's reading and writing, the
// connector, the garbage collector), the lowest of each side's runs. The
// server's share is not in it. Unlike the rates, that figure hardly moves
// with the machine's load, so it is the one that shows what the connector
// adds to the plain program.
func compare(b *testing.B, floor, sluice func(round int)) {
	best := func(d, c *time.Duration, f func(int), round int) {
		c0 := cpuTime()
		start := time.Now()
		f(round)
		t := time.Since(start)
		ct := cpuTime() - c0
		if testing.Verbose() {
			b.Logf("round %d: %.0f events/s, %.2f µs CPU per event", round, float64(b.N)/t.Seconds(), float64(ct.Nanoseconds())/1e3/float64(b.N))
		}
		if *d == 0 || t < *d {
			*d = t
		}
		if *c == 0 || ct < *c {
			*c = ct
		}
	}
	var fd, sd, fc, sc time.Duration
	b.ResetTimer()
	best(&fd, &fc, floor, 0)
	best(&sd, &sc, sluice, 1)
	best(&sd, &sc, sluice, 2)
	best(&fd, &fc, floor, 3)
	best(&fd, &fc, floor, 4)
	best(&sd, &sc, sluice, 5)
	b.StopTimer()
	report(b, b.N, fd, sd)
	b.ReportMetric(float64(sc.Nanoseconds())/1e3/float64(b.N), "cpu-µs/event")
	b.ReportMetric(float64(fc.Nanoseconds())/1e3/float64(b.N), "floor_cpu-µs/event")
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func report(b *testing.B, n int, floor, sluice time.Duration) {
	fe, se := float64(n)/floor.Seconds(), float64(n)/sluice.Seconds()
	b.ReportMetric(se, "events/s")
	b.ReportMetric(fe, "floor_events/s")
	b.ReportMetric(100*se/fe, "%_of_floor")
	b.ReportMetric(0, "ns/op")
}

func benchEnv(b *testing.B) component.Env {
	env := componenttest.Env(b, zerolog.WarnLevel)
	env.Task = "bench"
	return env
}

// BenchmarkNATSSource reads b.N messages through a durable and acknowledges
// each. Floor: the jetstream client's Consume with the same pull size,
// acknowledging every message in the callback.
func BenchmarkNATSSource(b *testing.B) {
	srv := natstest.Local(b)
	stream := natstest.StreamName(b, "bench")
	subject := "sluice.bench." + stream
	srv.Stream(b, stream, subject)
	for from := 0; from < b.N; from += 10_000 {
		bodies := make([][]byte, 0, 10_000)
		for i := from; i < min(from+10_000, b.N); i++ {
			bodies = append(bodies, benchBody(i))
		}
		srv.Publish(b, subject, bodies)
	}
	ctx := natstest.Ctx(b)
	const pull, pending = 500, 10_000
	compare(b, func(round int) {
		cons, err := srv.JS.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{Durable: fmt.Sprintf("floor%d", round), AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: pending})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		got := 0
		cc, err := cons.Consume(func(m jetstream.Msg) {
			_ = m.Ack()
			if got++; got == b.N {
				close(done)
			}
		}, jetstream.PullMaxMessages(pull))
		if err != nil {
			b.Fatal(err)
		}
		<-done
		cc.Stop()
		_ = srv.NC.Flush()
	}, func(round int) {
		src := componenttest.Build(b, natssource.Register, component.KindSource, "nats",
			fmt.Sprintf("url = %q\nstream = %q\ndurable = \"sluice%d\"\nmax_batch = %d\nmax_ack_pending = %d\n", srv.URL, stream, round, pull, pending), benchEnv(b)).(component.Source)
		if err := src.Open(ctx); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < b.N; {
			batch, err := src.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(batch.Messages)
			batch.Ack(nil)
		}
		if err := src.Close(ctx); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkNATSSink publishes b.N messages into a stream in batches of
// 256, each batch acknowledged by the stream before the next (as Write
// does). Floor: PublishMsgAsync with a Nats-Msg-Id per message, waiting
// for the batch's acknowledgements.
func BenchmarkNATSSink(b *testing.B) {
	srv := natstest.Local(b)
	ctx := natstest.Ctx(b)
	msgs := make([]message.Message, b.N)
	for i := range msgs {
		body := benchBody(i)
		msgs[i] = message.Message{Payload: body, Event: fmt.Appendf(nil, `{"specversion":"1.0","id":"in-0-%d","data":%s}`, i, body)}
	}
	stream := natstest.StreamName(b, "out")
	srv.Stream(b, stream, "sluice.bench."+stream+".*")
	js, err := jetstream.New(srv.NC, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	compare(b, func(round int) {
		subject := fmt.Sprintf("sluice.bench.%s.r%d", stream, round)
		futs := make([]jetstream.PubAckFuture, 0, benchBatch)
		for from := 0; from < b.N; from += benchBatch {
			futs = futs[:0]
			for i := from; i < min(from+benchBatch, b.N); i++ {
				m := nats.NewMsg(subject)
				m.Data = msgs[i].Payload
				m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("r%d-in-0-%d", round, i))
				f, err := js.PublishMsgAsync(m)
				if err != nil {
					b.Fatal(err)
				}
				futs = append(futs, f)
			}
			for _, f := range futs {
				select {
				case <-f.Ok():
				case err := <-f.Err():
					b.Fatal(err)
				}
			}
		}
	}, func(round int) {
		// Each round publishes under other ids: the stream would drop a
		// second round as duplicates of the first.
		sk := componenttest.Build(b, natssink.Register, component.KindSink, "nats",
			fmt.Sprintf("url = %q\nsubject = \"sluice.bench.%s.r%d\"\nheaders = { round = \"%d\" }\n", srv.URL, stream, round, round), benchEnv(b)).(component.Sink)
		if err := sk.Open(ctx); err != nil {
			b.Fatal(err)
		}
		for i := range msgs {
			msgs[i].Pos = message.Position{Stream: "r", Partition: int32(round)}
			msgs[i].Event = fmt.Appendf(msgs[i].Event[:0], `{"specversion":"1.0","id":"r%d-in-0-%d","data":%s}`, round, i, msgs[i].Payload)
		}
		for from := 0; from < b.N; from += benchBatch {
			if err := sk.Write(ctx, msgs[from:min(from+benchBatch, b.N)]); err != nil {
				b.Fatal(err)
			}
		}
		if err := sk.Close(ctx); err != nil {
			b.Fatal(err)
		}
	})
	if got := srv.StreamMsgs(b, stream); got != uint64(6*b.N) {
		b.Fatalf("the stream holds %d messages, want %d", got, 6*b.N)
	}
}

// BenchmarkRedisSource reads b.N entries in a consumer group and
// acknowledges them. Floor: redigo's XREADGROUP with the same COUNT, the
// fields of each entry read into a map, and one XACK per batch.
func BenchmarkRedisSource(b *testing.B) {
	srv := redisLocal2(b)
	stream := srv.Key(b, "bench")
	ctx := context.Background()
	for from := 0; from < b.N; from += 10_000 {
		bodies := make([][]byte, 0, 10_000)
		for i := from; i < min(from+10_000, b.N); i++ {
			bodies = append(bodies, benchBody(i))
		}
		srv.Add(b, stream, "payload", bodies)
	}
	const count = 500
	compare(b, func(round int) {
		group := fmt.Sprintf("floor%d", round)
		c := srv.Conn()
		defer c.Close()
		if _, err := c.Do("XGROUP", "CREATE", stream, group, "0"); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < b.N; {
			res, err := redis.Values(c.Do("XREADGROUP", "GROUP", group, "c", "COUNT", count, "BLOCK", 1000, "STREAMS", stream, ">"))
			if err != nil {
				b.Fatal(err)
			}
			// [[stream, [[id, [field, value, ...]], ...]]]: the ids go back
			// in XACK, the fields as a map per entry, as a typed client
			// would hand them out.
			entries, _ := res[0].([]any)[1].([]any)
			args := make([]any, 0, len(entries)+2)
			args = append(args, stream, group)
			for _, e := range entries {
				e := e.([]any)
				if _, err := redis.StringMap(e[1], nil); err != nil {
					b.Fatal(err)
				}
				args = append(args, e[0])
			}
			if _, err := c.Do("XACK", args...); err != nil {
				b.Fatal(err)
			}
			n += len(entries)
		}
	}, func(round int) {
		group := fmt.Sprintf("sluice%d", round)
		src := componenttest.Build(b, redissource.Register, component.KindSource, "redis",
			fmt.Sprintf("url = %q\nstream = %q\ngroup = %q\nconsumer = \"c\"\nmax_batch = %d\n", srv.URL, stream, group, count), benchEnv(b)).(component.Source)
		if err := src.Open(ctx); err != nil {
			b.Fatal(err)
		}
		for n := 0; n < b.N; {
			batch, err := src.Read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(batch.Messages)
			batch.Ack(nil)
		}
		if err := src.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if p := srv.Pending(b, stream, group); p != 0 {
			b.Fatalf("%d entries left pending", p)
		}
	})
}

// BenchmarkRedisSink writes b.N records in batches of 256, one pipeline
// per batch. Floor: a redigo pipeline of XADD (stream) or HSET with the
// members as field-value pairs (hash) per batch.
func BenchmarkRedisSink(b *testing.B) {
	for _, mode := range []string{"stream", "hash"} {
		b.Run(mode, func(b *testing.B) {
			srv := redisLocal2(b)
			prefix := srv.Key(b, mode)
			ctx := context.Background()
			msgs := make([]message.Message, b.N)
			for i := range msgs {
				body := benchBody(i)
				msgs[i] = message.Message{Payload: body, Event: fmt.Appendf(nil, `{"specversion":"1.0","id":"in-0-%d","data":%s}`, i, body)}
			}
			compare(b, func(round int) {
				c := srv.Conn()
				defer c.Close()
				for from := 0; from < b.N; from += benchBatch {
					for i := from; i < min(from+benchBatch, b.N); i++ {
						var err error
						if mode == "stream" {
							err = c.Send("XADD", fmt.Sprintf("%s:floor%d", prefix, round), "*", "payload", msgs[i].Payload)
						} else {
							err = c.Send("HSET", fmt.Sprintf("%s:floor%d:o-%08d", prefix, round, i), "order_id", fmt.Sprintf("o-%08d", i), "region", "eu-west", "amount", "129.5", "items", "3", "email", "someone@example.com")
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					if _, err := c.Do(""); err != nil {
						b.Fatal(err)
					}
				}
			}, func(round int) {
				cfg := fmt.Sprintf("url = %q\nstream = \"%s:sluice%d\"\n", srv.URL, prefix, round)
				if mode == "hash" {
					cfg = fmt.Sprintf("url = %q\nmode = \"hash\"\nkey = \"%s:sluice%d:${order}\"\nvariables = { order = \"$.data.order_id\" }\n", srv.URL, prefix, round)
				}
				sk := componenttest.Build(b, redissink.Register, component.KindSink, "redis", cfg, benchEnv(b)).(component.Sink)
				if err := sk.Open(ctx); err != nil {
					b.Fatal(err)
				}
				for from := 0; from < b.N; from += benchBatch {
					if err := sk.Write(ctx, msgs[from:min(from+benchBatch, b.N)]); err != nil {
						b.Fatal(err)
					}
				}
				if err := sk.Close(ctx); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
