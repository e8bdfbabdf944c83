package http

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"
	"golang.org/x/net/netutil"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("http source: closed")

// Source is the HTTP ingest source. Its handler turns each request into one
// batch that Read hands to the engine, and answers once the batch's Ack
// arrives.
type Source struct {
	addr                    string
	path                    string
	format                  lineformat.Format
	utf8                    lineformat.UTF8Policy
	maxBody                 int64
	maxEvent                int
	maxBuilt                int // the task's event limit, which the engine holds every event to
	timeout                 time.Duration
	readTO                  time.Duration
	minRate                 float64 // bytes per second a body must keep to after bodyGrace; 0: none
	batchEvents, batchBytes int     // a request's events go to the task in batches this large
	retryAfter              string  // Retry-After value of 503 answers, in seconds
	tls                     *tls.Config
	log                     zerolog.Logger
	hasToken                bool
	tokenSum                [32]byte // sha256 of the token: comparing digests takes constant time whatever the lengths
	evSource                string
	evType                  string
	idPrefix                string
	seq                     atomic.Uint64

	queue     chan *pending // handlers → Read; bounded, so a slow engine blocks handlers
	slots     chan struct{} // one token per request being handled (max_requests)
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener
	served   chan struct{}         // closed when the serve goroutine returns
	newConns map[net.Conn]struct{} // connections that have not sent a request yet
	bodies   map[*wire]struct{}    // bodies being received: Close ends their reads
	maxConns int
	// conns and peakConns count the open connections, and the most at
	// once (for the tests of max_connections).
	conns, peakConns int

	builders sync.Pool
	budget   *budget // memory of request bodies
	decoders decoders

	requests  *metrics.CounterVec // by status code
	abandoned *metrics.CounterVec // by outcome
	task      string
}

