package function

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Register adds the function transform to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindTransform,
		Name:    "function",
		Summary: "Call a remote function (AWS Lambda URL, Knative, OpenFaaS, any HTTP service) with a batch of events and use its answer as the outputs.",
		Description: "POSTs the events as a JSON array to `url` and reads a JSON array with one result per event: its outputs " +
			"(none filters the event, several fan it out) or an error, which sends the event to the dead-letter queue. " +
			"A timeout, a connection failure, 408, 429 or a 5xx answer (but 501, 505 and 511) fails the call's events retryably, and the task's " +
			"retry policy calls again (with all the events that are still failing in one call). See docs/connectors/function.md.",
		Example: `[[transform]]
type = "function"
url = "https://fn.example.com/enrich"
timeout = "10s"
`,
		New:   newConfig,
		Build: build,
	})
}

// Transform is the function transform.
type Transform struct {
	cfg      *Config
	log      zerolog.Logger
	client   *http.Client
	url      string // without credentials
	where    string // for messages
	user     string
	password string
	headers  http.Header
	m        callMetrics
	bufs     sync.Pool // *reqBuf request bodies
	recycled func()    // tests: called as a request buffer goes back to bufs
}

// reqBuf is the request body buffer of one call. The transport may still
// read the body, and close it, after Do returned (http.RoundTripper: the
// body is closed, possibly in another goroutine, after RoundTrip returns),
// so the buffer goes back to the pool only when the call and every body
// handed to the transport are done with it: the last release puts it back.
// A body the transport never closed leaves the buffer to the garbage
// collector, and a call never waits for the transport.
type reqBuf struct {
	b    []byte
	refs atomic.Int32
	t    *Transform
}

func (r *reqBuf) release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.t.recycled != nil {
		r.t.recycled()
	}
	r.t.bufs.Put(r)
}

// body returns a reader of the buffer for the transport, holding the
// buffer until it is closed.
func (r *reqBuf) body() (io.ReadCloser, error) {
	if r.refs.Add(1) == 1 {
		// Already back in the pool: the request is over (GetBody is only
		// called while Do runs, which holds a reference).
		r.refs.Add(-1)
		return nil, errors.New("request body used after the call ended")
	}
	rb := &reqBody{buf: r}
	rb.Reset(r.b)
	return rb, nil
}

// reqBody is a request body that releases its buffer when closed.
type reqBody struct {
	bytes.Reader
	buf  *reqBuf
	once sync.Once
}

func (b *reqBody) Close() error {
	b.once.Do(b.buf.release)
	return nil
}

type callMetrics struct {
	calls   *metrics.CounterVec // outcome
	latency metrics.Observer
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err // Validate reported it
	}
	tr := &Transform{cfg: cfg, log: env.Logger, where: redact(cfg.URL), headers: http.Header{}}
	if u.User != nil {
		tr.user = u.User.Username()
		tr.password, _ = u.User.Password()
		u.User = nil
	}
	tr.url = u.String()
	transport := &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: max(8, env.Concurrency*2),
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	if cfg.TLS != nil {
		tc, err := cfg.TLS.Config(env.Dir)
		if err != nil {
			return nil, err
		}
		transport.TLSClientConfig = tc
	}
	tr.client = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tr.headers.Set("Content-Type", "application/json")
	tr.headers.Set("Accept", "application/json")
	tr.headers.Set("User-Agent", "sluice")
	tr.headers.Set("X-Sluice-Task", env.Task)
	for k, v := range cfg.Headers {
		tr.headers.Set(k, v)
	}
	if cfg.Token != "" {
		tr.headers.Set("Authorization", "Bearer "+cfg.Token.Reveal())
	}
	lbl := env.Task
	tr.m = callMetrics{
		calls:   env.Metrics.Counter("function_calls_total", "Calls of the remote function, by outcome (ok, retryable, rejected).", "task", "outcome").Curry(lbl),
		latency: env.Metrics.Histogram("function_call_seconds", "Time of one call of the remote function.", nil, "task").WithLabelValues(lbl),
	}
	return tr, nil
}

// Close releases idle connections.
func (t *Transform) Close(context.Context) error {
	t.client.CloseIdleConnections()
	return nil
}

// Apply calls the function with in, split into calls of at most max_batch
// events and max_batch_bytes, in order.
func (t *Transform) Apply(ctx context.Context, in []message.Message, out *component.Output) error {
	start, size := 0, 2
	for i := range in {
		n := len(in[i].Payload) + 1
		if i > start && (i-start >= t.cfg.MaxBatch || size+n > t.cfg.MaxBatchBytes.Int()) {
			if err := t.call(ctx, in[start:i], out); err != nil {
				return err
			}
			start, size = i, 2
		}
		size += n
	}
	if start < len(in) {
		return t.call(ctx, in[start:], out)
	}
	return nil
}

