// Package generate is the `generate` source: synthetic events at a rate or
// a count, for demos, tests and benchmarks.
package generate

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config is the [source] table of a generate task.
type Config struct {
	Count     int64   `toml:"count" min:"0" doc:"Events to generate; 0 means no end."`
	Rate      float64 `toml:"rate" min:"0" doc:"Events per second; 0 means as fast as the task takes them."`
	BatchSize int     `toml:"batch_size" min:"1" max:"100000" doc:"Events per batch."`
	Preset    string  `toml:"preset" enum:"orders,clicks" doc:"Shape of the events: orders (e-commerce orders, ~260 bytes) or clicks (web analytics, ~280 bytes)."`
	Seed      int64   `toml:"seed" doc:"Seed of the pseudo-random values; the same seed gives the same events."`
	Source    string  `toml:"event_source" doc:"CloudEvents source attribute."`
}

// Register adds the generate source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "generate",
		Summary: "Generates synthetic events (orders or clicks) at a rate or a count.",
		Description: "Events are CloudEvents whose values derive from `seed` and the event's sequence number, " +
			"so a run is reproducible: event n always has id `generate-0-n` and the same content.",
		Example: "[source]\ntype = \"generate\"\ncount = 1000\nrate = 100\npreset = \"orders\"\n",
		New: func() any {
			return &Config{BatchSize: 512, Preset: "orders", Seed: 1, Source: "sluice/generate"}
		},
		Build: func(cfg any, env component.Env) (any, error) { return New(cfg.(*Config)), nil },
	})
}

// Source generates events.
type Source struct {
	cfg       Config
	next      int64
	start     time.Time
	src       []byte // quoted source attribute
	typ       string
	closed    chan struct{}
	closeOnce sync.Once
}

// ErrClosed is returned by a Read after Close.
var ErrClosed = errors.New("generate source closed")

// New returns a generator.
func New(cfg *Config) *Source {
	typ := "sluice.order"
	if cfg.Preset == "clicks" {
		typ = "sluice.click"
	}
	return &Source{cfg: *cfg, src: jsonscan.AppendQuoted(nil, []byte(cfg.Source)), typ: typ, closed: make(chan struct{})}
}

// Open starts the clock of the rate.
func (s *Source) Open(context.Context) error {
	s.start = time.Now()
	return nil
}

// Close ends a Read waiting for the rate.
func (s *Source) Close(context.Context) error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// Read returns the next batch, waiting when a rate is set.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	if err := ctx.Err(); err != nil {
		return component.Batch{}, err
	}
	select {
	case <-s.closed:
		return component.Batch{}, ErrClosed
	default:
	}
	n := int64(s.cfg.BatchSize)
	if s.cfg.Count > 0 {
		if s.next >= s.cfg.Count {
			return component.Batch{}, io.EOF
		}
		n = min(n, s.cfg.Count-s.next)
	}
	if s.cfg.Rate > 0 {
		// Pace by the total so far: no drift, and small batches at low rates.
		n = min(n, max(1, int64(s.cfg.Rate/10)))
		due := s.start.Add(time.Duration(float64(s.next) / s.cfg.Rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return component.Batch{}, ctx.Err()
			case <-s.closed:
				t.Stop()
				return component.Batch{}, ErrClosed
			}
		}
	}
	now := time.Now()
	msgs := make([]message.Message, n)
	arena := make([]byte, 0, n*280)
	for i := range msgs {
		seq := s.next + int64(i)
		start := len(arena)
		arena = s.appendEvent(arena, seq, now)
		msgs[i] = message.Message{Pos: message.Position{Stream: "generate", Offset: seq}, Time: now}
		msgs[i].Payload = arena[start:len(arena):len(arena)]
		msgs[i].Event = msgs[i].Payload
	}
	s.next += n
	return component.Batch{Messages: msgs, Lane: "generate"}, nil
}

// splitmix64 gives well-spread pseudo-random numbers from a counter.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

var (
	regions   = []string{"eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1", "cn-hangzhou"}
	tiers     = []string{"bronze", "silver", "gold", "platinum"}
	statuses  = []string{"paid", "paid", "paid", "pending", "refunded", "failed"}
	pages     = []string{"/", "/search", "/product/42", "/product/7", "/cart", "/checkout", "/account"}
	agents    = []string{"Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)", "curl/8.4.0", "Mozilla/5.0 (Windows NT 10.0; Win64)"}
	referrers = []string{"https://example.com/", "https://search.example/?q=boots", "", "https://news.example/article"}
)

// appendEvent appends event seq of the configured preset.
func (s *Source) appendEvent(dst []byte, seq int64, now time.Time) []byte {
	r := splitmix64(uint64(seq) ^ uint64(s.cfg.Seed)<<32)
	pick := func(list []string, shift uint) string { return list[(r>>shift)%uint64(len(list))] }
	dst = append(dst, `{"specversion":"1.0","id":"generate-0-`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `","source":`...)
	dst = append(dst, s.src...)
	dst = append(dst, `,"type":"`...)
	dst = append(dst, s.typ...)
	dst = append(dst, `","time":"`...)
	dst = now.UTC().AppendFormat(dst, "2006-01-02T15:04:05.000Z")
	dst = append(dst, `","data":`...)
	switch s.cfg.Preset {
	case "clicks":
		dst = append(dst, `{"session":"s-`...)
		dst = strconv.AppendUint(dst, r%1_000_000, 36)
		dst = append(dst, `","page":"`...)
		dst = append(dst, pick(pages, 8)...)
		dst = append(dst, `","ms":`...)
		dst = strconv.AppendUint(dst, (r>>16)%2000, 10)
		dst = append(dst, `,"ip":"10.`...)
		dst = strconv.AppendUint(dst, (r>>24)%256, 10)
		dst = append(dst, '.')
		dst = strconv.AppendUint(dst, (r>>32)%256, 10)
		dst = append(dst, `.1","agent":"`...)
		dst = append(dst, pick(agents, 40)...)
		dst = append(dst, `","referrer":"`...)
		dst = append(dst, pick(referrers, 44)...)
		dst = append(dst, `"}}`...)
	default:
		i := (r >> 8) % uint64(len(regions))
		dst = append(dst, `{"order_id":"o-`...)
		dst = appendPadded(dst, seq, 8)
		dst = append(dst, `","region":"`...)
		dst = append(dst, regions[i]...)
		dst = append(dst, `","amount":`...)
		cents := (r >> 16) % 100000
		dst = strconv.AppendUint(dst, cents/100, 10)
		dst = append(dst, '.')
		dst = appendPadded(dst, int64(cents%100), 2)
		dst = append(dst, `,"customer":{"id":"c-`...)
		dst = appendPadded(dst, int64((r>>24)%10000), 4)
		dst = append(dst, `","tier":"`...)
		dst = append(dst, pick(tiers, 36)...)
		dst = append(dst, `"},"items":`...)
		dst = strconv.AppendUint(dst, 1+(r>>40)%9, 10)
		dst = append(dst, `,"status":"`...)
		dst = append(dst, pick(statuses, 44)...)
		dst = append(dst, `"}}`...)
	}
	return dst
}

func appendPadded(dst []byte, v int64, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], v, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

var _ component.Source = (*Source)(nil)
