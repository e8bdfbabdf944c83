package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/redisconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Register adds the redis sink to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSink,
		Name:    "redis",
		Summary: "Write records to Redis: append to a stream (XADD), or store under a key as a hash (HSET) or a string (SET), with an optional TTL.",
		Description: "In `stream` mode each record's payload is appended to a stream (a template) as the field `field`, " +
			"with more fields from templates and optional approximate trimming (`max_len`). In `hash` and `set` modes " +
			"each record is stored under `key` (a template over the original source event): as a hash of the payload's " +
			"top-level members, or as a string, optionally expiring after `ttl`; a payload of JSON null deletes the key. " +
			"A Write is one pipeline. See docs/connectors/redis.md.",
		Example: `[sink]
type = "redis"
url = "redis://127.0.0.1:6379/0"
mode = "hash"
key = "order:${id}"
variables = { id = "$.data.value.order_id" }
ttl = "24h"
`,
		New:   newConfig,
		Build: build,
	})
}

// Sink is the redis sink.
type Sink struct {
	cfg  *Config
	opts *redis.Options
	tpl  *templates
	log  zerolog.Logger
	m    sinkMetrics

	argsHint atomic.Int32 // capacity for a command's arguments, learnt from the payloads

	mu     sync.Mutex
	rdb    *redis.Client
	closed bool
}

type sinkMetrics struct {
	records prometheus.Counter
	errors  *prometheus.CounterVec // error_type
	latency prometheus.Observer
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	tpl, ok := cfg.compile(nil)
	if !ok {
		return nil, errors.New("redis sink: invalid templates") // Validate reported the details
	}
	opts, err := cfg.conn().Options("sluice-"+env.Task, env.Dir)
	if err != nil {
		return nil, err
	}
	// Concurrent Writes each hold a connection for their pipeline.
	opts.PoolSize = max(opts.PoolSize, env.Concurrency+2)
	s := &Sink{cfg: cfg, opts: opts, tpl: tpl, log: env.Logger}
	if env.Metrics != nil {
		lbl := prometheus.Labels{"task": env.Task}
		ms := env.Metrics
		s.m = sinkMetrics{
			records: ms.Counter("redis_write_records_total", "Records written to Redis.", "task").With(lbl),
			errors:  ms.Counter("redis_write_errors_total", "Records that failed to write, by error class.", "task", "error_type").MustCurryWith(lbl),
			latency: ms.Histogram("redis_write_seconds", "Time for one Write (one pipeline).", nil, "task").With(lbl),
		}
	} else {
		s.m = sinkMetrics{
			records: prometheus.NewCounter(prometheus.CounterOpts{Name: "x"}),
			errors:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x"}, []string{"error_type"}),
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x"}),
		}
	}
	return s, nil
}

