package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/delivery"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Options are the process-wide settings a task runs with.
type Options struct {
	Logger  zerolog.Logger
	Metrics *metrics.Set
	// ShutdownTimeout bounds the drain after ctx ends (default 30 s).
	ShutdownTimeout time.Duration
	// Clock drives retry waits (tests use a fake one).
	Clock delivery.Clock
	// HoldBlocked keeps a blocked task's source open and paused until it is
	// resumed (through the admin API), instead of ending the task.
	HoldBlocked bool
}

// ErrBlocked is wrapped by Run's error when the task stopped in Blocked.
var ErrBlocked = errors.New("task blocked")

// ErrStartFailed is wrapped by Run's error when the task stopped in
// StartFailed.
var ErrStartFailed = errors.New("task failed")

// errStopping nacks batches that were read but not handled because the task
// is stopping.
var errStopping = errors.New("task stopping before the batch was handled")

// Task runs one configured task.
type Task struct {
	cfg  Definition
	opts Options
	log  zerolog.Logger

	state  atomic.Int32
	mu     sync.Mutex
	reason error

	stats counters
	m     taskMetrics
	obs   observer

	src  component.Source
	sink component.Sink
	dlq  component.Sink
	trs  []component.Transform

	deliver    delivery.Deliverer
	dlqDeliver delivery.Deliverer
	dlqRaw     bool

	slots   chan struct{}
	tracker *tracker
	nacked  atomic.Int64 // batches nacked because the shutdown deadline passed
	// givenBack counts batches a stop left undelivered on purpose (a full
	// disk buffer did not take them, or the sink was failing them): nacked,
	// read again at the next start, not a failure.
	givenBack atomic.Int64
	stopRead  context.CancelFunc // ends reading (block, fail)
	halted    atomic.Bool        // no more processing: nack what comes
	// cycling is set while the source commits in cycles (exactly_once):
	// a sink failure that retries cannot fix then aborts the cycle.
	cycling bool

	pauseMu sync.Mutex
	paused  chan struct{} // closed when not paused; nil when running

	resumeBlocked chan struct{}

	seekReq    chan seekRequest   // rewinds asked by the admin API
	readCtx    context.Context    // the context of Reads; a seek cancels it
	cancelRead context.CancelFunc // under mu

	buf      *buffer.Buffer
	bufChunk int // largest append, in bytes
	// sinkPending: the sink of a buffered task could not be opened at
	// start (retryably); the drain opens it before its first delivery.
	// Atomic: Replay, which writes to the sink directly, checks it.
	sinkPending atomic.Bool
	drainCancel context.CancelFunc
	drainDone   chan struct{}
	bufLostMu   sync.Mutex
	bufLost     uint64    // buffer groups dropped or lost, already counted
	bufLogged   uint64    // of those, the ones already logged
	bufLoggedAt time.Time // when they were (engine clock)
	bufMetrics  []func()  // removes the backlog gauges
	// bufLeft is how many records the disk buffer still held, not
	// delivered, when the run closed it (BufferLeft).
	bufLeft atomic.Uint64
}

type taskMetrics struct {
	in, out, filtered, dlq, dropped, retries metrics.Counter
	failed                                   *metrics.CounterVec // stage, error_type
	write                                    metrics.Observer
	latency                                  metrics.Observer
	bytesIn, bytesOut                        metrics.Counter
}