// New builds a source from a decoded config. It reads the TLS files but does
// not listen: Open does.
func New(cfg *Config, env component.Env) (*Source, error) {
	s := &Source{
		addr:     cfg.Address,
		path:     cmpOr(cfg.Path, "/"),
		format:   lineformat.Format(cmpOr(cfg.Format, string(lineformat.Auto))),
		utf8:     lineformat.UTF8Policy(cfg.InvalidUTF8),
		maxBody:  int64(cfg.MaxBodySize),
		maxEvent: cfg.MaxEventSize.Int(),
		timeout:  cfg.ResponseTimeout.D(),
		readTO:   cfg.ReadTimeout.D(),
		log:      env.Logger,
		evSource: cfg.EventSource,
		evType:   cmpOr(cfg.EventType, defaultEventType),
		closed:   make(chan struct{}),
		task:     env.Task,
	}
	if s.maxBody <= 0 {
		s.maxBody = defaultMaxBody
	}
	if s.maxEvent <= 0 {
		s.maxEvent = env.MaxEvent
	}
	s.maxBuilt = env.MaxEvent
	if s.timeout <= 0 {
		s.timeout = defaultResponseTimeout
	}
	if s.readTO <= 0 {
		s.readTO = defaultReadTimeout
	}
	s.minRate = float64(cfg.MinBodyRate)
	s.batchEvents, s.batchBytes = cfg.Batch.MaxEvents, cfg.Batch.MaxBytes.Int()
	if s.batchEvents <= 0 {
		s.batchEvents = defaultBatchEvents
	}
	if s.batchBytes <= 0 {
		s.batchBytes = defaultBatchBytes
	}
	s.decoders.maxBody = s.maxBody
	if s.evSource == "" {
		s.evSource = "sluice/" + env.Task + "/http"
	}
	s.retryAfter = strconv.Itoa(int(math.Max(1, math.Ceil(s.timeout.Seconds()))))
	if tok := cfg.Token.Reveal(); tok != "" {
		s.hasToken, s.tokenSum = true, sha256.Sum256([]byte(tok))
	}
	if cfg.TLS != nil {
		tc, err := cfg.TLS.Config(env.Dir)
		if err != nil {
			return nil, fmt.Errorf("http source: %w", err)
		}
		s.tls = tc
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("http source: request id prefix: %w", err)
	}
	s.idPrefix = hex.EncodeToString(rnd[:])
	s.queue = make(chan *pending, max(1, cfg.Concurrency))
	s.slots = make(chan struct{}, max(1, cmpOrInt(cfg.MaxRequests, defaultMaxRequests)))
	s.maxConns = max(1, cmpOrInt(cfg.MaxConnections, defaultMaxConnections))
	// Bodies being received and requests being handled share
	// max_requests × max_body_size bytes; one request always fits.
	s.budget = newBudget(int64(cap(s.slots))*s.maxBody + 2*budgetUnit + 512)
	s.builders.New = func() any {
		return &builder{w: lineformat.Wrapper{InvalidUTF8: s.utf8, Source: s.evSource, Type: s.evType, MaxEvent: s.maxEvent, MaxBuilt: s.maxBuilt}}
	}
	if env.Metrics != nil {
		s.requests = env.Metrics.Counter("http_source_requests_total", "HTTP ingest requests answered, by status code.", "task", "code")
		s.abandoned = env.Metrics.Counter("http_source_unconfirmed_total",
			"Requests answered 503 after their events were handed to the task, by what became of the events (handled: a client retry duplicates them).", "task", "outcome")
	}
	return s, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func cmpOrInt(n, def int) int {
	if n == 0 {
		return def
	}
	return n
}

// DecodeLine makes the event the n-th line of an NDJSON request body
// becomes, for `sluice test`; the input stands for one request, whose id is
// "http".
func (s *Source) DecodeLine(dst, line []byte, n int, _ int64, now time.Time) ([]byte, error) {
	w := lineformat.Wrapper{Format: s.format, Source: s.evSource, Type: s.evType, MaxEvent: s.maxEvent, MaxBuilt: s.maxBuilt}
	w.SetTime(now)
	return w.Append(dst, line, message.Position{Stream: "http", Offset: int64(n)})
}

var _ component.LineDecoder = (*Source)(nil)

// Open starts listening. A second Open while running does nothing.
func (s *Source) Open(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	if s.srv != nil {
		return nil
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.addr)
	if err != nil {
		err = fmt.Errorf("http source: listen on %s: %w", s.addr, err)
		if errors.Is(err, os.ErrPermission) {
			return component.TaskPermanent(fmt.Errorf("%w (ports below 1024 need privileges; pick another address)", err))
		}
		return err
	}
	// Connections over the limit wait in the accept queue: without a
	// limit, hostile clients could each hold up to maxHeaderBytes (read
	// before the token is checked) on as many connections as they open.
	ln = netutil.LimitListener(ln, s.maxConns)
	srv := &http.Server{
		Handler:           s,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: min(10*time.Second, s.readTO),
		ReadTimeout:       s.readTO,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         s.tls,
		ErrorLog:          log.New(serverLog{s.log}, "", 0),
		ConnState:         s.trackConn,
	}
	s.srv, s.ln, s.served = srv, ln, make(chan struct{})
	go func() {
		defer close(s.served)
		var err error
		if s.tls != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error().Err(err).Str("address", ln.Addr().String()).Msg("http source stopped serving")
		}
	}()
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	s.log.Info().Str("url", scheme+"://"+ln.Addr().String()+s.path).Msg("http source listening")
	return nil
}

// Addr returns the address the source listens on (useful with port 0), or
// nil before Open.
func (s *Source) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Read returns the next request's batch. It returns io.EOF once the source
// is closed.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	for {
		select {
		case <-s.closed:
			return component.Batch{}, io.EOF
		default:
		}
		select {
		case p := <-s.queue:
			if !p.state.CompareAndSwap(statePending, stateTaken) {
				continue // its request was answered 503 before the engine got here: nothing to do
			}
			return p.batch, nil
		case <-ctx.Done():
			return component.Batch{}, ctx.Err()
		case <-s.closed:
			return component.Batch{}, io.EOF
		}
	}
}

