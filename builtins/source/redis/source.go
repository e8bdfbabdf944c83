package redis

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/redisconf"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// ErrClosed is returned by Read once Close was called.
var ErrClosed = errors.New("redis source closed")

// Register adds the redis source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "redis",
		Summary: "Read a Redis stream in a consumer group (XREADGROUP), acknowledging entries (XACK) after delivery.",
		Description: "Reads a Redis stream as one consumer of a consumer group, created when missing. Each entry becomes a " +
			"CloudEvent whose `data` holds the stream, the entry id and its fields; the event id is `<stream>-<entry id>`. " +
			"An entry is acknowledged only once the engine delivered, filtered or dead-lettered its batch. On start the " +
			"consumer first reads again the entries it had not acknowledged; entries another consumer left pending for " +
			"longer than `claim_idle` are claimed (XAUTOCLAIM). Processes in one group share the entries. " +
			"See docs/connectors/redis.md.",
		Example: `[source]
type = "redis"
url = "redis://127.0.0.1:6379/0"
stream = "orders"
group = "orders-to-nats"
consumer = "worker-1"
`,
		New:   newConfig,
		Build: build,
	})
}

// Source is the redis source.
type Source struct {
	cfg      *Config
	client   func() (*redisconf.Client, error)
	addr     string
	db       int
	group    string
	consumer string
	lane     string
	log      zerolog.Logger
	m        sourceMetrics
	enc      *encoder // used by the fetch loop only

	mu          sync.Mutex
	rdb         *redisconf.Client
	ready       []fetched     // fetched, not yet handed out (at most one)
	wake        chan struct{} // closed and replaced when ready grows, room frees, or fatal is set
	fatal       error
	outstanding int  // batches fetched and not settled
	rewind      bool // re-read this consumer's pending entries once nothing is outstanding
	flights     map[*flight]struct{}
	closed      bool
	stop        context.CancelFunc
	loopDone    chan struct{}

	// Acknowledgements wait in ackq; sendAcks sends them in one XACK.
	ackq    []any
	spare   []*flight // settled batches, for reuse (at most maxSpare)
	ackSend sync.Mutex
	ackWake chan struct{}
	ackStop chan struct{}
	ackDone chan struct{}
}

// fetched is a batch read from Redis.
type fetched struct {
	f *flight
	b batchData
}

// flight is one batch's entry ids, from the read until it is settled.
type flight struct {
	ids []any     // as the reply held them: sent back in XACK without boxing again
	at  time.Time // read, or last reported still in progress (XCLAIM)
	b   batchData // the batch's memory, reused once it is settled
	use uint64    // bumped at each reuse: a late second Ack of an earlier use is ignored
}

type sourceMetrics struct {
	records  metrics.Counter
	claimed  metrics.Counter
	ackErrs  metrics.Counter
	readErrs metrics.Counter
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	group := cfg.Group
	if group == "" {
		group = "sluice-" + env.Task
	}
	consumer := cfg.Consumer
	if consumer == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return nil, fmt.Errorf("redis source: no host name to name the consumer (%v); set consumer", err)
		}
		consumer = h
	}
	// A blocking XREADGROUP holds its connection for up to block. Two
	// connections are in use: the fetch loop's and the acknowledgements'.
	client := func() (*redisconf.Client, error) {
		return cfg.conn().Client("sluice-"+env.Task, env.Dir, max(3*time.Second, cfg.Block.D()+3*time.Second), 2)
	}
	probe, err := client() // checks the URL and the TLS files; connects nothing
	if err != nil {
		return nil, err
	}
	s := &Source{
		cfg: cfg, client: client, addr: probe.Addr(), db: probe.DB(), group: group, consumer: consumer,
		lane: "redis:" + cfg.Stream,
		log:  env.Logger,
		enc:  newEncoder(probe.Addr(), probe.DB(), cfg.Stream, cfg.ValueFormat, env.MaxEvent),
		wake: make(chan struct{}),
	}
	lbl := env.Task
	ms := env.Metrics
	s.m = sourceMetrics{
		records:  ms.Counter("redis_stream_records_total", "Stream entries read.", "task").WithLabelValues(lbl),
		claimed:  ms.Counter("redis_stream_claimed_total", "Entries claimed from consumers that left them pending longer than claim_idle.", "task").WithLabelValues(lbl),
		ackErrs:  ms.Counter("redis_stream_ack_errors_total", "XACK calls that failed and were retried.", "task").WithLabelValues(lbl),
		readErrs: ms.Counter("redis_stream_read_errors_total", "XREADGROUP or XAUTOCLAIM calls that failed and were retried.", "task").WithLabelValues(lbl),
	}
	return s, nil
}