// New prepares a task from def; zero settings take their defaults (see
// Settings). It does no I/O.
func New(def Definition, opts Options) *Task {
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 30 * time.Second
	}
	if opts.Clock == nil {
		opts.Clock = delivery.SystemClock{}
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	def.Engine = def.Engine.withDefaults()
	if def.Tolerance == "" {
		def.Tolerance = ToleranceAll
	}
	t := &Task{cfg: def, opts: opts, resumeBlocked: make(chan struct{}, 1), seekReq: make(chan seekRequest, 1)}
	t.log = opts.Logger.With().Str(logx.Task, def.Name).Logger()
	t.src = def.Source
	t.sink = def.Sink
	if def.DeadLetter != nil {
		t.dlq = def.DeadLetter
		if r, ok := t.dlq.(delivery.RawDeadLetters); ok {
			t.dlqRaw = r.DeadLetterRaw()
		}
	}
	t.trs = def.Transforms
	policy := def.Retry
	ms := opts.Metrics
	lbl := def.Name
	t.m = taskMetrics{
		in:       ms.Counter("events_in_total", "Events read from the source.", "task").WithLabelValues(lbl),
		out:      ms.Counter("events_out_total", "Outputs delivered to the sink.", "task").WithLabelValues(lbl),
		filtered: ms.Counter("events_filtered_total", "Events dropped by the filter or a transform.", "task").WithLabelValues(lbl),
		dlq:      ms.Counter("events_dead_lettered_total", "Events sent to the dead-letter queue.", "task").WithLabelValues(lbl),
		dropped:  ms.Counter("events_dropped_total", "Events dropped: failed events with no dead-letter queue, and what a full disk buffer with when_full = \"drop_oldest\" (or a damaged one) removed.", "task").WithLabelValues(lbl),
		retries:  ms.Counter("retries_total", "Sink and transform retries.", "task").WithLabelValues(lbl),
		failed:   ms.Counter("events_failed_total", "Event failures by stage and error class.", "task", "stage", "error_type").Curry(lbl),
		write:    ms.Histogram("sink_write_seconds", "Time to deliver one sink batch, retries included.", nil, "task").WithLabelValues(lbl),
		latency:  ms.Histogram("event_latency_seconds", "End-to-end latency: from the source read of a batch to the delivery of its outputs.", nil, "task").WithLabelValues(lbl),
		bytesIn:  ms.Counter("bytes_in_total", "Payload bytes read from the source.", "task").WithLabelValues(lbl),
		bytesOut: ms.Counter("bytes_out_total", "Payload bytes delivered to the sink.", "task").WithLabelValues(lbl),
	}
	t.obs.init(len(def.Transforms))
	t.ExposeState()
	onRetry := func(attempt int, wait time.Duration, err error) {
		t.stats.retries.Add(1)
		t.m.retries.Inc()
		t.log.Warn().Err(err).Int(logx.Attempt, attempt).Dur("wait", wait).Msg("delivery failed; retrying")
	}
	t.deliver = delivery.Deliverer{Write: t.sink.Write, Policy: policy, Clock: opts.Clock, OnRetry: onRetry}
	if t.dlq != nil {
		t.dlqDeliver = delivery.Deliverer{Write: t.dlq.Write, Policy: policy, Clock: opts.Clock, OnRetry: onRetry}
	}
	return t
}

// ExposeState registers the task's sluice_task_state series. New does;
// a reload that dropped the task's series to restart it, and then kept
// this run because the new one could not be built, does it again, so
// that /metrics still shows the task (and the state it ended in).
func (t *Task) ExposeState() {
	state := t.opts.Metrics.GaugeFunc("task_state", "Task state: 1 for the state the task is in, 0 for the others.", "task", "state")
	for st := Starting; st <= Stopped; st++ {
		state.Set(func() float64 {
			if t.State() == st {
				return 1
			}
			return 0
		}, t.cfg.Name, st.String())
	}
}

// BufferLeft reports, once Run returned, how many records the task's disk
// buffer still held undelivered when the run closed it, and the buffer's
// folder ("" for a task without a disk buffer). The next run with the same
// buffer delivers them; no other run does.
func (t *Task) BufferLeft() (records uint64, dir string) {
	if t.cfg.Engine.Buffer == nil {
		return 0, ""
	}
	return t.bufLeft.Load(), t.cfg.Engine.Buffer.Dir
}

// Name returns the task name.
func (t *Task) Name() string { return t.cfg.Name }

