package redis

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/redisconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
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
			"A Write is one pipeline (two in hash mode with a ttl: the PEXPIREs once their HSETs succeeded). See docs/connectors/redis.md.",
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
	cfg    *Config
	client func() (*redisconf.Client, error)
	tpl    *templates
	log    zerolog.Logger
	m      sinkMetrics

	argsHint atomic.Int32 // capacity for a command's arguments, learnt from the payloads
	argBufs  sync.Pool    // *argBuf of finished Writes

	// Arguments that are the same for every command, boxed once (boxing a
	// string or an integer allocates).
	fieldArg, maxLenArg, ttlArg, fixedArg any
	fieldNames                            []any

	mu     sync.Mutex
	rdb    *redisconf.Client
	closed bool
}

type sinkMetrics struct {
	records metrics.Counter
	errors  *metrics.CounterVec // error_type
	latency metrics.Observer
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	tpl, ok := cfg.compile(nil, env.MaxEvent)
	if !ok {
		return nil, errors.New("redis sink: invalid templates") // Validate reported the details
	}
	// Concurrent Writes each hold a connection for their pipeline. A
	// reply is awaited for up to 3 s.
	client := func() (*redisconf.Client, error) {
		return cfg.conn().Client("sluice-"+env.Task, env.Dir, 3*time.Second, env.Concurrency+2)
	}
	if _, err := client(); err != nil { // checks the URL and the TLS files; connects nothing
		return nil, err
	}
	s := &Sink{cfg: cfg, client: client, tpl: tpl, log: env.Logger}
	s.fieldArg, s.maxLenArg, s.ttlArg, s.fixedArg = cfg.Field, cfg.MaxLen, cfg.TTL.D().Milliseconds(), tpl.fixed
	for _, f := range tpl.fields {
		s.fieldNames = append(s.fieldNames, f.name)
	}
	lbl := env.Task
	ms := env.Metrics
	s.m = sinkMetrics{
		records: ms.Counter("redis_write_records_total", "Records written to Redis.", "task").WithLabelValues(lbl),
		errors:  ms.Counter("redis_write_errors_total", "Records that failed to write, by error class.", "task", "error_type").Curry(lbl),
		latency: ms.Histogram("redis_write_seconds", "Time for one Write (one pipeline).", nil, "task").WithLabelValues(lbl),
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
	rdb, err := s.client()
	if err != nil {
		return err
	}
	if err := rdb.Ping(ctx, "open redis sink: "+redisconf.Redact(s.cfg.URL)); err != nil {
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
	s.log.Info().Str("server", rdb.Addr()).Int("db", rdb.DB()).Str("mode", s.cfg.Mode).Str("target", target).Msg("redis sink connected")
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
	ab := s.getArgBuf(msgs)
	defer s.argBufs.Put(ab)
	defer ab.reset()
	buf := ab.buf
	for i := range msgs {
		m := &msgs[i]
		var target any
		if s.tpl.fixed != "" {
			target = s.fixedArg
		} else {
			n := len(buf)
			var err error
			if buf, err = s.tpl.target.Render(buf, m.Event); err != nil {
				fail(i, component.EventPermanent(fmt.Errorf("event %s: %s template: %w", m.Pos, s.targetKey(), err)))
				continue
			}
			if len(buf) == n {
				fail(i, component.EventPermanent(fmt.Errorf("event %s: the %s template rendered an empty key", m.Pos, s.targetKey())))
				continue
			}
			target = ab.text(buf[n:])
		}
		start := len(ab.args)
		var err error
		buf, err = s.command(ab, buf, target, m)
		if err != nil {
			ab.args = ab.args[:start]
			fail(i, component.EventPermanent(fmt.Errorf("event %s: %w", m.Pos, err)))
			continue
		}
		args := ab.args[start:len(ab.args):len(ab.args)]
		if len(args) == 0 {
			continue // nothing to write ({} in hash mode)
		}
		if n := int32(len(args)); n > s.argsHint.Load() {
			s.argsHint.Store(n)
		}
		ab.cmds = append(ab.cmds, queued{i, args})
	}
	ab.buf = buf
	// In hash mode a ttl is set by a PEXPIRE after the HSET. It goes in a
	// second pipeline, for the keys whose HSET succeeded: sent after a
	// refused HSET (WRONGTYPE: the key holds another type), it would set
	// the expiry of a key the sink did not write.
	expire := s.cfg.Mode == ModeHash && s.cfg.TTL > 0
	s.pipeline(ctx, rdb, ab.cmds, fail, func(q queued) {
		if expire && q.args[0] == "HSET" {
			start := len(ab.args)
			ab.args = append(ab.args, "PEXPIRE", q.args[1], s.ttlArg)
			ab.expire = append(ab.expire, queued{q.rec, ab.args[start:len(ab.args):len(ab.args)]})
		}
	})
	s.pipeline(ctx, rdb, ab.expire, fail, nil)
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.records.Add(uint64(len(msgs) - len(errs)))
	if len(errs) == 0 {
		return nil
	}
	for _, err := range errs {
		s.m.errors.WithLabelValues(component.ClassOf(err).String()).Inc()
	}
	return &component.RecordErrors{Errs: errs}
}

// pipeline runs cmds in one pipeline, failing the record of each command
// that fails and handing each that succeeded to ok (when not nil).
func (s *Sink) pipeline(ctx context.Context, rdb *redisconf.Client, cmds []queued, fail func(int, error), ok func(queued)) {
	if len(cmds) == 0 {
		return
	}
	rdb.Pipeline(ctx, len(cmds), func(j int) (string, []any) {
		args := cmds[j].args
		return args[0].(string), args[1:]
	}, func(j int, _ any, err error) {
		q := cmds[j]
		if err != nil {
			fail(q.rec, redisconf.Classify(fmt.Errorf("%s: %w", q.args[0], err), true))
		} else if ok != nil {
			ok(q)
		}
	})
}

func (s *Sink) targetKey() string {
	if s.cfg.Mode == ModeStream {
		return "stream"
	}
	return "key"
}

// queued is a command of the pipeline (its name, then its arguments) and
// the record it writes.
type queued struct {
	rec  int
	args []any
}

// argBuf is the memory of one Write, reused by a later one: the commands'
// arguments (each command a sub-slice of args) and the buffer rendered
// keys and values are written to. The pipeline is sent before the Write
// returns, so nothing of it is written twice within a Write.
//
// Text arguments are strings that share the bytes of buf or of the
// payload (unsafe.String: neither is modified until the Write returns),
// so no argument's bytes are copied. redigo takes arguments as interface
// values, and boxing a string into one allocates a copy of its header (a
// hash record of five members cost ten allocations, 0.5 µs of CPU): the
// headers live in texts instead, reused from Write to Write, and each
// argument points at its own (stringAt).
type argBuf struct {
	args   []any
	texts  []string
	buf    []byte
	cmds   []queued
	expire []queued // hash mode's PEXPIREs, after their HSET succeeded
}

func (s *Sink) getArgBuf(msgs []message.Message) *argBuf {
	ab, _ := s.argBufs.Get().(*argBuf)
	if ab == nil {
		ab = &argBuf{}
	}
	perRecord := max(int(s.argsHint.Load()), 4)
	if n := len(msgs) * perRecord; cap(ab.args) < n {
		ab.args = make([]any, 0, n)
		ab.texts = make([]string, 0, n)
	}
	size := 0
	for i := range msgs {
		size += 32 + len(msgs[i].Payload)/2
	}
	if cap(ab.buf) < size {
		ab.buf = make([]byte, 0, size)
	}
	if cap(ab.cmds) < len(msgs) {
		ab.cmds = make([]queued, 0, len(msgs))
	}
	return ab
}

// reset drops the references of a finished Write.
func (ab *argBuf) reset() {
	clear(ab.args)
	clear(ab.texts)
	clear(ab.cmds)
	clear(ab.expire)
	ab.args, ab.texts, ab.buf, ab.cmds, ab.expire = ab.args[:0], ab.texts[:0], ab.buf[:0], ab.cmds[:0], ab.expire[:0]
}

// text returns b as a string argument, without copying or allocating: b
// must not change until the Write returns. (When texts grows, the earlier
// arguments keep the earlier array alive, unchanged.)
func (ab *argBuf) text(b []byte) any {
	ab.texts = append(ab.texts, unsafe.String(unsafe.SliceData(b), len(b)))
	return stringAt(&ab.texts[len(ab.texts)-1])
}

// stringAt returns an interface value holding the string *p without
// copying its header. An interface value of a type that is not a pointer
// is two words, the type and a pointer to the value: boxing copies the
// value to the heap and points at the copy; this points at *p, which
// must not change while the value is used.
func stringAt(p *string) any {
	v := any("") // the type word of string; a constant is boxed without allocating
	(*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1] = unsafe.Pointer(p)
	return v
}

var null = []byte("null")

// command appends the command writing m to ab.args; rendered text goes to
// buf. No command (no arguments appended) means nothing to write.
func (s *Sink) command(ab *argBuf, buf []byte, target any, m *message.Message) ([]byte, error) {
	switch s.cfg.Mode {
	case ModeStream:
		ab.args = append(ab.args, "XADD", target)
		if s.cfg.MaxLen > 0 {
			ab.args = append(ab.args, "MAXLEN", "~", s.maxLenArg)
		}
		ab.args = append(ab.args, "*", s.fieldArg, ab.text(m.Payload))
		for j, f := range s.tpl.fields {
			n := len(buf)
			var err error
			if buf, err = f.tpl.Render(buf, m.Event); err != nil {
				return buf, fmt.Errorf("field %q template: %w", f.name, err)
			}
			ab.args = append(ab.args, s.fieldNames[j], ab.text(buf[n:]))
		}
		return buf, nil
	case ModeSet:
		if bytes.Equal(bytes.TrimSpace(m.Payload), null) {
			ab.args = append(ab.args, "DEL", target)
			return buf, nil
		}
		ab.args = append(ab.args, "SET", target, ab.text(m.Payload))
		if s.cfg.TTL > 0 {
			ab.args = append(ab.args, "PX", s.ttlArg)
		}
		return buf, nil
	}
	// Hash: the payload's top-level members become the fields.
	start := len(ab.args)
	p := m.Payload
	i := jsonscan.SkipSpace(p, 0)
	if bytes.Equal(bytes.TrimSpace(p), null) {
		ab.args = append(ab.args, "DEL", target)
		return buf, nil
	}
	if i >= len(p) || p[i] != '{' {
		return buf, fmt.Errorf("mode = \"hash\" stores the members of a JSON object, and the payload is not one (a transform can shape it)")
	}
	ab.args = append(ab.args, "HSET", target)
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
				return buf, errors.New("the payload is not valid JSON")
			}
			k = buf[n+len(quoted):]
		}
		vs, ve := it.Value()
		if ve < 0 {
			return buf, errors.New("the payload is not valid JSON")
		}
		tok := p[vs:ve]
		vn := len(buf)
		if tok[0] == '"' {
			if c, ok := jsonscan.StringContent(tok); ok {
				ab.args = append(ab.args, ab.text(k), ab.text(c))
				continue
			}
			var ok bool
			if buf, ok = jsonscan.AppendString(buf, tok); !ok {
				return buf, errors.New("the payload is not valid JSON")
			}
		} else {
			buf = jsonscan.AppendCompact(buf, tok)
		}
		ab.args = append(ab.args, ab.text(k), ab.text(buf[vn:]))
	}
	if it.Err() {
		return buf, errors.New("the payload is not valid JSON")
	}
	if len(ab.args) == start+2 {
		ab.args = ab.args[:start] // {}: no field to write
	}
	return buf, nil
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