// Close stops accepting requests, answers the pending ones 503 and waits
// (within ctx) for every handler to return. It unblocks Read.
func (s *Source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	srv, served := s.srv, s.served
	// A body still arriving would hold Close (and the task's shutdown
	// deadline, shared with the sink) for up to read_timeout, and its
	// client would get no answer: end its read now, and it is answered 503.
	for w := range s.bodies {
		_ = w.rc.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Shutdown(ctx) }()
	// Shutdown waits 5 s before it closes connections that never sent a
	// request (a client's spare keep-alive connection), so close them here.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeNewConns()
		select {
		case err := <-errc:
			if err != nil {
				srv.Close()
				return fmt.Errorf("http source: shutdown: %w", err)
			}
			<-served
			return nil
		case <-tick.C:
		}
	}
}

func (s *Source) trackConn(c net.Conn, st http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch st {
	case http.StateNew:
		s.conns++
		s.peakConns = max(s.peakConns, s.conns)
		if s.newConns == nil {
			s.newConns = map[net.Conn]struct{}{}
		}
		s.newConns[c] = struct{}{}
		return
	case http.StateClosed, http.StateHijacked:
		s.conns--
	}
	delete(s.newConns, c)
}

func (s *Source) closeNewConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.newConns {
		c.Close()
		delete(s.newConns, c)
	}
}

// States of a pending request's batch.
const (
	statePending   int32 = iota // queued, not read by the engine
	stateTaken                  // read, waiting for Ack
	stateAcked                  // Ack arrived while the handler waited
	stateDropped                // the handler gave up before Read took it: nothing kept
	stateAbandoned              // the handler gave up after Read took it
	stateLate                   // Ack arrived after the handler gave up
)

// pending is one request's batch on its way through the engine.
type pending struct {
	s     *Source
	chunk *chunk
	batch component.Batch
	state atomic.Int32
	done  chan error // capacity 1: Ack never blocks
	id    string
	// hold is the request's body budget, once the request was abandoned
	// with this batch in the task: the batch may point into the body (a
	// dead-lettered element is a slice of it), so the budget is released
	// only when the task is done with it. Set before the batch becomes
	// stateAbandoned.
	hold *bodyHold
}

// bodyHold keeps an abandoned request's share of the body budget until the
// task acknowledged every batch of it that it took, and gathers what became
// of those batches: the request is counted once, when the last is
// acknowledged.
type bodyHold struct {
	s      *Source
	id     string
	budget *budget
	units  int
	refs   atomic.Int32
	// Abandoned batches (set by giveUp while it holds a reference), the
	// events of those handled after all, and those not handled.
	abandoned  int
	handled    atomic.Int64
	notHandled atomic.Int64
	firstErrMu sync.Mutex
	firstErr   error
}

func (h *bodyHold) done() {
	if h.refs.Add(-1) == 0 {
		h.budget.release(h.units)
		if h.abandoned > 0 {
			h.s.late(h)
		}
	}
}

func (p *pending) ack(err error) {
	if p.state.CompareAndSwap(stateTaken, stateAcked) {
		p.done <- err
		return
	}
	if p.state.CompareAndSwap(stateAbandoned, stateLate) {
		h := p.hold
		if err == nil {
			h.handled.Add(int64(len(p.batch.Messages)))
		} else {
			h.notHandled.Add(int64(len(p.batch.Messages)))
			h.firstErrMu.Lock()
			if h.firstErr == nil {
				h.firstErr = err
			}
			h.firstErrMu.Unlock()
		}
		h.done()
	}
}

// late notes, once per request, the fate of events whose request was
// already answered 503: handled when the task handled any of them after
// all (a retry by the client duplicates those), not_handled otherwise.
func (s *Source) late(h *bodyHold) {
	handled, notHandled := h.handled.Load(), h.notHandled.Load()
	outcome := "handled"
	if handled == 0 {
		outcome = "not_handled"
	}
	if s.abandoned != nil {
		s.abandoned.WithLabelValues(s.task, outcome).Inc()
	}
	if handled > 0 {
		s.log.Warn().Str("request_id", h.id).Int64(logx.Events, handled).Int64("events_not_handled", notHandled).
			Msg("events of a request answered 503 were handled after all; a retry by the client will deliver them again")
		return
	}
	s.log.Debug().Str("request_id", h.id).Int64(logx.Events, notHandled).Err(h.firstErr).
		Msg("events of a request answered 503 were not handled")
}