// Description returns the task's description.
func (t *Task) Description() string { return t.cfg.Description }

// State returns the task's current state.
func (t *Task) State() State { return State(t.state.Load()) }

// Reason returns the error behind a Blocked or StartFailed state.
func (t *Task) Reason() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

// Stats returns the task's counters.
func (t *Task) Stats() Stats { return t.stats.snapshot() }

func (t *Task) setState(s State) { t.state.Store(int32(s)) }

// Pause stops reading from the source; in-flight batches still finish.
func (t *Task) Pause() {
	t.pauseMu.Lock()
	defer t.pauseMu.Unlock()
	if t.paused != nil || t.State() != Running {
		return
	}
	t.paused = make(chan struct{})
	t.setState(Paused)
	if p, ok := t.src.(component.Pauser); ok {
		p.Pause()
	}
}

// Resume undoes Pause, or resumes a blocked task held by HoldBlocked.
func (t *Task) Resume() {
	t.pauseMu.Lock()
	defer t.pauseMu.Unlock()
	if t.State() == Blocked {
		// Under pauseMu: holdBlocked leaves Blocked and drops the resumes
		// asked meanwhile under it too, so none is left for the next block.
		select {
		case t.resumeBlocked <- struct{}{}:
		default:
		}
		return
	}
	if t.paused == nil {
		return
	}
	close(t.paused)
	t.paused = nil
	if t.State() == Paused {
		t.setState(Running)
	}
	if p, ok := t.src.(component.Pauser); ok {
		p.Resume()
	}
}

// setRunning sets the state Running, at the start of a run or once a
// blocked task was resumed. Under pauseMu, as Resume's check for Blocked:
// a Resume asked while the task was resuming (a second click, while the
// source rewound) is answered by this resume, not kept for the next block,
// which would then resume by itself.
func (t *Task) setRunning() {
	t.pauseMu.Lock()
	defer t.pauseMu.Unlock()
	// The drain runs already and may have halted the task (a pending sink
	// refused it): its state stays.
	t.mu.Lock()
	if t.reason == nil {
		t.setState(Running)
	}
	t.mu.Unlock()
	select {
	case <-t.resumeBlocked:
	default:
	}
}

func (t *Task) isPaused() bool {
	t.pauseMu.Lock()
	defer t.pauseMu.Unlock()
	return t.paused != nil
}

// waitResume waits while the task is paused, serving rewinds meanwhile.
func (t *Task) waitResume(ctx, workCtx context.Context) {
	for {
		t.pauseMu.Lock()
		ch := t.paused
		t.pauseMu.Unlock()
		if ch == nil {
			return
		}
		select {
		case <-ch:
			return
		case <-ctx.Done():
			return
		case req := <-t.seekReq:
			req.reply <- t.doSeek(workCtx, req)
		}
	}
}

// What blocked a task, in its log line (block).
const (
	blockedByTolerance = `errors.tolerance = "none"`
	blockedByDLQ       = "the dead-letter queue could not take a failed event"
	blockedByBuffer    = "the disk buffer failed"
)

// block halts the task in state Blocked with err, as stop does; why says
// what blocked it (blockedBy...), for the log.
func (t *Task) block(why string, err error) { t.halt(Blocked, why, err) }

// stop halts the task in state s (Blocked or StartFailed) with err: reading
// ends and what is still queued is nacked, keeping the source position.
func (t *Task) stop(s State, err error) { t.halt(s, "", err) }

func (t *Task) halt(s State, why string, err error) {
	t.mu.Lock()
	if t.reason == nil {
		t.reason = err
		t.setState(s)
		t.obs.addError("task", err.Error())
		if s == Blocked {
			t.log.Error().Err(err).Msg("task blocked (" + why + "); its position is kept and it resumes from there when restarted")
		} else {
			t.log.Error().Err(err).Msg("task failed; its position is kept")
		}
	}
	// Under t.mu: runOnce sets it, and the disk buffer's drain may stop the
	// task from its own goroutine meanwhile (review: a data race).
	stopRead := t.stopRead
	t.mu.Unlock()
	t.halted.Store(true)
	if stopRead != nil {
		stopRead()
	}
}