// call makes one request for in. Only the end of ctx is returned as an
// error; every other failure is reported per event.
func (t *Transform) call(ctx context.Context, in []message.Message, out *component.Output) error {
	rb, _ := t.bufs.Get().(*reqBuf)
	if rb == nil {
		rb = &reqBuf{t: t}
	}
	rb.refs.Store(1) // the call's own reference
	defer rb.release()
	body := rb.b[:0]
	body = append(body, '[')
	for i := range in {
		if i > 0 {
			body = append(body, ',')
		}
		if v, ok := eventenc.JSONValue(in[i].Payload); ok {
			body = append(body, v...)
		} else {
			// Not JSON (a template's text output): sent as a JSON string.
			body = eventenc.AppendQuoted(body, in[i].Payload)
		}
	}
	body = append(body, ']')
	rb.b = body

	cctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(cctx, http.MethodPost, t.url, nil)
	if err != nil {
		t.failAll(in, out, component.EventPermanent(fmt.Errorf("function %s: %w", t.where, err)))
		return nil
	}
	req.ContentLength = int64(len(body))
	req.Body, _ = rb.body() // cannot fail: the call holds a reference
	req.GetBody = rb.body
	req.Header = t.headers.Clone()
	if t.user != "" {
		req.SetBasicAuth(t.user, t.password)
	}
	began := time.Now()
	resp, err := t.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if cctx.Err() != nil {
			err = fmt.Errorf("no answer within timeout (%s)", t.cfg.Timeout)
		} else {
			err = errors.Unwrap(err) // *url.Error repeats the URL, which may hold credentials
		}
		t.m.calls.WithLabelValues("retryable").Inc()
		t.failAll(in, out, component.Retryable(fmt.Errorf("call function %s: %w", t.where, err), 0))
		return nil
	}
	defer resp.Body.Close()
	answer, rerr := io.ReadAll(io.LimitReader(resp.Body, int64(t.cfg.MaxResponse)+1))
	t.m.latency.Observe(time.Since(began).Seconds())
	if rerr != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.m.calls.WithLabelValues("retryable").Inc()
		t.failAll(in, out, component.Retryable(fmt.Errorf("call function %s: reading the answer: %w", t.where, rerr), 0))
		return nil
	}
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
	// 501 (method or feature not implemented), 505 (HTTP version refused)
	// and 511 (a network gateway wants a login) are 5xx that no retry
	// changes: they are rejections, as 4xx are.
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
		code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported && code != http.StatusNetworkAuthenticationRequired:
		t.m.calls.WithLabelValues("retryable").Inc()
		t.failAll(in, out, component.Retryable(fmt.Errorf("function %s answered %s: %s", t.where, resp.Status, excerpt(answer)), retryAfter(resp)))
		return nil
	default:
		t.m.calls.WithLabelValues("rejected").Inc()
		t.failAll(in, out, component.EventPermanent(fmt.Errorf("function %s answered %s (%s): fix the request (url, headers, token) or the function", t.where, resp.Status, excerpt(answer))))
		return nil
	}
	if len(answer) > t.cfg.MaxResponse.Int() {
		t.m.calls.WithLabelValues("rejected").Inc()
		t.failAll(in, out, component.EventPermanent(fmt.Errorf("function %s answered more than max_response_bytes (%s)", t.where, t.cfg.MaxResponse)))
		return nil
	}
	rs := &results{in: in, out: out, where: t.where, max: t.cfg.MaxOutputs}
	mark, fmark, bmark := len(out.Messages), len(out.Failures), len(out.Buf)
	if err := parse(answer, len(in), t.cfg.Response, rs); err != nil {
		t.m.calls.WithLabelValues("rejected").Inc()
		t.failAll(in, out, component.EventPermanent(fmt.Errorf("function %s: %w", t.where, err)))
		return nil
	}
	if rs.over {
		// Stopped at the limit: nothing of the answer is kept.
		clear(out.Messages[mark:])
		out.Messages, out.Failures, out.Buf = out.Messages[:mark], out.Failures[:fmark], out.Buf[:bmark]
		t.m.calls.WithLabelValues("rejected").Inc()
		t.failAll(in, out, component.EventPermanent(fmt.Errorf("function %s answered more than max_outputs (%d) outputs for %d events", t.where, t.cfg.MaxOutputs, len(in))))
		return nil
	}
	t.m.calls.WithLabelValues("ok").Inc()
	return nil
}

func (t *Transform) failAll(in []message.Message, out *component.Output, err error) {
	for i := range in {
		out.Fail(&in[i], err)
	}
}

// retryAfter reads a function's Retry-After header, as the HTTP sink
// reads a server's.
func retryAfter(resp *http.Response) time.Duration {
	return component.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
}

// results turns parsed results into outputs and failures of one call.
type results struct {
	in    []message.Message
	out   *component.Output
	where string
	// max bounds the outputs of the call (max_outputs); over is set once
	// an answer holds more, and nothing more is emitted.
	max, n int
	over   bool
}

func (r *results) output(i int, v []byte) {
	if r.over {
		return
	}
	if r.n >= r.max {
		r.over = true
		return
	}
	r.n++
	o := r.out
	start := len(o.Buf)
	o.Buf = append(o.Buf, v...)
	o.Emit(&r.in[i], o.Buf[start:len(o.Buf):len(o.Buf)])
}

func (r *results) fail(i int, msg string, retry bool) {
	err := fmt.Errorf("function %s: %s", r.where, msg)
	if retry {
		r.out.Fail(&r.in[i], component.Retryable(err, 0))
		return
	}
	r.out.Fail(&r.in[i], component.EventPermanent(err))
}