// ServeHTTP handles one request.
func (s *Source) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != s.path {
		s.reply(w, http.StatusNotFound, `{"error":"not found: events go to `+jsonEscape(s.path)+`"}`)
		return
	}
	switch r.Method {
	case http.MethodPost:
	case http.MethodGet, http.MethodHead:
		select {
		case <-s.closed:
			s.unavailable(w, "source is shutting down", "")
		default:
			s.reply(w, http.StatusOK, `{"status":"ok"}`)
		}
		return
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		s.reply(w, http.StatusMethodNotAllowed, `{"error":"method not allowed: POST events, GET for health"}`)
		return
	}
	if s.hasToken && !s.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
		s.reply(w, http.StatusUnauthorized, `{"error":"missing or wrong bearer token"}`)
		return
	}
	if r.ContentLength > s.maxBody {
		s.tooLarge(w, "body larger than max_body_size")
		return
	}
	media := mediaType(r.Header.Get("Content-Type"))
	f, serr := classify(media, r.Header.Get("Ce-Specversion") != "")
	if serr == nil {
		var c coding
		if c, serr = parseCoding(r.Header.Values("Content-Encoding")); serr == nil {
			s.handle(w, r, f, media, c)
			return
		}
	}
	s.reply(w, serr.code, `{"error":"`+jsonEscape(serr.msg)+`"}`) // refused before reading the body
}

// handle reads the body (holding no request slot: a slow client holds only
// the memory it filled), then takes a slot and hands the events to the
// task in batches, answering once every batch was confirmed.
func (s *Source) handle(w http.ResponseWriter, r *http.Request, f framing, media string, c coding) {
	b := s.builders.Get().(*builder)
	held := 0
	defer func() { s.budget.release(held) }()
	body, err := s.receive(w, r, b.body[:0], c, &held)
	b.body = body
	if err != nil {
		s.putBuilder(b)
		// Nothing of the body is kept. receive made net/http's read of
		// what is left of it after the handler fail at once, closing the
		// connection, when it failed before the body's end.
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			s.tooLarge(w, "body larger than max_body_size")
		case errors.Is(err, errDecodedTooLarge):
			s.tooLarge(w, "body larger than max_body_size once decoded ("+c.String()+")")
		case errors.Is(err, errTooSlow), errors.Is(err, errReadTimeout):
			w.Header().Set("Connection", "close")
			s.reply(w, http.StatusRequestTimeout, `{"error":"`+jsonEscape(err.Error())+`: nothing was kept"}`)
		case errors.Is(err, errBudget):
			s.unavailable(w, err.Error()+"; nothing was kept", "")
		case errors.Is(err, errClosing):
			w.Header().Set("Connection", "close")
			s.unavailable(w, "source is shutting down; nothing was kept", "")
		case errors.Is(err, errDecoded):
			s.reply(w, http.StatusBadRequest, `{"error":"`+jsonEscape(err.Error())+` (Content-Encoding `+c.String()+`): nothing was kept"}`)
		case r.Context().Err() != nil:
			// The client went away; no answer reaches it.
		default:
			s.reply(w, http.StatusBadRequest, `{"error":"cannot read the body: `+jsonEscape(err.Error())+`"}`)
		}
		return
	}

	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-timer.C:
		s.putBuilder(b)
		s.unavailable(w, "too many requests in progress (max_requests); nothing was kept", "")
		return
	case <-s.closed:
		s.putBuilder(b)
		s.unavailable(w, "source is shutting down; nothing was kept", "")
		return
	case <-r.Context().Done():
		s.putBuilder(b)
		return
	}
	defer func() { <-s.slots }()

	lane := s.idPrefix + "-" + strconv.FormatUint(s.seq.Add(1), 36)
	id := lane
	if rid := r.Header.Get("X-Request-Id"); validRequestID(rid) {
		id = rid
	}
	w.Header().Set("X-Request-Id", id)
	b.reset(id, time.Now())
	fl := &flight{s: s, b: b, ctx: r.Context(), id: id, lane: lane, timer: timer, held: &held}
	timer.Reset(s.timeout) // the body is read: the wait for confirmation starts now
	b.flush, b.maxEvents, b.maxBytes = fl.submit, s.batchEvents, s.batchBytes
	if serr := b.split(f, s.format, r.Header, media); serr != nil {
		s.putBuilder(b)
		s.reply(w, serr.code, `{"error":"`+jsonEscape(serr.msg)+`","request_id":"`+jsonEscape(id)+`"}`)
		return
	}
	if !b.stopped && len(b.cur.msgs) > 0 {
		// The last batch goes too; its buffers come back to b.spare once
		// acknowledged, and the next request reuses them.
		last := b.cur
		b.cur = nil
		fl.submit(last)
	}
	for fl.why == "" && len(fl.inflight) > 0 {
		fl.waitOldest()
	}
	if fl.why != "" {
		fl.giveUp(w)
		return
	}
	n, rej := int(b.next), b.rejected
	s.putBuilder(b)
	s.accepted(w, id, n-rej, rej)
}