// Run opens the components, processes events until the source ends or ctx
// ends, drains and closes. It returns nil when the task ended normally (a
// finite source was exhausted, or ctx ended and everything read was handled
// within the shutdown deadline).
func (t *Task) Run(ctx context.Context) error {
	t.setState(Starting)
	t.obs.taps.start()
	// Last, once the state is final: the run's taps end with it.
	defer t.obs.taps.end()
	sampleCtx, stopSampling := context.WithCancel(context.WithoutCancel(ctx))
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t.sampleRates(sampleCtx)
	}()
	defer func() {
		stopSampling()
		<-sampled // Run returns with the rate at 0
	}()
	// The disk buffer first: it is local, and a task whose buffer is held
	// by another process must not join a consumer group.
	if err := t.openBuffer(); err != nil {
		t.stop(StartFailed, err)
		return fmt.Errorf("%w: %s: %w", ErrStartFailed, t.cfg.Name, err)
	}
	if err := t.open(ctx); err != nil {
		if t.buf != nil {
			t.buf.Close()
			t.bufLeft.Store(t.buf.Stats().Records)
			t.unregisterBufferMetrics()
		}
		if errors.Is(err, errOpenStopped) {
			// Stopped while still opening (retrying a sink out of
			// reach): nothing was read, so nothing is lost; a stop, not a
			// failure (`sluice run` exits 0, systemd logs no failed stop).
			t.setState(Stopped)
			t.log.Info().Err(err).Msg("task stopped while opening")
			return nil
		}
		t.stop(StartFailed, err)
		return fmt.Errorf("%w: %s: %w", ErrStartFailed, t.cfg.Name, err)
	}
	t.startDrain()
	var readErr error
	for {
		t.setRunning()
		t.log.Info().Str("source", t.cfg.SourceType).Str("sink", t.cfg.SinkType).Int("concurrency", t.cfg.Engine.Concurrency).Msg("task running")
		readErr = t.runOnce(ctx)
		if t.buf != nil && ctx.Err() == nil && !t.halted.Load() {
			// A finite run ends once the buffer delivered what it holds.
			t.waitDrained(ctx)
		}
		if t.State() == Blocked && t.opts.HoldBlocked && ctx.Err() == nil {
			t.stopDrain()
			if t.holdBlocked(ctx) {
				t.startDrain()
				continue
			}
		}
		break
	}
	t.stopDrain()
	t.closeAll(ctx)

	switch t.State() {
	case Blocked:
		return fmt.Errorf("%w: %s: %w", ErrBlocked, t.cfg.Name, t.Reason())
	case StartFailed:
		return fmt.Errorf("%w: %s: %w", ErrStartFailed, t.cfg.Name, t.Reason())
	}
	if readErr != nil {
		t.stop(StartFailed, readErr)
		return fmt.Errorf("%w: %s: %w", ErrStartFailed, t.cfg.Name, readErr)
	}
	t.setState(Stopped)
	if n := t.nacked.Load(); n > 0 {
		return fmt.Errorf("%s: shutdown deadline (%s) passed with %d batches not delivered; they were not committed and will be read again", t.cfg.Name, t.opts.ShutdownTimeout, n)
	}
	if n := t.givenBack.Load(); n > 0 {
		t.log.Info().Int64("batches", n).Msg("batches were left undelivered by the stop (the sink was failing them, or the disk buffer was full): they were not acknowledged, and the source reads them again at the next start (what an append under way had stored of its batch is delivered twice)")
	}
	s := t.Stats()
	t.log.Info().Uint64("in", s.In).Uint64("delivered", s.Delivered).Uint64("filtered", s.Filtered).
		Uint64("dead_lettered", s.DeadLettered).Uint64("dropped", s.Dropped).Uint64("out", s.Out).Msg("task stopped")
	return nil
}