// Open connects, makes sure the group exists (creating it, and the
// stream, when allowed) and starts reading: this consumer's pending
// entries first.
func (s *Source) Open(ctx context.Context) error {
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
	where := fmt.Sprintf("open redis source: %s", redisconf.Redact(s.cfg.URL))
	if err := rdb.Ping(ctx, where); err != nil {
		rdb.Close()
		return err
	}
	if err := s.ensureGroup(ctx, rdb); err != nil {
		rdb.Close()
		return fmt.Errorf("open redis source: %w", err)
	}
	lctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		stop()
		rdb.Close()
		return nil
	}
	s.rdb, s.stop = rdb, stop
	s.flights = map[*flight]struct{}{}
	s.loopDone, s.ackWake, s.ackStop, s.ackDone = make(chan struct{}), make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
	go s.loop(lctx, rdb)
	go s.acker(rdb)
	s.log.Info().Str("server", s.addr).Int("db", s.db).Str("stream", s.cfg.Stream).Str("group", s.group).
		Str("consumer", s.consumer).Msg("redis source connected")
	return nil
}

// ensureGroup checks that the stream and the group exist, creating them
// when allowed.
func (s *Source) ensureGroup(ctx context.Context, rdb *redisconf.Client) error {
	key := s.cfg.Stream
	if s.cfg.Create {
		start := "0"
		if s.cfg.Start == "new" {
			start = "$"
		}
		_, err := rdb.Do(ctx, "XGROUP", "CREATE", key, s.group, start, "MKSTREAM")
		switch {
		case err == nil:
			s.log.Info().Str("stream", key).Str("group", s.group).Str("start", s.cfg.Start).Msg("created the consumer group (it was missing)")
			return nil
		case strings.HasPrefix(err.Error(), "BUSYGROUP"):
			return nil
		case strings.HasPrefix(err.Error(), "WRONGTYPE"):
			return component.TaskPermanent(fmt.Errorf("key %q is not a stream: fix stream", key))
		}
		return redisconf.Classify(fmt.Errorf("create group %q of stream %q: %w", s.group, key, err), false)
	}
	groups, err := rdb.Do(ctx, "XINFO", "GROUPS", key)
	if err != nil {
		switch {
		case strings.Contains(err.Error(), "no such key"):
			return component.TaskPermanent(fmt.Errorf("stream %q does not exist on %s: create it, fix stream, or set create = true", key, s.addr))
		case strings.HasPrefix(err.Error(), "WRONGTYPE"):
			return component.TaskPermanent(fmt.Errorf("key %q is not a stream: fix stream", key))
		}
		return redisconf.Classify(fmt.Errorf("stream %q: %w", key, err), false)
	}
	names, err := groupNames(groups)
	if err != nil {
		return fmt.Errorf("stream %q: %w", key, err)
	}
	for _, name := range names {
		if name == s.group {
			return nil
		}
	}
	return component.TaskPermanent(fmt.Errorf("consumer group %q of stream %q does not exist: create it (XGROUP CREATE), fix group, or set create = true", s.group, key))
}

// Read returns the next batch of entries, in the order Redis handed them
// out. It blocks until entries arrive, ctx ends or the source is closed.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		s.mu.Lock()
		switch {
		case s.closed:
			s.mu.Unlock()
			return component.Batch{}, ErrClosed
		case s.rdb == nil:
			s.mu.Unlock()
			return component.Batch{}, errors.New("redis source: Read before Open")
		case s.fatal != nil:
			err := s.fatal
			s.mu.Unlock()
			return component.Batch{}, err
		}
		if len(s.ready) > 0 {
			fe := s.ready[0]
			s.ready[0] = fetched{}
			s.ready = s.ready[:0]
			s.notifyLocked() // room for the next fetch
			f, use := fe.f, fe.f.use
			s.mu.Unlock()
			return component.Batch{Messages: fe.b.msgs, Lane: s.lane, Ack: func(err error) { s.ack(f, use, err) }}, nil
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		}
	}
}

