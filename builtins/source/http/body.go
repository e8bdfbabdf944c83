package http

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"
)

// Slow senders (docs/connectors/http.md, "Slow clients"): a body must
// arrive within read_timeout, and after the first bodyGrace at
// min_body_rate on average. A body being received holds no request slot,
// only the memory it already filled (budget), so clients that trickle lose
// their own requests, not everyone else's.

// bodyGrace is how long a body may take before min_body_rate applies: a
// small body on a slow link, or the start of a TCP connection, must not be
// judged on its first bytes.
const bodyGrace = 5 * time.Second

var (
	errTooSlow     = errors.New("the body arrived slower than min_body_rate")
	errReadTimeout = errors.New("the body did not arrive within read_timeout")
	errClosing     = errors.New("the source is shutting down")
	errBudget      = errors.New("too many request bodies in memory (max_requests × max_body_size)")
)

// wire reads a request body from the connection, moving the connection's
// read deadline so that the body keeps to read_timeout and min_body_rate.
// It remembers the error the connection gave, to tell a broken connection
// from a body that does not decode.
type wire struct {
	r      io.Reader
	rc     *http.ResponseController
	start  time.Time
	paused time.Duration // time spent waiting for memory, not counted
	got    int64
	grace  time.Duration
	limit  time.Duration
	rate   float64 // bytes per second; 0: no rate
	err    error
	eof    bool // the body was read to its end
	// closing is the source's closed channel: Close sets the read deadline
	// to now, and a read that moved it on afterwards sets it back.
	closing <-chan struct{}
}

func (w *wire) isClosing() bool {
	select {
	case <-w.closing:
		return true
	default:
		return false
	}
}

func (w *wire) Read(p []byte) (int, error) {
	now := time.Now()
	elapsed := now.Sub(w.start) - w.paused
	allowed, tooSlow := w.limit, errReadTimeout
	if w.rate > 0 {
		if byRate := w.grace + time.Duration(float64(w.got)/w.rate*float64(time.Second)); byRate < allowed {
			allowed, tooSlow = byRate, errTooSlow
		}
	}
	if w.isClosing() {
		w.err = errClosing
		return 0, w.err
	}
	if elapsed >= allowed {
		w.err = tooSlow
		return 0, w.err
	}
	_ = w.rc.SetReadDeadline(now.Add(allowed - elapsed))
	if w.isClosing() { // Close may have set its deadline just before ours
		_ = w.rc.SetReadDeadline(now)
	}
	n, err := w.r.Read(p)
	w.got += int64(n)
	switch {
	case err == io.EOF:
		w.eof = true
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded) && w.isClosing():
		w.err = errClosing
		err = errClosing
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.err = tooSlow
		err = tooSlow
	default:
		w.err = err
	}
	return n, err
}

// budget bounds the memory of request bodies: the bytes of the buffers
// that hold bodies being received or handled, in units of budgetUnit. A
// body takes units as its buffer grows, so a client that announces a large
// body but sends little holds little.
type budget struct{ units chan struct{} }

const budgetUnit = 64 << 10

func newBudget(bytes int64) *budget {
	return &budget{units: make(chan struct{}, max(1, (bytes+budgetUnit-1)/budgetUnit))}
}

// acquire takes n units, waiting up to wait for them (and while ctx
// lasts and the source is open). It takes all or none.
func (b *budget) acquire(ctx context.Context, n int, wait time.Duration, closed <-chan struct{}) error {
	var timer *time.Timer
	for i := range n {
		select {
		case b.units <- struct{}{}:
			continue
		default:
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case b.units <- struct{}{}:
		case <-timer.C:
			b.release(i)
			return errBudget
		case <-closed:
			b.release(i)
			return errClosing
		case <-ctx.Done():
			b.release(i)
			return ctx.Err()
		}
	}
	return nil
}

func (b *budget) release(n int) {
	for range n {
		<-b.units
	}
}

func unitsFor(bytes int) int { return (bytes + budgetUnit - 1) / budgetUnit }