// putBuilder returns b to the pool, without a body buffer larger than
// 1 MiB: the pool must not keep every large body ever received.
func (s *Source) putBuilder(b *builder) {
	if cap(b.body) > 1<<20 {
		b.body = nil
	}
	if len(b.spare) > maxPipeline {
		b.spare = b.spare[:maxPipeline]
	}
	b.flush = nil
	s.builders.Put(b)
}

// writeTimeout bounds the time to write an answer (or read_timeout, if
// shorter).
const writeTimeout = 10 * time.Second

// maxPipeline is how many batches of one request may be in the task at
// once: one being processed, one waiting, while the next is built.
const maxPipeline = 2

// flight is one request's batches on their way through the engine, all in
// the request's lane, so the engine keeps their order and acknowledges
// them in order.
type flight struct {
	s        *Source
	b        *builder
	ctx      context.Context
	id, lane string
	timer    *time.Timer // response_timeout since the last progress
	held     *int        // units of the body budget the request holds
	inflight []*pending  // handed to the queue, not acknowledged, in order
	taken    bool        // the engine took a batch: events may be delivered
	why      string      // why the request failed; "" while it goes on
	nacked   bool        // the task refused a batch
}

// submit hands one full batch to the engine, first waiting for the oldest
// of the request's batches when maxPipeline are in flight. It returns
// false once the request failed.
func (fl *flight) submit(c *chunk) bool {
	for fl.why == "" && len(fl.inflight) >= maxPipeline {
		fl.waitOldest()
	}
	if fl.why != "" {
		return false
	}
	s := fl.s
	p := &pending{s: s, done: make(chan error, 1), id: fl.id, chunk: c}
	p.batch = component.Batch{Messages: c.finish(), Lane: fl.lane, Ack: p.ack}
	select {
	case s.queue <- p:
		fl.inflight = append(fl.inflight, p)
		return true
	case <-fl.timer.C:
		fl.why = "the task is busy: events not taken within response_timeout"
	case <-s.closed:
		fl.why = "source is shutting down"
	case <-fl.ctx.Done():
		fl.why = "client went away"
	}
	return false
}

// waitOldest waits for the first batch in flight to be acknowledged, and
// recycles its buffers.
func (fl *flight) waitOldest() {
	p := fl.inflight[0]
	select {
	case err := <-p.done:
		fl.inflight = fl.inflight[1:]
		fl.taken = true
		if err != nil {
			// The error is the task's (a stopped or blocked task); it is
			// logged there, and the client needs only to know it must retry.
			fl.why, fl.nacked = "the task could not handle the events", true
			return
		}
		fl.b.spare = append(fl.b.spare, p.chunk)
		fl.timer.Reset(fl.s.timeout)
		return
	case <-fl.timer.C:
		fl.why = "events not confirmed within response_timeout"
	case <-fl.s.closed:
		fl.why = "source is shutting down"
	case <-fl.ctx.Done():
		fl.why = "client went away"
	}
}