func (s *Source) notifyLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// ack settles a batch: its entries are acknowledged after a nil error;
// after an error they stay pending and are read again once nothing is
// outstanding.
func (s *Source) ack(f *flight, use uint64, err error) {
	s.mu.Lock()
	if _, mine := s.flights[f]; !mine || f.use != use {
		s.mu.Unlock()
		return
	}
	delete(s.flights, f)
	s.outstanding--
	if err != nil {
		s.rewind = true
	} else {
		s.ackq = append(s.ackq, f.ids...)
	}
	// The engine reads nothing of a batch it settled: its memory serves
	// a later one.
	s.recycleLocked(f)
	s.notifyLocked()
	s.mu.Unlock()
	if err == nil {
		select {
		case s.ackWake <- struct{}{}:
		default:
		}
	}
}

// Rewind reads again every entry not acknowledged: the fetch loop goes
// back to this consumer's pending entries. The engine calls it with no
// batch in flight. A batch fetched and not handed out yet is dropped: its
// entries are newer than those given back, and stay pending to be read
// again after them (handed out first, they reached the sink before the
// older entries).
func (s *Source) Rewind(context.Context) error {
	s.mu.Lock()
	for _, fe := range s.ready {
		s.settleLocked(fe.f)
	}
	clear(s.ready)
	s.ready = s.ready[:0]
	s.rewind = true
	s.notifyLocked()
	s.mu.Unlock()
	return nil
}

// settleLocked forgets f, a batch fetched and not handed out, keeping its
// memory for reuse; its entries stay pending.
func (s *Source) settleLocked(f *flight) {
	delete(s.flights, f)
	s.outstanding--
	s.recycleLocked(f)
}

// recycleLocked keeps a settled batch's memory for a later one.
func (s *Source) recycleLocked(f *flight) {
	if len(s.spare) < maxSpare {
		clear(f.b.msgs)
		clear(f.ids)
		f.b.msgs, f.b.buf, f.ids = f.b.msgs[:0], f.b.buf[:0], f.ids[:0]
		f.use++
		s.spare = append(s.spare, f)
	}
}

// Close stops reading, sends the acknowledgements that wait, and closes
// the client. Entries read and not acknowledged stay pending for this
// consumer (read again when it restarts) or for another one to claim. It
// unblocks a pending Read. It is safe without Open.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.notifyLocked()
	rdb, stop, loopDone, ackStop, ackDone := s.rdb, s.stop, s.loopDone, s.ackStop, s.ackDone
	s.mu.Unlock()
	if rdb == nil {
		return nil
	}
	stop()
	close(ackStop)
	<-ackDone
	var err error
	if aerr := s.sendAcks(ctx, rdb); aerr != nil {
		err = fmt.Errorf("close redis source: acknowledge entries: %w (they stay pending and are read again)", aerr)
	}
	// Closing the client ends a blocking XREADGROUP at once.
	rdb.Close()
	<-loopDone
	return err
}