// closeAll closes the source, the transforms, the sinks and the buffer.
func (t *Task) closeAll(ctx context.Context) {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.opts.ShutdownTimeout)
	defer cancel()
	if err := t.src.Close(closeCtx); err != nil {
		t.log.Error().Err(err).Msg("closing the source")
	}
	closeTransforms(closeCtx, t.trs)
	if err := t.sink.Close(closeCtx); err != nil {
		t.log.Error().Err(err).Msg("closing the sink")
	}
	if t.dlq != nil {
		if err := t.dlq.Close(closeCtx); err != nil {
			t.log.Error().Err(err).Msg("closing the dead-letter sink")
		}
	}
	if t.buf != nil {
		if err := t.buf.Close(); err != nil {
			t.log.Error().Err(err).Msg("closing the disk buffer")
		}
		t.bufLeft.Store(t.buf.Stats().Records)
		// Close counts the records the drain held undelivered whose
		// segment drop_oldest deleted: no later run reads them.
		t.countBufferDrops()
		t.logBufferDrops(true)
		t.unregisterBufferMetrics()
	}
}

// runOnce reads and processes until the source ends, ctx ends or the task
// halts, then waits for the workers to settle every batch read.
func (t *Task) runOnce(ctx context.Context) error {
	readCtx, stopRead := context.WithCancel(ctx)
	t.mu.Lock()
	t.stopRead = stopRead
	halted := t.reason != nil
	t.mu.Unlock()
	defer stopRead()
	if halted {
		// The drain, started first, halted the task before this run could
		// be stopped (a pending sink refused it at once): read nothing.
		return nil
	}

	// Work outlives ctx by the shutdown deadline so that what was read is
	// delivered and committed.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stopDeadline := context.AfterFunc(ctx, func() {
		time.AfterFunc(t.opts.ShutdownTimeout, cancelWork)
	})
	defer stopDeadline()

	e := t.cfg.Engine
	var cyc component.Cycler
	if t.cfg.ExactlyOnce {
		cyc, _ = t.src.(component.Cycler)
	}
	t.cycling = cyc != nil
	t.slots = make(chan struct{}, e.MaxInFlight)
	t.tracker = newTracker(func() { <-t.slots })
	t.tracker.onNack = t.uncountSettled
	// A stop (or a halt) ends at once an append waiting for room in a full
	// disk buffer: the drain frees room only if the sink comes back, so
	// the stop would wait out the whole shutdown deadline and fail. The
	// batch was not acknowledged: the source reads it again.
	appendCtx, cancelAppend := context.WithCancel(workCtx)
	defer cancelAppend()
	// A source that cannot send its batches again (stdin) would lose
	// them: for it the stop waits within the deadline, as for a delivery.
	_, oneShot := t.src.(component.OneShot)
	if !oneShot {
		defer context.AfterFunc(readCtx, cancelAppend)()
	}
	workers := make([]*worker, e.Concurrency)
	var wg sync.WaitGroup
	for i := range workers {
		w := t.newWorker(i)
		w.appendCtx = appendCtx
		w.deliver = t.deliver
		if !oneShot {
			w.deliver.Interrupt = readCtx.Done()
		}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(workCtx)
		}()
	}
	readErr := t.read(readCtx, workCtx, workers, cyc)
	for _, w := range workers {
		close(w.in)
	}
	wg.Wait()
	if cyc != nil {
		t.endCycle(workCtx, cyc)
	}
	return readErr
}