// giveUp answers 503 for a request that failed, after settling its batches
// still in flight: one still queued is dropped (Read skips it), one the
// engine took is abandoned (it may still be delivered).
func (fl *flight) giveUp(w http.ResponseWriter) {
	s := fl.s
	recycle := true
	// A batch the task keeps may point into the body: the body's budget
	// goes with the abandoned batches, released when the last is
	// acknowledged (the handler's reference is dropped below).
	hold := &bodyHold{s: s, id: fl.id, budget: s.budget, units: *fl.held}
	hold.refs.Store(1)
	for _, p := range fl.inflight {
		if p.state.CompareAndSwap(statePending, stateDropped) {
			continue
		}
		hold.refs.Add(1)
		p.hold = hold
		switch {
		case p.state.CompareAndSwap(stateTaken, stateAbandoned):
			fl.taken, recycle = true, false
			hold.abandoned++
		default:
			hold.refs.Add(-1)
			// Acknowledged meanwhile.
			fl.taken = true
			if err := <-p.done; err != nil {
				fl.nacked = true
			}
		}
	}
	if recycle {
		s.putBuilder(fl.b)
	}
	*fl.held = 0 // the handler no longer releases it: hold does
	hold.done()
	switch {
	case fl.nacked:
		s.unavailable(w, fl.why+"; nothing was confirmed, and events handled before the failure may have been delivered, so a retry can duplicate them", fl.id)
	case fl.taken:
		// The engine holds a batch and may still deliver it, or delivered
		// earlier batches of the request: a retry may duplicate events
		// (same ids when the client sends the same X-Request-Id).
		s.unavailable(w, fl.why+"; the events may still be delivered, so a retry can duplicate them (send the same X-Request-Id so duplicates keep their ids)", fl.id)
	default:
		s.unavailable(w, fl.why+"; nothing was kept", fl.id)
	}
}

func (s *Source) accepted(w http.ResponseWriter, id string, n, rejected int) {
	buf := make([]byte, 0, 96)
	buf = append(buf, `{"accepted":`...)
	buf = strconv.AppendInt(buf, int64(n), 10)
	buf = append(buf, `,"rejected":`...)
	buf = strconv.AppendInt(buf, int64(rejected), 10)
	buf = append(buf, `,"request_id":"`...)
	buf = append(buf, jsonEscape(id)...)
	buf = append(buf, `"}`...)
	s.replyBytes(w, http.StatusOK, buf)
}

func (s *Source) unavailable(w http.ResponseWriter, why, id string) {
	w.Header().Set("Retry-After", s.retryAfter)
	body := `{"error":"` + jsonEscape(why) + `"`
	if id != "" {
		body += `,"request_id":"` + jsonEscape(id) + `"`
	}
	s.reply(w, http.StatusServiceUnavailable, body+"}")
}

func (s *Source) tooLarge(w http.ResponseWriter, what string) {
	w.Header().Set("Connection", "close")
	s.reply(w, http.StatusRequestEntityTooLarge, `{"error":"`+what+` (`+strconv.FormatInt(s.maxBody, 10)+` bytes): nothing was kept; split it into smaller requests"}`)
}

func (s *Source) reply(w http.ResponseWriter, code int, body string) {
	s.replyBytes(w, code, []byte(body))
}

func (s *Source) replyBytes(w http.ResponseWriter, code int, body []byte) {
	// The answer must be taken within writeTimeout: a client that never
	// reads its answers (pipelining requests until the server's writes
	// block) would hold its connection, a goroutine and Close for ever.
	// net/http clears the deadline once the answer is written.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(min(writeTimeout, s.readTO)))
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(code)
	w.Write(append(body, '\n'))
	if s.requests != nil {
		s.requests.WithLabelValues(s.task, strconv.Itoa(code)).Inc()
	}
}

// authorized compares the bearer token in constant time.
func (s *Source) authorized(r *http.Request) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

// validRequestID accepts client request ids that are safe to put into event
// ids: 1..128 characters of letters, digits and ._:~-
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == ':' || c == '~' || c == '-') {
			return false
		}
	}
	return true
}

func jsonEscape(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return string(jsonscan.AppendEscaped(nil, []byte(s)))
		}
	}
	return s
}

// serverLog routes net/http's own messages (TLS handshake errors, panics
// in handlers) to the task's logger.
type serverLog struct{ log zerolog.Logger }

func (l serverLog) Write(p []byte) (int, error) {
	l.log.Warn().Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