// acker sends acknowledgements as they come, batched into one XACK.
func (s *Source) acker(rdb *redisconf.Client) {
	defer close(s.ackDone)
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-s.ackStop:
			return
		case <-s.ackWake:
		}
		for {
			err := s.sendAcks(context.Background(), rdb)
			if err == nil {
				backoff = 50 * time.Millisecond
				break
			}
			s.m.ackErrs.Inc()
			s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("redis source: XACK failed; retrying (the entries stay pending meanwhile)")
			select {
			case <-s.ackStop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// sendAcks acknowledges every id queued so far in one XACK. When it
// returns nil, every acknowledgement queued before the call was sent.
func (s *Source) sendAcks(ctx context.Context, rdb *redisconf.Client) error {
	s.ackSend.Lock()
	defer s.ackSend.Unlock()
	s.mu.Lock()
	ids := s.ackq
	s.ackq = nil
	s.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	args := make([]any, 0, len(ids)+2)
	args = append(args, s.cfg.Stream, s.group)
	args = append(args, ids...)
	if _, err := rdb.Do(ctx, "XACK", args...); err != nil {
		s.mu.Lock()
		s.ackq = append(ids, s.ackq...)
		s.mu.Unlock()
		return redisconf.Classify(err, false)
	}
	return nil
}

// loop fetches entries: this consumer's pending ones first (and again
// after a rewind or a failed read, once nothing is outstanding), then new
// ones, claiming those other consumers left idle on the way.
func (s *Source) loop(ctx context.Context, rdb *redisconf.Client) {
	defer close(s.loopDone)
	pending, cursor := true, "0"
	claimCursor := "0-0"
	nextClaim := time.Now()
	nextOrphanCheck := time.Now().Add(orphanCheckEvery)
	backoff := 100 * time.Millisecond
	failing := false
	for ctx.Err() == nil {
		if !s.waitRoom(ctx, rdb) {
			return
		}
		s.mu.Lock()
		if s.rewind && s.outstanding == 0 {
			s.rewind = false
			s.mu.Unlock()
			// Acknowledgements still queued would be read again as pending.
			if err := s.sendAcks(ctx, rdb); err != nil {
				s.mu.Lock()
				s.rewind = true
				s.mu.Unlock()
				if !s.pause(ctx, &backoff, err, &failing) {
					return
				}
				continue
			}
			pending, cursor = true, "0"
		} else {
			s.mu.Unlock()
		}
		var (
			es      []entry
			deleted []string
			err     error
		)
		// Claiming waits until this consumer's own pending entries were
		// read again: XAUTOCLAIM would hand them out a second time.
		claim := s.cfg.ClaimIdle > 0 && !pending && !time.Now().Before(nextClaim)
		if s.cfg.ClaimIdle > 0 {
			// Every round, not only when claiming: claim_interval may be
			// longer than claim_idle, and another process claims on its own
			// schedule.
			s.touch(ctx, rdb)
		}
		if !claim && !pending && !time.Now().Before(nextOrphanCheck) {
			nextOrphanCheck = time.Now().Add(orphanCheckEvery)
			// Pending entries of this consumer that no batch holds are
			// read again, from its first.
			if s.orphaned(ctx, rdb) {
				pending, cursor = true, "0"
			}
		}
		switch {
		case claim:
			es, deleted, claimCursor, err = s.claim(ctx, rdb, claimCursor)
			if err == nil && claimCursor == "0-0" {
				nextClaim = time.Now().Add(s.cfg.ClaimEvery.D())
			}
			if err == nil {
				s.m.claimed.Add(uint64(len(es)))
			}
		case pending:
			es, deleted, err = s.readGroup(ctx, rdb, cursor, -1)
			if err == nil {
				if len(es)+len(deleted) == 0 {
					pending = false
				} else {
					cursor = lastID(es, deleted)
				}
			}
		default:
			es, _, err = s.readGroup(ctx, rdb, ">", s.cfg.Block.D())
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if component.ClassOf(err) == component.ClassTaskPermanent {
				s.mu.Lock()
				s.fatal = fmt.Errorf("redis source: stream %q group %q: %w", s.cfg.Stream, s.group, err)
				s.notifyLocked()
				s.mu.Unlock()
				return
			}
			// A read whose reply was lost may have handed entries to this
			// consumer: read its pending entries again once the batches
			// out are settled.
			s.mu.Lock()
			s.rewind = true
			s.mu.Unlock()
			if !s.pause(ctx, &backoff, err, &failing) {
				return
			}
			continue
		}
		if failing {
			failing = false
			backoff = 100 * time.Millisecond
			s.log.Info().Msg("redis source: reading again")
		}
		if len(deleted) > 0 {
			// Entries trimmed or deleted from the stream while pending:
			// nothing to deliver, only the pending entry to drop.
			s.mu.Lock()
			for _, id := range deleted {
				s.ackq = append(s.ackq, id)
			}
			s.mu.Unlock()
			s.log.Warn().Int("entries", len(deleted)).Msg("redis source: pending entries were deleted from the stream before they were delivered; acknowledging them")
			select {
			case s.ackWake <- struct{}{}:
			default:
			}
		}
		if len(es) > 0 {
			s.deliver(es)
		}
	}
}

// pause logs a failed call and waits out the backoff. It returns false
// when ctx ended.
func (s *Source) pause(ctx context.Context, backoff *time.Duration, err error, failing *bool) bool {
	s.m.readErrs.Inc()
	if !*failing {
		s.log.Warn().Err(err).Msg("redis source: read failed; retrying until the server is back")
	} else {
		s.log.Debug().Err(err).Msg("redis source: read failed again")
	}
	*failing = true
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	*backoff = min(2**backoff, 5*time.Second)
	return true
}

// waitRoom waits until the batch fetched before was handed out, and while
// a batch was given back (or a read failed), until every batch out is
// settled: the entries pending are then read again before newer ones, in
// stream order (reading on handed newer entries out first). It goes on
// marking the entries this process holds as in progress meanwhile: the
// engine stops reading exactly when it holds as many batches as it may (a
// sink being retried), and without the marks the held batches and the
// waiting one went idle and another consumer's XAUTOCLAIM took them, so
// both delivered them.
func (s *Source) waitRoom(ctx context.Context, rdb *redisconf.Client) bool {
	var touch <-chan time.Time
	for {
		s.mu.Lock()
		if len(s.ready) == 0 && !(s.rewind && s.outstanding > 0) {
			s.mu.Unlock()
			return true
		}
		wake := s.wake
		s.mu.Unlock()
		if touch == nil && s.cfg.ClaimIdle > 0 {
			t := time.NewTicker(max(s.cfg.ClaimIdle.D()/6, time.Millisecond))
			defer t.Stop()
			touch = t.C
		}
		select {
		case <-wake:
		case <-touch:
			s.touch(ctx, rdb)
		case <-ctx.Done():
			return false
		}
	}
}

// maxSpare bounds the settled batches kept for reuse.
const maxSpare = 4

// deliver encodes entries as one batch and queues it for Read.
func (s *Source) deliver(es []entry) {
	s.mu.Lock()
	var f *flight
	if n := len(s.spare); n > 0 {
		f = s.spare[n-1]
		s.spare[n-1] = nil
		s.spare = s.spare[:n-1]
	} else {
		f = &flight{}
	}
	s.mu.Unlock()
	b := s.enc.encodeInto(es, f.b)
	f.b, f.at = b, time.Now()
	f.ids = f.ids[:0]
	for i := range es {
		f.ids = append(f.ids, es[i].idArg)
	}
	s.mu.Lock()
	if s.rewind {
		// A batch was given back while these were read: they stay
		// pending, and the rewind reads them again after the older
		// entries.
		s.recycleLocked(f)
		s.mu.Unlock()
		return
	}
	s.m.records.Add(uint64(len(es)))
	s.flights[f] = struct{}{}
	s.outstanding++
	s.ready = append(s.ready, fetched{f: f, b: b})
	s.notifyLocked()
	s.mu.Unlock()
}

// orphanCheckEvery is how often, at most, the source looks for entries of
// its consumer that no batch of its holds (orphaned).
const orphanCheckEvery = time.Second

// orphaned reports whether this consumer has pending entries that no
// batch holds, when it can tell: with no batch out and every
// acknowledgement sent, every pending entry of the consumer is one. A
// blocking XREADGROUP of a connection closed while the server had not
// noticed yet (the previous run of this consumer, before a reload or a
// crash, or this run's own before a reconnection) is served by the next
// XADD: the entry goes to this consumer's pending list after this run read
// that list, and would wait claim_idle to be claimed, or for ever with
// claim_idle = "0s".
func (s *Source) orphaned(ctx context.Context, rdb *redisconf.Client) bool {
	s.mu.Lock()
	idle := s.outstanding == 0 && len(s.ready) == 0
	s.mu.Unlock()
	if !idle || s.sendAcks(ctx, rdb) != nil {
		return false
	}
	s.mu.Lock()
	idle = s.outstanding == 0 && len(s.ready) == 0 && len(s.ackq) == 0
	s.mu.Unlock()
	if !idle {
		return false
	}
	v, err := rdb.Do(ctx, "XPENDING", s.cfg.Stream, s.group, "-", "+", 1, s.consumer)
	if err != nil {
		return false // the next read says what is wrong
	}
	list, _ := v.([]any)
	if len(list) > 0 {
		s.log.Info().Msg("redis source: entries of this consumer were left pending by an earlier connection; reading them again")
		return true
	}
	return false
}

// touch resets the idle time of entries this process has held for more
// than a third of claim_idle (a batch the engine is still delivering), so
// that no other consumer claims them meanwhile.
func (s *Source) touch(ctx context.Context, rdb *redisconf.Client) {
	limit := s.cfg.ClaimIdle.D() / 3
	now := time.Now()
	args := []any{s.cfg.Stream, s.group, s.consumer, 0}
	n := len(args)
	s.mu.Lock()
	for f := range s.flights {
		if now.Sub(f.at) >= limit {
			f.at = now
			args = append(args, f.ids...)
		}
	}
	s.mu.Unlock()
	if len(args) == n {
		return
	}
	args = append(args, "JUSTID")
	if _, err := rdb.Do(ctx, "XCLAIM", args...); err != nil {
		s.log.Debug().Err(err).Msg("redis source: could not mark held entries as in progress")
	}
}

// readGroup runs XREADGROUP from id (">" for new entries, else this
// consumer's pending entries after id). block < 0 does not block.
func (s *Source) readGroup(ctx context.Context, rdb *redisconf.Client, id string, block time.Duration) ([]entry, []string, error) {
	args := []any{"GROUP", s.group, s.consumer, "COUNT", s.cfg.MaxBatch}
	if block >= 0 {
		args = append(args, "BLOCK", block.Milliseconds())
	}
	args = append(args, "STREAMS", s.cfg.Stream, id)
	v, err := rdb.Do(ctx, "XREADGROUP", args...)
	if err != nil {
		return nil, nil, s.classify(err)
	}
	return parseRead(v)
}

// claim runs one XAUTOCLAIM from cursor and returns the claimed entries,
// the ids of pending entries no longer in the stream, and the next cursor.
func (s *Source) claim(ctx context.Context, rdb *redisconf.Client, cursor string) ([]entry, []string, string, error) {
	v, err := rdb.Do(ctx, "XAUTOCLAIM", s.cfg.Stream, s.group, s.consumer, s.cfg.ClaimIdle.D().Milliseconds(), cursor, "COUNT", s.cfg.MaxBatch)
	if err != nil {
		return nil, nil, cursor, s.classify(err)
	}
	es, deleted, next, err := parseClaim(v)
	if len(es) > 0 {
		s.log.Info().Int("entries", len(es)).Dur("claim_idle", s.cfg.ClaimIdle.D()).Msg("redis source: claimed entries another consumer left pending")
	}
	return es, deleted, next, err
}

// classify maps a read failure; a group deleted meanwhile stops the task.
func (s *Source) classify(err error) error {
	if strings.HasPrefix(err.Error(), "NOGROUP") {
		return component.TaskPermanent(fmt.Errorf("%w: the stream or the group was deleted; restart the task to create them again (create = true)", err))
	}
	return redisconf.Classify(err, false)
}

func lastID(es []entry, deleted []string) string {
	// Pending entries come in id order; deleted ones are among them.
	last := ""
	if len(es) > 0 {
		last = es[len(es)-1].id
	}
	for _, d := range deleted {
		if idLess(last, d) {
			last = d
		}
	}
	return last
}

// idLess compares stream ids "ms-seq".
func idLess(a, b string) bool {
	if a == "" {
		return true
	}
	am, as := splitID(a)
	bm, bs := splitID(b)
	return am < bm || am == bm && as < bs
}

func splitID(id string) (ms, seq uint64) {
	m, q, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(q, 10, 64)
	return ms, seq
}