// Open connects and checks the credentials.
func (s *Sink) Open(ctx context.Context) error {
	s.mu.Lock()
	if s.rdb != nil || s.closed {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	rdb := redis.NewClient(s.opts)
	if err := redisconf.Ping(ctx, rdb, "open redis sink: "+redisconf.Redact(s.cfg.URL)); err != nil {
		rdb.Close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		rdb.Close()
		return nil
	}
	s.rdb = rdb
	target := s.cfg.Stream
	if s.cfg.Mode != ModeStream {
		target = s.cfg.Key
	}
	s.log.Info().Str("server", s.opts.Addr).Int("db", s.opts.DB).Str("mode", s.cfg.Mode).Str("target", target).Msg("redis sink connected")
	return nil
}

// Write writes msgs in one pipeline and returns once Redis answered every
// command. Per-record failures come back as a *component.RecordErrors.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	s.mu.Lock()
	rdb := s.rdb
	s.mu.Unlock()
	if rdb == nil {
		return errors.New("redis sink: Write before Open or after Close")
	}
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	var errs map[int]error
	fail := func(i int, err error) {
		if errs == nil {
			errs = map[int]error{}
		}
		if errs[i] == nil {
			errs[i] = err
		}
	}
	pipe := rdb.Pipeline()
	type queued struct {
		rec int
		cmd *redis.Cmd
	}
	cmds := make([]queued, 0, len(msgs))
	// Rendered keys and hash values live in one buffer for the Write: the
	// pipeline holds the arguments until Exec.
	size := 0
	for i := range msgs {
		size += 32 + len(msgs[i].Payload)/2
	}
	buf := make([]byte, 0, size)
	for i := range msgs {
		m := &msgs[i]
		var target string
		if s.tpl.fixed != "" {
			target = s.tpl.fixed
		} else {
			n := len(buf)
			buf = s.tpl.target.AppendRender(buf, m.Event)
			target = string(buf[n:])
			if target == "" {
				fail(i, component.EventPermanent(fmt.Errorf("event %s: the %s template rendered an empty key", m.Pos, s.targetKey())))
				continue
			}
		}
		args := make([]any, 0, s.argsHint.Load())
		var err error
		args, buf, err = s.command(args, buf, target, m)
		if err != nil {
			fail(i, component.EventPermanent(fmt.Errorf("event %s: %w", m.Pos, err)))
			continue
		}
		if len(args) == 0 {
			continue // nothing to write ({} in hash mode)
		}
		if n := int32(len(args)); n > s.argsHint.Load() {
			s.argsHint.Store(n)
		}
		cmds = append(cmds, queued{i, pipe.Do(ctx, args...)})
		if s.cfg.Mode == ModeHash && s.cfg.TTL > 0 && args[0] == "HSET" {
			cmds = append(cmds, queued{i, pipe.Do(ctx, "PEXPIRE", target, s.cfg.TTL.D().Milliseconds())})
		}
	}
	if len(cmds) > 0 {
		_, _ = pipe.Exec(ctx) // each command carries its own error
	}
	for _, q := range cmds {
		if err := q.cmd.Err(); err != nil && !errors.Is(err, redis.Nil) {
			fail(q.rec, redisconf.Classify(fmt.Errorf("%s: %w", q.cmd.Args()[0], err), true))
		}
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.records.Add(float64(len(msgs) - len(errs)))
	if len(errs) == 0 {
		return nil
	}
	for _, err := range errs {
		s.m.errors.WithLabelValues(component.ClassOf(err).String()).Inc()
	}
	return &component.RecordErrors{Errs: errs}
}

func (s *Sink) targetKey() string {
	if s.cfg.Mode == ModeStream {
		return "stream"
	}
	return "key"
}

var null = []byte("null")

// command appends the command writing m to args; rendered text goes to
// buf. No command (empty args) means nothing to write.
func (s *Sink) command(args []any, buf []byte, target string, m *message.Message) ([]any, []byte, error) {
	switch s.cfg.Mode {
	case ModeStream:
		args = append(args, "XADD", target)
		if s.cfg.MaxLen > 0 {
			args = append(args, "MAXLEN", "~", s.cfg.MaxLen)
		}
		args = append(args, "*", s.cfg.Field, m.Payload)
		for _, f := range s.tpl.fields {
			n := len(buf)
			buf = f.tpl.AppendRender(buf, m.Event)
			args = append(args, f.name, buf[n:len(buf):len(buf)])
		}
		return args, buf, nil
	case ModeSet:
		if bytes.Equal(bytes.TrimSpace(m.Payload), null) {
			return append(args, "DEL", target), buf, nil
		}
		args = append(args, "SET", target, m.Payload)
		if s.cfg.TTL > 0 {
			args = append(args, "PX", s.cfg.TTL.D().Milliseconds())
		}
		return args, buf, nil
	}
	// Hash: the payload's top-level members become the fields.
	p := m.Payload
	i := jsonscan.SkipSpace(p, 0)
	if bytes.Equal(bytes.TrimSpace(p), null) {
		return append(args, "DEL", target), buf, nil
	}
	if i >= len(p) || p[i] != '{' {
		return args, buf, fmt.Errorf("mode = \"hash\" stores the members of a JSON object, and the payload is not one (a transform can shape it)")
	}
	args = append(args, "HSET", target)
	it := jsonscan.MembersOf(p, i)
	for it.Next() {
		k := it.Key()
		n := len(buf)
		if bytes.IndexByte(k, '\\') >= 0 {
			var ok bool
			buf = append(buf, '"')
			buf = append(buf, k...)
			buf = append(buf, '"')
			quoted := buf[n:]
			if buf, ok = jsonscan.AppendString(buf, quoted); !ok {
				return args[:0], buf, errors.New("the payload is not valid JSON")
			}
			k = buf[n+len(quoted):]
		}
		vs, ve := it.Value()
		if ve < 0 {
			return args[:0], buf, errors.New("the payload is not valid JSON")
		}
		tok := p[vs:ve]
		vn := len(buf)
		if tok[0] == '"' {
			if c, ok := jsonscan.StringContent(tok); ok {
				args = append(args, k, c)
				continue
			}
			var ok bool
			if buf, ok = jsonscan.AppendString(buf, tok); !ok {
				return args[:0], buf, errors.New("the payload is not valid JSON")
			}
		} else {
			buf = jsonscan.AppendCompact(buf, tok)
		}
		args = append(args, k, buf[vn:len(buf):len(buf)])
	}
	if it.Err() {
		return args[:0], buf, errors.New("the payload is not valid JSON")
	}
	if len(args) == 2 {
		return args[:0], buf, nil // {}: no field to write
	}
	return args, buf, nil
}

// Close closes the client. It is safe without Open.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	rdb := s.rdb
	s.rdb = nil
	s.closed = true
	s.mu.Unlock()
	if rdb == nil {
		return nil
	}
	return rdb.Close()
}