// receive reads the body of r into buf (reused from a pooled builder),
// decoding its Content-Encoding c. It keeps *held units of the budget for
// the buffer, which the caller releases once the request is over. The body
// is limited to max_body_size on the wire and once decoded.
func (s *Source) receive(w http.ResponseWriter, r *http.Request, buf []byte, c coding, held *int) (_ []byte, err error) {
	rc := http.NewResponseController(w)
	wr := &wire{r: http.MaxBytesReader(w, r.Body, s.maxBody), rc: rc, start: time.Now(), grace: min(bodyGrace, s.readTO), limit: s.readTO, rate: s.minRate, closing: s.closed}
	s.mu.Lock()
	if s.bodies == nil {
		s.bodies = make(map[*wire]struct{})
	}
	s.bodies[wr] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.bodies, wr)
		s.mu.Unlock()
	}()
	// The server's background read of the next request must not see the
	// deadline set here once the body is in: it would cancel the request
	// while its events wait for the task. A body that failed before its
	// end is another matter: after the handler net/http reads what is left
	// of it (up to 256 KiB, whatever Connection says) to reuse the
	// connection, under no deadline, so a client that keeps trickling
	// would keep its connection, a goroutine and Close for as long as it
	// likes. That read fails at once instead, and the connection is closed
	// after the answer. Not once the body was read to its end (a gzip body
	// whose checksum is wrong): net/http's background read of the next
	// request runs then, and failing it cancels the connection's context,
	// so the next request on it was answered 503 "client went away".
	defer func() {
		if err != nil && !wr.eof {
			_ = rc.SetReadDeadline(time.Now())
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
	}()
	var in io.Reader = wr
	if c != codingIdentity {
		d, err := s.decoders.open(c, wr)
		if err != nil {
			if wr.err != nil {
				return buf, wr.err
			}
			return buf, err
		}
		defer d.close()
		in = d
	}
	// Room to see the end of the body: one byte past the limit, or past
	// the announced length (the server stops an identity body there).
	limit := int(min(s.maxBody, math.MaxInt-512)) + 512 // min: an int on 32-bit platforms
	if r.ContentLength > 0 && c == codingIdentity {
		limit = min(limit, int(r.ContentLength)+512)
	}
	grow := func(need int) ([]byte, error) {
		// Take the memory first: a body over the budget waits for other
		// requests to finish, without reading (TCP slows the client) and
		// without that time counting against its rate.
		want := min(max(2*cap(buf), 64<<10, len(buf)+need), limit)
		if extra := unitsFor(want) - *held; extra > 0 {
			t0 := time.Now()
			err := s.budget.acquire(r.Context(), extra, s.timeout, s.closed)
			wr.paused += time.Since(t0)
			if err != nil {
				return buf, err
			}
			*held += extra
		}
		nb := make([]byte, len(buf), want)
		copy(nb, buf)
		return nb, nil
	}
	if extra := unitsFor(cap(buf)) - *held; extra > 0 {
		if err := s.budget.acquire(r.Context(), extra, s.timeout, s.closed); err != nil {
			return buf, err
		}
		*held += extra
	}
	if r.ContentLength > 0 && c == codingIdentity && cap(buf) < int(r.ContentLength)+512 {
		// Sized for what was announced, but only as the bytes come: a
		// client announcing 10 MiB and sending nothing holds little.
		var err error
		if buf, err = grow(min(int(r.ContentLength)+512, 1<<20)); err != nil {
			return buf, err
		}
	}
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > s.maxBody || len(buf) >= limit {
				return buf, errDecodedTooLarge
			}
			var err error
			if buf, err = grow(1); err != nil {
				return buf, err
			}
		}
		n, err := in.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > s.maxBody {
			return buf, errDecodedTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			if wr.err != nil || c == codingIdentity {
				return buf, cmpErr(wr.err, err)
			}
			return buf, fmt.Errorf("%w as %s: %v", errDecoded, c, err)
		}
	}
}

// errDecodedTooLarge: the body, once decoded, is over max_body_size.
var errDecodedTooLarge = errors.New("body larger than max_body_size once decoded")

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
