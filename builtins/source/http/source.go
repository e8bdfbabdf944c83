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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/logx"
	"github.com/sluicehq/sluice/runtime/message"
)

// ErrClosed is returned by Open after Close.
var ErrClosed = errors.New("http source: closed")

// Source is the HTTP ingest source. Its handler turns each request into one
// batch that Read hands to the engine, and answers once the batch's Ack
// arrives.
type Source struct {
	addr       string
	path       string
	format     lineformat.Format
	maxBody    int64
	maxEvent   int
	timeout    time.Duration
	readTO     time.Duration
	retryAfter string // Retry-After value of 503 answers, in seconds
	tls        *tls.Config
	log        zerolog.Logger
	hasToken   bool
	tokenSum   [32]byte // sha256 of the token: comparing digests takes constant time whatever the lengths
	evSource   string
	evType     string
	idPrefix   string
	seq        atomic.Uint64

	queue     chan *pending // handlers → Read; bounded, so a slow engine blocks handlers
	slots     chan struct{} // one token per request being handled (max_requests)
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	srv      *http.Server
	ln       net.Listener
	served   chan struct{}         // closed when the serve goroutine returns
	newConns map[net.Conn]struct{} // connections that have not sent a request yet

	builders sync.Pool

	requests  *prometheus.CounterVec // by status code
	abandoned *prometheus.CounterVec // by outcome
	task      string
}

