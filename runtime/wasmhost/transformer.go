package wasmhost

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/wasmhost/abi"
)

// Defaults of TransformerConfig.
const (
	DefaultTimeout   = 100 * time.Millisecond
	DefaultMaxBatch  = 256
	DefaultMaxOutput = 16 << 20
	// DefaultMaxOutputs bounds the host memory of one call's outputs to
	// about 11 MiB of messages, whatever their size.
	DefaultMaxOutputs = 65536
	DefaultMaxInput   = 8 << 20
)

// TransformerConfig configures one transform of one task.
type TransformerConfig struct {
	Task string
	// Config is the JSON handed to sluice_init ("{}" when nil).
	Config []byte
	// Instances caps the instance pool (the task's concurrency; >= 1).
	Instances int
	// Timeout is the time budget of one guest call.
	Timeout time.Duration
	// MaxBatch caps the records of one guest call.
	MaxBatch int
	// MaxInput caps the encoded bytes of one guest call (a single larger
	// record is still sent, alone).
	MaxInput int
	// MaxOutput caps the bytes a guest call may return.
	MaxOutput int
	// MaxOutputs caps the outputs a guest call may return (empty ones
	// included).
	MaxOutputs int
	// Logger carries the task and component fields.
	Logger  *zerolog.Logger
	Metrics *metrics.Set
	// KV is the transform's state; nil: a fresh in-memory store.
	KV *KV
	// IdleTimeout retires instances beyond the first that have not been
	// used for that long; 0: DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is how long an instance beyond the first may sit
// unused before it is closed. A burst at concurrency N leaves N instances,
// each holding its guest's memory (a Go guest: 3-8 MiB, more after a
// large batch, since linear memory never shrinks); a quiet task gives all
// but one back. The next burst pays an instantiation (~6 ms of CPU for a
// Go guest) per instance it needs again.
const DefaultIdleTimeout = 10 * time.Second

// Transformer runs one module as a transform: a bounded pool of instances
// and the per-batch call with failure isolation. It implements
// component.Transform.
type Transformer struct {
	mod   *Module
	cfg   TransformerConfig
	state *State

	idle    chan *instance // instances ready for a call
	slots   chan struct{}  // one token per live instance
	mu      sync.Mutex
	desc    *Description
	started bool

	callSeconds metrics.Observer
	traps       *metrics.CounterVec
	instances   metrics.Gauge
	closed      bool
	reaper      *time.Timer // armed while instances beyond the first are live (under mu)

	afterRelease func() // test hook: runs in release once mu is let go
}

// NewTransformer prepares a transformer; Start creates its first instance.
func (m *Module) NewTransformer(cfg TransformerConfig) *Transformer {
	if cfg.Instances < 1 {
		cfg.Instances = 1
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.MaxInput <= 0 {
		cfg.MaxInput = DefaultMaxInput
	}
	if cfg.MaxOutput <= 0 {
		cfg.MaxOutput = DefaultMaxOutput
	}
	if cfg.MaxOutputs <= 0 {
		cfg.MaxOutputs = DefaultMaxOutputs
	}
	if cfg.Config == nil {
		cfg.Config = []byte("{}")
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	t := &Transformer{
		mod:   m,
		cfg:   cfg,
		state: newState(cfg.Logger, cfg.Task, m.Name, cfg.Metrics, cfg.KV),
		idle:  make(chan *instance, cfg.Instances),
		slots: make(chan struct{}, cfg.Instances),
	}
	// A nil cfg.Metrics hands out metrics exposed nowhere.
	t.callSeconds = cfg.Metrics.Histogram("wasm_call_seconds", "Time of one call into a WASM transform module (one batch).", nil, "task", "module").WithLabelValues(cfg.Task, m.Name)
	t.traps = cfg.Metrics.Counter("wasm_call_failures_total", "Calls into a WASM transform module that failed, by reason (trap, timeout, abi, output, start).", "task", "module", "reason")
	t.instances = cfg.Metrics.Gauge("wasm_instances", "Live instances of a WASM transform module.", "task", "module").WithLabelValues(cfg.Task, m.Name)
	return t
}

// Start creates the first instance, reads the module's self-description,
// then runs its init with the config. It returns the description even when
// init rejects the config (a *ConfigError), so that callers can point at
// the offending key.
func (t *Transformer) Start(ctx context.Context) (*Description, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.started {
		return t.desc, nil
	}
	t.slots <- struct{}{}
	inst, err := t.mod.newInstance(ctx, t.state, nil)
	if err != nil {
		<-t.slots
		return nil, err
	}
	d, err := inst.describe(ctx)
	if err != nil {
		inst.discard()
		<-t.slots
		return nil, err
	}
	t.desc = &d
	if err := inst.init(ctx, t.cfg.Config); err != nil {
		inst.discard()
		<-t.slots
		return t.desc, err
	}
	t.started = true
	t.gaugeAdd(1)
	t.idle <- inst
	return t.desc, nil
}

func (t *Transformer) gaugeAdd(v float64) {
	t.instances.Add(v)
}

func (t *Transformer) fail(reason string) {
	if t.traps != nil {
		t.traps.WithLabelValues(t.cfg.Task, t.mod.Name, reason).Inc()
	}
}

// acquire returns an idle instance, or creates one while the pool has room,
// or waits for one.
func (t *Transformer) acquire(ctx context.Context) (*instance, error) {
	select {
	case inst := <-t.idle:
		return inst, nil
	default:
	}
	select {
	case inst := <-t.idle:
		return inst, nil
	case t.slots <- struct{}{}:
		inst, err := t.mod.newInstance(ctx, t.state, t.cfg.Config)
		if err != nil {
			<-t.slots
			t.fail("start")
			return nil, fmt.Errorf("wasm module %s: %w", t.mod.Name, err)
		}
		t.gaugeAdd(1)
		return inst, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release returns inst to the pool, or retires it when the transformer
// was closed while the call ran.
//
// The instance goes back under mu: Close sets closed under mu before it
// drains idle, so an instance is either retired here or found there. (Put
// back after mu was let go, it could land in idle after Close drained it,
// and never be closed: its memory reservation leaked.)
func (t *Transformer) release(inst *instance) {
	inst.idleSince = monotonic()
	t.mu.Lock()
	back := false
	if !t.closed {
		if t.reaper == nil && len(t.slots) > 1 {
			t.reaper = time.AfterFunc(t.cfg.IdleTimeout, t.reap)
		}
		// idle has room for every live instance (one slot each): the
		// send cannot fail; if it did, retiring the instance is safe.
		select {
		case t.idle <- inst:
			back = true
		default:
		}
	}
	t.mu.Unlock()
	if t.afterRelease != nil {
		t.afterRelease()
	}
	if !back {
		inst.close(context.Background())
		t.gaugeAdd(-1)
		<-t.slots
	}
}

// reap closes the idle instances beyond the first that have been unused
// for IdleTimeout, and comes back later while extra instances remain.
func (t *Transformer) reap() {
	t.mu.Lock()
	t.reaper = nil
	if t.closed {
		t.mu.Unlock()
		return
	}
	now := monotonic()
	live := len(t.slots)
	var keep, retire []*instance
	next := t.cfg.IdleTimeout
	for n := len(t.idle); n > 0; n-- {
		var inst *instance
		select {
		case inst = <-t.idle:
		default:
		}
		if inst == nil {
			break
		}
		if idle := time.Duration(now - inst.idleSince); live > 1 && idle >= t.cfg.IdleTimeout {
			retire = append(retire, inst)
			live--
			continue
		}
		if idle := time.Duration(now - inst.idleSince); t.cfg.IdleTimeout-idle < next {
			next = t.cfg.IdleTimeout - idle
		}
		keep = append(keep, inst)
	}
	// The idle channel has room for every instance taken out of it: no
	// send below blocks, and Close, waiting for mu, finds them there.
	for _, inst := range keep {
		t.idle <- inst
	}
	if len(t.slots)-len(retire) > 1 {
		t.reaper = time.AfterFunc(max(next, time.Millisecond), t.reap)
	}
	t.mu.Unlock()
	for _, inst := range retire {
		inst.close(context.Background())
		t.gaugeAdd(-1)
		<-t.slots
	}
}

func (t *Transformer) drop(inst *instance) {
	inst.discard()
	t.gaugeAdd(-1)
	<-t.slots
}

// Apply implements component.Transform.
func (t *Transformer) Apply(ctx context.Context, in []message.Message, out *component.Output) error {
	return t.Process(ctx, in, out)
}

// Process runs in through the module, max_batch records (and at most
// max_input bytes) per call, appending outputs and per-record failures to
// out. A returned error means the batch could not be processed at all (no
// instance could be started, the context ended); failures caused by
// records are reported per record.
func (t *Transformer) Process(ctx context.Context, in []message.Message, out *component.Output) error {
	t.mu.Lock()
	closed := t.closed
	t.mu.Unlock()
	if closed {
		return fmt.Errorf("wasm module %s: transform is closed", t.mod.Name)
	}
	for len(in) > 0 {
		n, size := 0, abi.BatchHeaderSize
		for n < len(in) && n < t.cfg.MaxBatch {
			s := abi.RecordEncodedSize(&in[n])
			if n > 0 && size+s > t.cfg.MaxInput {
				break
			}
			size += s
			n++
		}
		if err := t.isolate(ctx, in[:n], size, out); err != nil {
			return err
		}
		in = in[n:]
	}
	return nil
}

// isolate calls the guest with msgs; when the call fails because of what
// the guest did, it splits msgs until the failing record is alone and
// fails that record with the reason. The guest's cursor (the record it said
// it was working on) picks the split point when it is set; otherwise the
// batch is halved.
func (t *Transformer) isolate(ctx context.Context, msgs []message.Message, size int, out *component.Output) error {
	if size <= 0 {
		size = abi.EncodedSize(msgs)
	}
	cursor, err := t.call(ctx, msgs, size, out)
	if err == nil {
		return nil
	}
	var hostErr *hostError
	if errors.As(err, &hostErr) || ctx.Err() != nil || errors.Is(err, ErrCanceled) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	if len(msgs) == 1 {
		out.Fail(&msgs[0], component.EventPermanent(fmt.Errorf("wasm module %s: %w", t.mod.Name, err)))
		return nil
	}
	var parts [3][]message.Message
	if cursor >= 0 && cursor < len(msgs) {
		parts = [3][]message.Message{msgs[:cursor], msgs[cursor : cursor+1], msgs[cursor+1:]}
	} else {
		h := len(msgs) / 2
		parts = [3][]message.Message{msgs[:h], msgs[h:]}
	}
	for _, p := range parts {
		if len(p) == 0 {
			continue
		}
		if err := t.isolate(ctx, p, 0, out); err != nil {
			return err
		}
	}
	return nil
}

// hostError is a failure not caused by the records (no instance could be
// started): isolating would not help.
type hostError struct{ err error }

func (e *hostError) Error() string { return e.err.Error() }
func (e *hostError) Unwrap() error { return e.err }

// call makes one guest call for msgs. On failure it returns the guest's
// cursor (-1 when unset) and the reason.
func (t *Transformer) call(ctx context.Context, msgs []message.Message, size int, out *component.Output) (int, error) {
	inst, err := t.acquire(ctx)
	if err != nil {
		return -1, &hostError{err}
	}
	if err := inst.reserve(ctx, size); err != nil {
		t.fail("abi")
		t.drop(inst)
		return -1, err
	}
	view, ok := inst.mem.Read(inst.buf, uint32(size))
	if !ok {
		t.drop(inst)
		return -1, &abi.ResultError{Msg: "input buffer outside memory"}
	}
	abi.Encode(view, msgs)
	inst.stack[0], inst.stack[1] = uint64(inst.buf), uint64(size)
	start := time.Now()
	res, err := inst.callStack(ctx, inst.fnProcess, t.cfg.Timeout)
	t.callSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		cursor := -1
		if view, ok := inst.mem.Read(inst.buf, abi.BatchHeaderSize); ok {
			cursor = abi.Cursor(view, len(msgs))
		}
		switch {
		case errors.Is(err, ErrTimeout):
			t.fail("timeout")
		case errors.Is(err, ErrCanceled):
		default:
			t.fail("trap")
		}
		t.state.logger.Debug().Err(err).Int("records", len(msgs)).Int("cursor", cursor).Msg("wasm call failed; replacing the instance")
		t.drop(inst)
		return cursor, err
	}
	mem, _ := inst.mem.Read(0, inst.mem.Size())
	if err := abi.Decode(mem, res, msgs, out, abi.Limits{MaxOutput: t.cfg.MaxOutput, MaxOutputs: t.cfg.MaxOutputs, Module: t.mod.Name}); err != nil {
		switch {
		case errors.Is(err, abi.ErrOutputTooLarge):
			t.fail("output")
			t.release(inst)
			return -1, fmt.Errorf("%w (%d bytes)", err, t.cfg.MaxOutput)
		case errors.Is(err, abi.ErrTooManyOutputs):
			t.fail("output")
			t.release(inst)
			return -1, fmt.Errorf("%w (%d)", abi.ErrTooManyOutputs, t.cfg.MaxOutputs)
		}
		t.fail("abi")
		t.drop(inst)
		return -1, err
	}
	t.release(inst)
	return -1, nil
}

// Description returns the module's self-description (nil before Start).
func (t *Transformer) Description() *Description {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.desc
}

// KV returns the transform's key-value state.
func (t *Transformer) KV() *KV { return t.state.kv }

// Close calls sluice_close on the idle instances and releases them. Calls
// still running keep their instance until they return, which is then
// discarded.
func (t *Transformer) Close(ctx context.Context) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.reaper != nil {
		t.reaper.Stop()
		t.reaper = nil
	}
	t.mu.Unlock()
	for {
		select {
		case inst := <-t.idle:
			inst.close(ctx)
			t.gaugeAdd(-1)
			<-t.slots
		default:
			return nil
		}
	}
}

var _ component.Transform = (*Transformer)(nil)
