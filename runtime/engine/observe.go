package engine

import (
	"context"
	"errors"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// This file holds what an operator watches of a running task (the admin API
// serves it): counts per stage, the last errors, the event rate over the
// last minutes, and live taps. Everything on the event path is an atomic
// add per batch, or an atomic load when no tap is attached.

// StageStats counts what went through one stage.
type StageStats struct {
	ID     string `json:"id"`   // "source", "filter", "transform[N]", "sink"
	Kind   string `json:"kind"` // "source", "filter", "transform", "sink"
	Type   string `json:"type"` // the component type ("kafka"); "filter" for the filter
	In     uint64 `json:"in"`
	Out    uint64 `json:"out"`
	Failed uint64 `json:"failed"`
}

// StageError is one recent failure of a task.
type StageError struct {
	Time    time.Time `json:"time"`
	Stage   string    `json:"stage"`
	Message string    `json:"message"`
}

// RateHistory is how many 1-second samples of the event rate a task keeps
// (5 minutes).
const RateHistory = 300

// maxErrors is how many recent errors a task keeps.
const maxErrors = 20

type stageCounter struct{ in, out, failed atomic.Uint64 }

// observer is the per-task state behind Stages, Errors, Rate and taps.
type observer struct {
	ids    []string       // stage ids by index: source, filter, transform[N]..., sink
	counts []stageCounter // by stage index
	taps   taps

	errMu  sync.Mutex
	errs   [maxErrors]StageError
	errN   int // errors recorded so far
	rateMu sync.Mutex
	rates  [RateHistory]float64
	rateN  int // samples recorded so far
	lastIn uint64
	lastAt time.Time

	latencyNanos atomic.Int64 // the last batch's read-to-delivered time
}

// Stage indexes: the source is 0, the filter 1, transform k is 2+k and the
// sink comes last.
const (
	stageSource = 0
	stageFilter = 1
)

func (o *observer) init(transforms int) {
	o.ids = make([]string, 3+transforms)
	o.ids[stageSource], o.ids[stageFilter] = "source", "filter"
	for k := range transforms {
		o.ids[2+k] = "transform[" + strconv.Itoa(k) + "]"
	}
	o.ids[len(o.ids)-1] = "sink"
	o.counts = make([]stageCounter, len(o.ids))
	o.taps.init(len(o.ids))
}

func (o *observer) sink() int { return len(o.ids) - 1 }

func (o *observer) addError(stage, msg string) {
	o.errMu.Lock()
	o.errs[o.errN%maxErrors] = StageError{Time: time.Now().UTC(), Stage: stage, Message: msg}
	o.errN++
	o.errMu.Unlock()
}

// Stages returns the counts of each stage, in pipeline order.
func (t *Task) Stages() []StageStats {
	o := &t.obs
	out := make([]StageStats, len(o.ids))
	for i, id := range o.ids {
		s := StageStats{ID: id, In: o.counts[i].in.Load(), Out: o.counts[i].out.Load(), Failed: o.counts[i].failed.Load()}
		switch {
		case i == stageSource:
			s.Kind, s.Type = "source", t.cfg.SourceType
		case i == stageFilter:
			s.Kind, s.Type = "filter", "filter"
		case i == o.sink():
			s.Kind, s.Type = "sink", t.cfg.SinkType
		default:
			s.Kind = "transform"
			if k := i - 2; k < len(t.cfg.TransformTypes) {
				s.Type = t.cfg.TransformTypes[k]
			}
		}
		out[i] = s
	}
	return out
}

// Errors returns the task's last errors (at most 20), oldest first.
func (t *Task) Errors() []StageError {
	o := &t.obs
	o.errMu.Lock()
	defer o.errMu.Unlock()
	n := min(o.errN, maxErrors)
	out := make([]StageError, 0, n)
	for i := o.errN - n; i < o.errN; i++ {
		out = append(out, o.errs[i%maxErrors])
	}
	return out
}

// Rate returns the events read per second over the last second, and the
// last samples (at most RateHistory, one a second, oldest first). A task
// samples from Run until it ends.
func (t *Task) Rate() (float64, []float64) {
	o := &t.obs
	o.rateMu.Lock()
	defer o.rateMu.Unlock()
	n := min(o.rateN, RateHistory)
	hist := make([]float64, 0, n)
	for i := o.rateN - n; i < o.rateN; i++ {
		hist = append(hist, o.rates[i%RateHistory])
	}
	var last float64
	if n > 0 {
		last = hist[n-1]
	}
	return last, hist
}

// Latency returns the time the last delivered batch took from being read to
// being delivered (0 before the first).
func (t *Task) Latency() time.Duration { return time.Duration(t.obs.latencyNanos.Load()) }

// sampleRate records one rate sample.
func (t *Task) sampleRate(now time.Time) {
	o := &t.obs
	in := t.stats.in.Load()
	o.rateMu.Lock()
	defer o.rateMu.Unlock()
	if !o.lastAt.IsZero() {
		// in goes down when batches read are nacked (uncountNacked).
		if dt := now.Sub(o.lastAt).Seconds(); dt > 0 && in >= o.lastIn {
			// Two decimals: a ticker's jitter is no information.
			o.rates[o.rateN%RateHistory] = math.Round(float64(in-o.lastIn)/dt*100) / 100
			o.rateN++
		}
	}
	o.lastIn, o.lastAt = in, now
}

// sampleRates samples the rate every second until ctx ends; then the rate
// is 0 (a stopped task reads nothing), and the next run starts afresh.
func (t *Task) sampleRates(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	t.sampleRate(time.Now())
	for {
		select {
		case <-ctx.Done():
			o := &t.obs
			o.rateMu.Lock()
			o.rates[o.rateN%RateHistory] = 0
			o.rateN++
			o.lastAt = time.Time{}
			o.rateMu.Unlock()
			return
		case now := <-tick.C:
			t.sampleRate(now)
		}
	}
}

// TapRecord is one event seen at a stage.
type TapRecord struct {
	Stage string    `json:"stage"`
	Time  time.Time `json:"time"`
	Event []byte    `json:"-"` // the payload as it leaves the stage (a copy)
}

// Tap limits.
const (
	MaxTaps     = 4                      // concurrent taps per task
	tapInterval = 100 * time.Millisecond // at most 10 records a second per tap
	tapBuffer   = 16                     // records a slow reader may fall behind
)

// ErrTooManyTaps is returned by Tap when MaxTaps taps are attached.
var ErrTooManyTaps = errors.New("too many taps on this task (at most 4 at once): close one and try again")

// ErrNoStage is returned for a stage id the task does not have.
var ErrNoStage = errors.New("no such stage")

type tap struct {
	stage int
	id    string
	ch    chan TapRecord
	next  time.Time // earliest time of the next record
}

// taps are the live taps of a task. on is read on the event path: when it
// is zero for a stage, offering costs one atomic load.
type taps struct {
	on   []atomic.Int32
	mu   sync.Mutex
	list []*tap
	// ended is set when the task's run ended: its taps were closed, and
	// a tap attached since gets a closed channel.
	ended bool
}

func (tp *taps) init(stages int) { tp.on = make([]atomic.Int32, stages) }

// active reports, cheaply, whether a tap watches stage i.
func (tp *taps) active(i int) bool { return tp.on[i].Load() > 0 }

// start opens the taps for a run.
func (tp *taps) start() {
	tp.mu.Lock()
	tp.ended = false
	tp.mu.Unlock()
}

// end closes every tap's channel, for the run ended: no record will come,
// and a tap of the next run (a reload makes a new task) must be attached
// to it.
func (tp *taps) end() {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.ended = true
	for _, tap := range tp.list {
		tp.on[tap.stage].Add(-1)
		close(tap.ch)
	}
	tp.list = nil
}

// offer hands taps on stage i a sample of msgs, never blocking: a tap
// takes at most one record per tapInterval, and a record its reader has no
// room for is dropped.
func (tp *taps) offer(i int, msgs []message.Message) {
	if len(msgs) == 0 {
		return
	}
	now := time.Now()
	tp.mu.Lock()
	defer tp.mu.Unlock()
	for _, tap := range tp.list {
		if tap.stage != i || now.Before(tap.next) {
			continue
		}
		tap.next = now.Add(tapInterval)
		m := &msgs[sampleIndex(now, len(msgs))]
		rec := TapRecord{Stage: tap.id, Time: now.UTC(), Event: append([]byte(nil), m.Payload...)}
		select {
		case tap.ch <- rec:
		default:
		}
	}
}

// sampleIndex picks the record of a batch of n that a tap shows at now: a
// different one each time rather than always the first. In uint64: the
// microseconds since 1970 overflow a 32-bit int, and a negative index
// crashed the process on 32-bit arm.
func sampleIndex(now time.Time, n int) int {
	return int(uint64(now.UnixMicro()) % uint64(n))
}

// Tap attaches a live tap to stage (a stage id of Stages). It returns the
// records, at most 10 a second, and a func that detaches the tap and
// closes the channel. The pipeline never waits for a tap. The channel is
// closed too when the task's run ends (at once for a task whose run
// ended).
func (t *Task) Tap(stage string) (<-chan TapRecord, func(), error) {
	o := &t.obs
	i := -1
	for k, id := range o.ids {
		if id == stage {
			i = k
		}
	}
	if i < 0 {
		return nil, nil, ErrNoStage
	}
	tp := &o.taps
	tp.mu.Lock()
	defer tp.mu.Unlock()
	if tp.ended {
		ch := make(chan TapRecord)
		close(ch)
		return ch, func() {}, nil
	}
	if len(tp.list) >= MaxTaps {
		return nil, nil, ErrTooManyTaps
	}
	tap := &tap{stage: i, id: stage, ch: make(chan TapRecord, tapBuffer)}
	tp.list = append(tp.list, tap)
	tp.on[i].Add(1)
	var once sync.Once
	stop := func() {
		once.Do(func() {
			tp.mu.Lock()
			defer tp.mu.Unlock()
			for k, x := range tp.list {
				if x == tap {
					// Still attached: the run has not ended it.
					tp.list = append(tp.list[:k], tp.list[k+1:]...)
					tp.on[i].Add(-1)
					close(tap.ch)
					break
				}
			}
		})
	}
	return tap.ch, stop, nil
}