// New builds a source from a decoded config. It reads the TLS files but does
// not listen: Open does.
func New(cfg *Config, env component.Env) (*Source, error) {
	s := &Source{
		addr:     cfg.Address,
		path:     cmpOr(cfg.Path, "/"),
		format:   lineformat.Format(cmpOr(cfg.Format, string(lineformat.Auto))),
		maxBody:  int64(cfg.MaxBodySize),
		maxEvent: int(cfg.MaxEventSize),
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
	if s.timeout <= 0 {
		s.timeout = defaultResponseTimeout
	}
	if s.readTO <= 0 {
		s.readTO = defaultReadTimeout
	}
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
	s.builders.New = func() any {
		return &builder{w: lineformat.Wrapper{Source: s.evSource, Type: s.evType, MaxEvent: s.maxEvent}}
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
	w := lineformat.Wrapper{Format: s.format, Source: s.evSource, Type: s.evType, MaxEvent: s.maxEvent}
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
	srv := &http.Server{
		Handler:           s,
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
	if st == http.StateNew {
		if s.newConns == nil {
			s.newConns = map[net.Conn]struct{}{}
		}
		s.newConns[c] = struct{}{}
		return
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
	batch component.Batch
	state atomic.Int32
	done  chan error // capacity 1: Ack never blocks
	id    string
}

func (p *pending) ack(err error) {
	if p.state.CompareAndSwap(stateTaken, stateAcked) {
		p.done <- err
		return
	}
	if p.state.CompareAndSwap(stateAbandoned, stateLate) {
		p.s.late(p, err)
	}
}

// late notes the fate of events whose request was already answered 503.
func (s *Source) late(p *pending, err error) {
	outcome := "handled"
	if err != nil {
		outcome = "not_handled"
	}
	if s.abandoned != nil {
		s.abandoned.WithLabelValues(s.task, outcome).Inc()
	}
	if err == nil {
		s.log.Warn().Str("request_id", p.id).Int(logx.Events, len(p.batch.Messages)).
			Msg("events of a request answered 503 (response_timeout) were handled after all; a retry by the client will deliver them again")
		return
	}
	s.log.Debug().Str("request_id", p.id).Int(logx.Events, len(p.batch.Messages)).Err(err).
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
		s.tooLarge(w)
		return
	}
	media := mediaType(r.Header.Get("Content-Type"))
	f, serr := classify(media, r.Header.Get("Ce-Specversion") != "")
	if serr != nil {
		s.reply(w, serr.code, `{"error":"`+jsonEscape(serr.msg)+`"}`) // refused before reading the body
		return
	}

	timer := time.NewTimer(s.timeout)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-timer.C:
		s.unavailable(w, "too many requests in progress (max_requests)", "")
		return
	case <-s.closed:
		s.unavailable(w, "source is shutting down", "")
		return
	case <-r.Context().Done():
		return
	}
	defer func() { <-s.slots }()

	b := s.builders.Get().(*builder)
	body, err := readBody(b.body[:0], http.MaxBytesReader(w, r.Body, s.maxBody), r.ContentLength)
	b.body = body
	if err != nil {
		s.builders.Put(b)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.tooLarge(w)
			return
		}
		code := http.StatusBadRequest
		if errors.Is(err, os.ErrDeadlineExceeded) {
			code = http.StatusRequestTimeout // read_timeout passed while the body trickled in
		}
		s.reply(w, code, `{"error":"cannot read the body: `+jsonEscape(err.Error())+`"}`)
		return
	}

	lane := s.idPrefix + "-" + strconv.FormatUint(s.seq.Add(1), 36)
	id := lane
	if rid := r.Header.Get("X-Request-Id"); validRequestID(rid) {
		id = rid
	}
	w.Header().Set("X-Request-Id", id)
	b.reset(id, time.Now())
	if serr := b.split(f, s.format, r.Header, media); serr != nil {
		s.builders.Put(b)
		s.reply(w, serr.code, `{"error":"`+jsonEscape(serr.msg)+`","request_id":"`+jsonEscape(id)+`"}`)
		return
	}
	msgs := b.finish()
	if len(msgs) == 0 {
		s.builders.Put(b)
		s.accepted(w, id, 0, 0)
		return
	}

	p := &pending{s: s, done: make(chan error, 1), id: id}
	p.batch = component.Batch{Messages: msgs, Lane: lane, Ack: p.ack}
	timer.Reset(s.timeout) // the body is read: the wait for confirmation starts now
	var why string
	select {
	case s.queue <- p:
		select {
		case err := <-p.done:
			s.answer(w, p, b, err)
			return
		case <-timer.C:
			why = "events not confirmed within response_timeout"
		case <-s.closed:
			why = "source is shutting down"
		case <-r.Context().Done():
			why = "client went away"
		}
	case <-timer.C:
		why = "the task is busy: events not taken within response_timeout"
	case <-s.closed:
		why = "source is shutting down"
	case <-r.Context().Done():
		why = "client went away"
	}
	switch {
	case p.state.CompareAndSwap(statePending, stateDropped):
		// Never read (or still in the queue, where Read will skip it): nothing
		// was kept, and the buffers can be reused.
		s.builders.Put(b)
		s.unavailable(w, why+"; nothing was kept", id)
	case p.state.CompareAndSwap(stateTaken, stateAbandoned):
		// The engine holds the batch and may still deliver it: the buffers
		// stay with it, and a retry may duplicate its events (same ids when
		// the client sends the same X-Request-Id).
		s.unavailable(w, why+"; the events may still be delivered, so a retry can duplicate them (send the same X-Request-Id so duplicates keep their ids)", id)
	default:
		// Ack arrived meanwhile.
		s.answer(w, p, b, <-p.done)
	}
}

// answer replies to a request whose batch was acknowledged with err.
func (s *Source) answer(w http.ResponseWriter, p *pending, b *builder, err error) {
	n, rej := len(p.batch.Messages), b.rejected
	s.builders.Put(b)
	if err != nil {
		// The error is the task's (a stopped or blocked task); it is logged
		// there, and the client needs only to know it must retry.
		s.unavailable(w, "the task could not handle the events; nothing was confirmed", p.id)
		return
	}
	s.accepted(w, p.id, n-rej, rej)
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

func (s *Source) tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	s.reply(w, http.StatusRequestEntityTooLarge, `{"error":"body larger than max_body_size (`+strconv.FormatInt(s.maxBody, 10)+` bytes): nothing was kept; split it into smaller requests"}`)
}

func (s *Source) reply(w http.ResponseWriter, code int, body string) {
	s.replyBytes(w, code, []byte(body))
}

func (s *Source) replyBytes(w http.ResponseWriter, code int, body []byte) {
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

// readBody reads r to the end into buf. n is the announced length (-1:
// unknown); the buffer is sized for it plus room to see the end.
func readBody(buf []byte, r io.Reader, n int64) ([]byte, error) {
	if n > 0 {
		buf = slices.Grow(buf, int(n)+512)
	} else if cap(buf) < 4096 {
		buf = slices.Grow(buf, 4096)
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		m, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func jsonEscape(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
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