// endCycle waits until every batch read was acknowledged, then commits the
// source's cycle, or aborts it when any batch was not handled.
func (t *Task) endCycle(ctx context.Context, cyc component.Cycler) {
	if err := t.tracker.waitIdle(ctx); err != nil {
		_ = cyc.EndCycle(context.WithoutCancel(ctx), false)
		return
	}
	commit := t.tracker.takeNacks() == 0 && !t.halted.Load()
	if err := cyc.EndCycle(ctx, commit); err != nil {
		if component.ClassOf(err) == component.ClassTaskPermanent {
			// No retry fixes it (a fenced producer): stop now. Left to the
			// next cycle's begin, an idle task stayed Running, holding its
			// partitions in the group, until a record arrived.
			t.stop(StartFailed, err)
			return
		}
		t.log.Warn().Err(err).Bool("commit", commit).Msg("ending the transaction failed; its records will be read again")
	}
}

// holdBlocked keeps a blocked task's source paused, in place, until Resume
// (admin API) or ctx ends. It reports whether the task was resumed, with
// the source rewound to its last committed position.
func (t *Task) holdBlocked(ctx context.Context) bool {
	if p, ok := t.src.(component.Pauser); ok {
		p.Pause()
	}
	t.log.Warn().Msg("task blocked; resume it through the admin API (POST /tasks/{name}/resume) once the cause is fixed")
	select {
	case <-ctx.Done():
		return false
	case <-t.resumeBlocked:
	}
	if r, ok := t.src.(component.Rewinder); ok {
		if err := r.Rewind(ctx); err != nil {
			t.mu.Lock()
			t.reason = fmt.Errorf("resuming: %w", err)
			t.mu.Unlock()
			t.setState(StartFailed)
			return false
		}
	}
	// A pause from before the block ends with it: the operator asked the
	// task to run. Left in force, the task read nothing while its state
	// said Running, and Pause did nothing (review).
	t.pauseMu.Lock()
	if t.paused != nil {
		close(t.paused)
		t.paused = nil
	}
	t.pauseMu.Unlock()
	if p, ok := t.src.(component.Pauser); ok {
		p.Resume()
	}
	t.mu.Lock()
	t.reason = nil
	t.mu.Unlock()
	t.halted.Store(false)
	t.givenBack.Store(0) // read again from here: the stop's log counts its own
	t.log.Info().Msg("task resumed from its last committed position")
	return true
}

// errOpenStopped marks open's error when ctx ended it, not a failure.
var errOpenStopped = errors.New("stopped while opening")

// open opens the components in dependency order: sinks first, so that the
// first event read has somewhere to go. A retryable failure is retried with
// a capped backoff until ctx ends; a task-permanent one fails the task.
func (t *Task) open(ctx context.Context) error {
	type step struct {
		what  string
		open  func(context.Context) error
		close func(context.Context) error
	}
	steps := []step{{"sink", t.sink.Open, t.sink.Close}}
	if t.dlq != nil {
		steps = append(steps, step{"dead-letter sink", t.dlq.Open, t.dlq.Close})
	}
	for i, tr := range t.trs {
		if o, ok := tr.(component.Opener); ok {
			s := step{what: fmt.Sprintf("transform[%d]", i), open: o.Open}
			if c, ok := tr.(component.Closer); ok {
				s.close = c.Close
			}
			steps = append(steps, s)
		}
	}
	steps = append(steps, step{"source", t.src.Open, t.src.Close})

	var opened []step
	undo := func() {
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.opts.ShutdownTimeout)
		defer cancel()
		for i := len(opened) - 1; i >= 0; i-- {
			if opened[i].close != nil {
				_ = opened[i].close(c)
			}
		}
	}
	for i, s := range steps {
		backoff := 500 * time.Millisecond
		for {
			err := s.open(ctx)
			if err == nil {
				break
			}
			// A component that failed to open may hold half its resources.
			opened = append(opened, s)
			if ctx.Err() != nil || component.ClassOf(err) != component.ClassRetryable {
				// Decided now: undo may take the shutdown timeout, and a
				// stop meanwhile must not turn a refusal into a clean stop.
				stopped := ctx.Err() != nil && (component.ClassOf(err) == component.ClassRetryable || errors.Is(err, ctx.Err()))
				undo()
				if stopped {
					return fmt.Errorf("open %s (%w): %w", s.what, errOpenStopped, err)
				}
				return fmt.Errorf("open %s: %w", s.what, err)
			}
			if i == 0 && t.buf != nil {
				// The disk buffer takes the events while the sink is out of
				// reach, as it does when the link drops later: the source
				// opens now (a box booting with its uplink down keeps reading
				// its sensors) and the drain opens the sink once it can.
				// It stays in opened: it may hold half its resources.
				t.log.Warn().Err(err).Str(logx.Component, s.what).Msg("cannot open the sink; the source is read into the disk buffer, and the sink is opened once it can be")
				t.obs.addError("sink", "cannot open (the source is read into the disk buffer): "+err.Error())
				t.sinkPending.Store(true)
				break
			}
			opened = opened[:len(opened)-1]
			t.log.Warn().Err(err).Str(logx.Component, s.what).Dur("retry_in", backoff).Msg("cannot open; retrying")
			if err := t.opts.Clock.Sleep(ctx, backoff); err != nil {
				undo()
				return fmt.Errorf("open %s (%w): %w", s.what, errOpenStopped, ctx.Err())
			}
			backoff = min(backoff*2, 30*time.Second)
		}
		if i != 0 || !t.sinkPending.Load() {
			opened = append(opened, s)
		}
	}
	return nil
}

// openPendingSink opens the sink that open left to the drain, with the
// same backoff, until it opens, ctx ends (false) or the failure is one no
// retry fixes (false, the task failed).
func (t *Task) openPendingSink(ctx context.Context) bool {
	backoff := 500 * time.Millisecond
	for t.sinkPending.Load() {
		err := t.sink.Open(ctx)
		switch {
		case err == nil:
			t.sinkPending.Store(false)
			t.log.Info().Msg("the sink is open; the disk buffer drains")
		case ctx.Err() != nil:
			return false
		case component.ClassOf(err) != component.ClassRetryable:
			t.stop(StartFailed, fmt.Errorf("open sink: %w", err))
			return false
		default:
			// Running on the buffer: the admin API's recent errors show why
			// nothing is delivered.
			t.obs.addError("sink", "cannot open (the events wait in the disk buffer): "+err.Error())
			t.log.Warn().Err(err).Str(logx.Component, "sink").Dur("retry_in", backoff).Msg("cannot open; retrying")
			if t.opts.Clock.Sleep(ctx, backoff) != nil {
				return false
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
	return true
}

// read pulls batches and hands them to workers until the source ends, ctx
// ends or the task halts. It returns a source error that stopped the task.
func (t *Task) read(ctx, workCtx context.Context, workers []*worker, cyc component.Cycler) error {
	e := t.cfg.Engine
	rr := 0
	backoff := 100 * time.Millisecond
	for {
		if cyc != nil && t.isPaused() {
			// A paused task reads nothing: end the open cycle now rather
			// than leave its transaction open until the brokers time it out.
			t.endCycle(workCtx, cyc)
		}
		t.serveSeek(workCtx)
		t.waitResume(ctx, workCtx)
		select {
		case t.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		rctx := t.readContext(ctx)
		b, err := t.src.Read(rctx)
		if err != nil {
			<-t.slots
			switch {
			case errors.Is(err, io.EOF):
				return nil
			case ctx.Err() != nil:
				return nil
			case rctx.Err() != nil:
				continue // a rewind interrupted the read: serve it
			case component.ClassOf(err) == component.ClassTaskPermanent:
				return err
			}
			t.log.Warn().Err(err).Dur("retry_in", backoff).Msg("source read failed; retrying")
			t.obs.addError("source", err.Error())
			if t.opts.Clock.Sleep(ctx, backoff) != nil {
				return nil
			}
			backoff = min(backoff*2, 30*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		n := len(b.Messages)
		var bytes int
		for i := range b.Messages {
			bytes += len(b.Messages[i].Payload)
		}
		t.stats.in.Add(uint64(n))
		t.stats.bytesIn.Add(uint64(bytes))
		t.m.in.Add(uint64(n))
		t.m.bytesIn.Add(uint64(bytes))
		t.obs.counts[stageSource].in.Add(uint64(n))
		if t.obs.taps.active(stageSource) {
			t.obs.taps.offer(stageSource, b.Messages)
		}
		readAt := time.Now()
		if n > 0 {
			b.Ack = t.uncountNacked(b.Ack, n, bytes)
		}
		switch {
		case n == 0:
			// An empty batch lets a source that waits for records end a
			// due cycle (a transaction must not stay open while idle).
			p := t.tracker.add(b.Lane, b.Ack, 1)
			t.tracker.finish(b.Lane, p, nil)
		case len(workers) == 1:
			p := t.tracker.add(b.Lane, b.Ack, 1)
			workers[0].in <- &job{msgs: b.Messages, lane: b.Lane, p: p, readAt: readAt}
		case e.Order == OrderNone:
			p := t.tracker.add(b.Lane, b.Ack, 1)
			workers[rr%len(workers)].in <- &job{msgs: b.Messages, lane: b.Lane, p: p, readAt: readAt}
			rr++
		case e.Order == OrderKey:
			t.dispatchByKey(b, workers, readAt)
		default:
			p := t.tracker.add(b.Lane, b.Ack, 1)
			workers[int(fnv32a(b.Lane)%uint32(len(workers)))].in <- &job{msgs: b.Messages, lane: b.Lane, p: p, readAt: readAt}
		}
		if cyc != nil && cyc.CycleDue() {
			t.endCycle(workCtx, cyc)
		}
	}
}

// uncountNacked wraps a batch's ack so that a batch not handled (acked
// with an error: it is read again after a resume, a failed dead-letter
// write or a rewind, or by the next run) leaves the in counters as it
// found them: a batch read twice is counted once, and once the task is idle
// in = delivered + filtered + dead_lettered + dropped.
func (t *Task) uncountNacked(ack func(error), n, bytes int) func(error) {
	return func(err error) {
		if err != nil {
			t.stats.in.Add(^uint64(n - 1))
			t.stats.bytesIn.Add(^uint64(bytes - 1))
		}
		if ack != nil {
			ack(err)
		}
	}
}

// uncountSettled takes off the counters what the settled parts of a nacked
// batch counted: the batch is read again and counted then. (A part settled
// before another part or an earlier batch failed may have been written: it
// is written again, and counted once.)
func (t *Task) uncountSettled(p *pending) {
	c := &p.counted
	for _, x := range []struct {
		total *atomic.Uint64
		n     uint64
	}{{&t.stats.delivered, c.delivered.Load()}, {&t.stats.filtered, c.filtered.Load()}, {&t.stats.deadLettered, c.deadLettered.Load()}, {&t.stats.dropped, c.dropped.Load()}} {
		if x.n > 0 {
			x.total.Add(^uint64(x.n - 1))
		}
	}
}

// dispatchByKey spreads one batch over the workers by record key, so that
// records of one key stay in order on one worker.
func (t *Task) dispatchByKey(b component.Batch, workers []*worker, readAt time.Time) {
	parts := make([][]message.Message, len(workers))
	for i := range b.Messages {
		w := int(fnv32a(b.Messages[i].Key) % uint32(len(workers)))
		parts[w] = append(parts[w], b.Messages[i])
	}
	n := 0
	for _, p := range parts {
		if len(p) > 0 {
			n++
		}
	}
	p := t.tracker.add(b.Lane, b.Ack, n)
	for w, msgs := range parts {
		if len(msgs) > 0 {
			workers[w].in <- &job{msgs: msgs, lane: b.Lane, p: p, readAt: readAt}
		}
	}
}

// fnv32a is FNV-1a over s, inline: hash/fnv's Hash32 would allocate once per
// record on the order = "key" path.
func fnv32a[T string | []byte](s T) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}
