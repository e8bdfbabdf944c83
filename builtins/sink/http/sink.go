package http

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Sink is the HTTP webhook sink. Write is safe for concurrent use.
type Sink struct {
	url      string // as configured, for requests
	safeURL  string // without credentials and query, for messages
	method   string
	header   http.Header // static headers: User-Agent, Authorization, user headers
	host     string      // a Host header from the config
	private  []string    // headers dropped on a cross-origin redirect: the configured ones but Content-Type, Authorization
	ctSet    bool        // the config sets Content-Type
	format   string
	timeout  time.Duration
	maxBytes int
	client   *http.Client
	tr       *http.Transport
	sem      chan struct{}
	log      zerolog.Logger
	states   sync.Pool // *writeState
}

// New builds a sink from a decoded config. It reads the TLS files but makes
// no connection; the first request dials.
func New(cfg *Config, env component.Env) (*Sink, error) {
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("http sink: %w", err)
	}
	s := &Sink{
		url:      cfg.URL,
		safeURL:  safeURL(u),
		method:   cmpOr(cfg.Method, http.MethodPost),
		header:   http.Header{"User-Agent": {"sluice"}},
		format:   cmpOr(cfg.Format, FormatNDJSON),
		timeout:  cfg.Timeout.D(),
		maxBytes: cfg.Batch.MaxBytes.Int(),
		log:      env.Logger,
	}
	if s.timeout <= 0 {
		s.timeout = defaultTimeout
	}
	if s.maxBytes <= 0 {
		s.maxBytes = defaultMaxBytes
	}
	for k, v := range cfg.Headers {
		switch ck := http.CanonicalHeaderKey(k); ck {
		case "Host":
			s.host = v
		default:
			s.header.Set(ck, v)
			s.ctSet = s.ctSet || ck == "Content-Type"
			if ck != "Content-Type" {
				s.private = append(s.private, ck)
			}
		}
	}
	if tok := cfg.Token.Reveal(); tok != "" {
		s.header.Set("Authorization", "Bearer "+tok)
	}
	s.private = append(s.private, "Authorization")
	var tc *tls.Config
	if cfg.TLS != nil {
		if tc, err = cfg.TLS.Config(env.Dir); err != nil {
			return nil, fmt.Errorf("http sink: %w", err)
		}
	}
	inFlight := max(1, cmpOrInt(cfg.MaxInFlight, defaultMaxInFlight))
	s.tr = &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          inFlight,
		MaxIdleConnsPerHost:   inFlight,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       tc,
	}
	s.client = &http.Client{
		Transport: s.tr,
		// 307 and 308 keep the method and body; 301, 302 and 303 would turn
		// a POST into a GET and drop the records, so they are not followed.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			err := s.checkRedirect(req, via)
			if err != nil && req.Body != nil {
				// net/http made this hop's body with GetBody before asking,
				// and neither sends nor closes it when the hop is refused:
				// close it, or the Write would wait for it forever.
				req.Body.Close()
			}
			return err
		},
	}
	s.sem = make(chan struct{}, inFlight)
	return s, nil
}

// maxRedirects is how many 307/308 redirects one request follows.
const maxRedirects = 5

func (s *Sink) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return http.ErrUseLastResponse
	}
	if c := req.Response.StatusCode; c != http.StatusTemporaryRedirect && c != http.StatusPermanentRedirect {
		return http.ErrUseLastResponse
	}
	if !sameOrigin(req.URL, via[0].URL) {
		// net/http strips Authorization only when the host changes,
		// and never the configured headers: an API key must not
		// follow a redirect to someone else's server.
		for _, k := range s.private {
			req.Header.Del(k)
		}
	}
	return nil
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

// Open does nothing: connections are made by the first request and kept
// alive between requests.
func (s *Sink) Open(context.Context) error { return nil }

// Close drops idle connections.
func (s *Sink) Close(context.Context) error {
	s.tr.CloseIdleConnections()
	return nil
}

// span is a record's encoded bytes in writeState.enc; s < 0: not encoded
// (the record failed).
type span struct{ s, e int }

// writeState is the scratch space of one Write.
type writeState struct {
	enc   []byte
	spans []span
	idx   []int // indexes of the records that were encoded, in order
	body  []byte
	errs  map[int]error
	wg    sync.WaitGroup // request bodies the transport has not closed yet
}

// Write sends msgs. See the package doc and docs/connectors/http.md for
// the error classes; per-record outcomes come as *component.RecordErrors.
func (s *Sink) Write(ctx context.Context, msgs []message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	ws, _ := s.states.Get().(*writeState)
	if ws == nil {
		ws = &writeState{}
	}
	defer s.putState(ws)
	if s.format == FormatSingle {
		return s.writeSingle(ctx, ws, msgs)
	}
	s.encode(ws, msgs)
	chunks := s.chunks(ws)
	if len(chunks) == 1 && len(ws.errs) == 0 {
		// One request for the whole batch: its error is the batch's, and
		// the engine splits an event-permanent rejection to find the
		// offending records.
		return s.sendRange(ctx, ws, chunks[0])
	}
	for ci, ch := range chunks {
		err := s.sendRange(ctx, ws, ch)
		if err == nil {
			continue
		}
		if component.ClassOf(err) == component.ClassEventPermanent {
			err = s.isolate(ctx, ws, ch, err)
			if err == nil {
				continue
			}
		} else {
			ws.failRange(ch, err)
		}
		for _, rest := range chunks[ci+1:] {
			ws.failRange(rest, err)
		}
		break
	}
	return ws.result(len(msgs))
}

func (s *Sink) putState(ws *writeState) {
	ws.wg.Wait() // the transport may read a body until it closes it
	ws.errs = nil
	if cap(ws.enc) > 16<<20 {
		return // do not keep a huge buffer for every later Write
	}
	s.states.Put(ws)
}

// encode writes each record's framed form into ws.enc. A record that cannot
// be framed gets an event-permanent error.
func (s *Sink) encode(ws *writeState, msgs []message.Message) {
	ws.enc, ws.spans, ws.idx = ws.enc[:0], ws.spans[:0], ws.idx[:0]
	for i := range msgs {
		p := msgs[i].Payload
		start := len(ws.enc)
		isJSON := jsonscan.Valid(p)
		switch {
		case isJSON:
			ws.enc = appendCompact(ws.enc, p)
		case s.format == FormatJSONArray:
			ws.enc = jsonscan.AppendQuoted(ws.enc, p)
		case bytes.IndexByte(p, '\n') >= 0:
			ws.fail(i, component.EventPermanent(fmt.Errorf("http sink: record %d: the payload is not JSON and holds a newline, which would break the NDJSON framing (use format = \"json_array\" or \"single\", or a transform that makes it JSON)", i)))
			ws.spans = append(ws.spans, span{-1, -1})
			continue
		default:
			ws.enc = append(ws.enc, p...)
		}
		if s.format == FormatJSONArray {
			ws.enc = append(ws.enc, ',')
		} else {
			ws.enc = append(ws.enc, '\n')
		}
		ws.spans = append(ws.spans, span{start, len(ws.enc)})
		ws.idx = append(ws.idx, i)
	}
}

// appendCompact appends the JSON value p (valid, maybe surrounded by
// whitespace) without insignificant whitespace.
func appendCompact(dst, p []byte) []byte {
	s := jsonscan.SkipSpace(p, 0)
	tok := p[s:jsonscan.Skip(p, s)]
	if jsonscan.IsCompact(tok) {
		return append(dst, tok...)
	}
	return jsonscan.AppendCompact(dst, tok)
}

// chunk is a run [a, b) of ws.idx sent as one request.
type chunk struct{ a, b int }

// chunks cuts the encoded records into runs whose bodies stay within
// max_bytes; a record larger than max_bytes forms a run of its own.
func (s *Sink) chunks(ws *writeState) []chunk {
	var out []chunk
	a, size := 0, 1 // 1: the '[' of a JSON array, or slack for NDJSON
	for k, i := range ws.idx {
		n := ws.spans[i].e - ws.spans[i].s
		if k > a && size+n > s.maxBytes {
			out = append(out, chunk{a, k})
			a, size = k, 1
		}
		size += n
	}
	if a < len(ws.idx) {
		out = append(out, chunk{a, len(ws.idx)})
	}
	return out
}

// sendRange sends the records of run c as one request.
func (s *Sink) sendRange(ctx context.Context, ws *writeState, c chunk) error {
	first, last := ws.spans[ws.idx[c.a]], ws.spans[ws.idx[c.b-1]]
	region := ws.enc[first.s:last.e] // records of a run are contiguous in enc
	var body []byte
	ct := "application/x-ndjson"
	if s.format == FormatJSONArray {
		ws.wg.Wait() // the previous request's body is ws.body too
		ws.body = append(append(append(ws.body[:0], '['), region[:len(region)-1]...), ']')
		body, ct = ws.body, "application/json"
	} else {
		body = region
	}
	return s.send(ctx, ws, body, ct)
}

// isolate finds the records of run c that the server rejects: it halves the
// run until single records fail, which get err's class. It returns a
// non-event-permanent error that stopped it (the records from there on are
// marked with it).
func (s *Sink) isolate(ctx context.Context, ws *writeState, c chunk, err error) error {
	if c.b-c.a == 1 {
		ws.fail(ws.idx[c.a], err)
		return nil
	}
	mid := c.a + (c.b-c.a)/2
	halves := [2]chunk{{c.a, mid}, {mid, c.b}}
	for h, half := range halves {
		e := s.sendRange(ctx, ws, half)
		if e == nil {
			continue
		}
		if component.ClassOf(e) == component.ClassEventPermanent {
			e = s.isolate(ctx, ws, half, e)
			if e == nil {
				continue
			}
		} else {
			ws.failRange(half, e)
		}
		if h == 0 {
			ws.failRange(halves[1], e)
		}
		return e
	}
	return nil
}

// writeSingle sends one request per record, in order. Records rejected
// event-permanently are reported and skipped; any other failure stops the
// Write, failing the rest with it so their order is kept on retry.
func (s *Sink) writeSingle(ctx context.Context, ws *writeState, msgs []message.Message) error {
	for i := range msgs {
		p := msgs[i].Payload
		ct := "text/plain; charset=utf-8"
		if jsonscan.Valid(p) {
			ct = "application/json"
		}
		err := s.send(ctx, ws, p, ct)
		if err == nil {
			continue
		}
		if component.ClassOf(err) == component.ClassEventPermanent {
			if len(msgs) == 1 {
				return err
			}
			ws.fail(i, err)
			continue
		}
		if len(ws.errs) == 0 && i == 0 {
			return err
		}
		for j := i; j < len(msgs); j++ {
			ws.fail(j, err)
		}
		break
	}
	return ws.result(len(msgs))
}

func (ws *writeState) fail(i int, err error) {
	if ws.errs == nil {
		ws.errs = map[int]error{}
	}
	ws.errs[i] = err
}

func (ws *writeState) failRange(c chunk, err error) {
	for k := c.a; k < c.b; k++ {
		ws.fail(ws.idx[k], err)
	}
}

// result turns the per-record errors into Write's error: nil, the one
// error every record shares, or *component.RecordErrors.
func (ws *writeState) result(n int) error {
	if len(ws.errs) == 0 {
		return nil
	}
	if len(ws.errs) == n {
		first := ws.errs[0]
		same := true
		for _, e := range ws.errs {
			same = same && e == first
		}
		if same {
			return first
		}
	}
	errs := make(map[int]error, len(ws.errs))
	for i, e := range ws.errs {
		errs[i] = e
	}
	return &component.RecordErrors{Errs: errs}
}

// send makes one request with body and classifies its outcome.
func (s *Sink) send(ctx context.Context, ws *writeState, body []byte, ct string) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return component.Retryable(fmt.Errorf("http sink: %s %s: %w", s.method, s.safeURL, ctx.Err()), 0)
	}
	defer func() { <-s.sem }()
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, s.method, s.url, nil)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("http sink: %s %s: %v", s.method, s.safeURL, unwrapURLErr(err)))
	}
	for k, v := range s.header {
		req.Header[k] = v
	}
	if !s.ctSet {
		req.Header.Set("Content-Type", ct)
	}
	if s.host != "" {
		req.Host = s.host
	}
	req.ContentLength = int64(len(body))
	req.Body = newBody(body, &ws.wg)
	req.GetBody = func() (io.ReadCloser, error) { return newBody(body, &ws.wg), nil }
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return s.transportError(ctx, rctx, err, time.Since(start))
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// net/http hands a 101 over with the raw connection as its body,
		// out of reach of the request's timeout: reading it waited for
		// the server forever. Closing it closes the connection.
		resp.Body.Close()
		return component.TaskPermanent(fmt.Errorf("http sink: %s %s: status 101 Switching Protocols (the server switched to another protocol, which a webhook does not do; check url)", s.method, s.safeURL))
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
		resp.Body.Close()
		if resp.StatusCode == http.StatusMisdirectedRequest {
			// The connection reached a server that does not serve this
			// origin (RFC 9110, 15.5.20): the retry must dial anew, not
			// meet the same server again. The drained body put the
			// connection back among the idle ones before Close returned.
			s.tr.CloseIdleConnections()
		}
	}()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return s.statusError(resp)
}

// statusError classifies a non-2xx answer (docs/delivery.md, "Stages and error classes").
func (s *Sink) statusError(resp *http.Response) error {
	code := resp.StatusCode
	var snip [512]byte
	n, _ := io.ReadFull(resp.Body, snip[:])
	msg := fmt.Sprintf("http sink: %s %s: status %d %s", s.method, s.safeURL, code, http.StatusText(code))
	if t := snippet(snip[:n], n == len(snip)); t != "" {
		msg += ": " + t
	}
	switch {
	// 501 and 505 are 5xx, but about the request's form, not the server's
	// health: the server does not do this method (or feature), or this
	// version of HTTP, and answers every retry the same. Retrying would
	// hold the records until the policy gives up, forever with a buffer.
	case code == http.StatusNotImplemented:
		return component.TaskPermanent(fmt.Errorf("%s (the server does not implement this method or feature; check url and method)", msg))
	case code == http.StatusHTTPVersionNotSupported:
		return component.TaskPermanent(fmt.Errorf("%s (the server refuses this HTTP version; check url, and any proxy in between)", msg))
	case code == http.StatusNetworkAuthenticationRequired:
		// A captive network (often a proxy or hotspot portal) wants a
		// login, as 407 does for a proxy: no retry logs in.
		return component.TaskPermanent(fmt.Errorf("%s (a network gateway between sluice and the server wants a login; check the proxy settings or the network)", msg))
	case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code == http.StatusTooEarly ||
		code == http.StatusMisdirectedRequest || code >= 500 || code < 100:
		// code < 100 and >= 600 are not HTTP statuses, and RFC 9110
		// (section 15) says to treat them as 5xx. 421 is retried on
		// another connection: send drops the idle ones.
		return component.Retryable(errors.New(msg), component.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()))
	case code >= 300 && code < 400:
		loc := resp.Header.Get("Location")
		if lu, err := url.Parse(loc); err == nil && loc != "" {
			loc = safeURL(resp.Request.URL.ResolveReference(lu))
		}
		if (code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect) && loc != "" && redirectsFollowed(resp) >= maxRedirects {
			return component.TaskPermanent(fmt.Errorf("%s (redirects to %q after %d redirects: too many redirects, a loop? set url to the final location)", msg, loc, maxRedirects))
		}
		return component.TaskPermanent(fmt.Errorf("%s (redirects to %q, which is not followed for %s; set url to the new location)", msg, loc, s.method))
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return component.TaskPermanent(fmt.Errorf("%s (check token and headers)", msg))
	case code == http.StatusNotFound || code == http.StatusMethodNotAllowed || code == http.StatusGone ||
		code == http.StatusProxyAuthRequired || code == http.StatusLengthRequired || code == http.StatusRequestURITooLong ||
		code == http.StatusUnsupportedMediaType:
		return component.TaskPermanent(fmt.Errorf("%s (check url, method, format and headers)", msg))
	}
	// 400, 413, 422 and the other 4xx: the server refuses these records.
	return component.EventPermanent(errors.New(msg))
}

// redirectsFollowed counts the redirects that led to resp.
func redirectsFollowed(resp *http.Response) int {
	n := 0
	for r := resp.Request; r != nil && r.Response != nil; r = r.Response.Request {
		n++
	}
	return n
}

// transportError classifies a request that got no answer.
func (s *Sink) transportError(ctx, rctx context.Context, err error, took time.Duration) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // url.Error repeats the URL, query and all
	}
	prefix := fmt.Sprintf("http sink: %s %s", s.method, s.safeURL)
	switch {
	case ctx.Err() != nil:
		return component.Retryable(fmt.Errorf("%s: %w", prefix, ctx.Err()), 0)
	case rctx.Err() != nil:
		return component.Retryable(fmt.Errorf("%s: no answer within timeout (%s)", prefix, s.timeout), 0)
	}
	if strings.HasPrefix(err.Error(), "net/http: invalid header ") {
		// net/http refuses a header before sending anything (Validate
		// refuses such config values already): no retry can help.
		return component.TaskPermanent(fmt.Errorf("%s: %w (check token and headers)", prefix, err))
	}
	var cve *tls.CertificateVerificationError
	if errors.As(err, &cve) {
		return component.TaskPermanent(fmt.Errorf("%s: %w (set tls.ca_file to trust the server's CA)", prefix, err))
	}
	return component.Retryable(fmt.Errorf("%s: %w (after %s)", prefix, err, took.Round(time.Millisecond)), 0)
}

// snippet renders the start of a response body for an error message: one
// line, control characters replaced, invalid UTF-8 dropped.
func snippet(b []byte, truncated bool) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return ""
	}
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, nil)
	}
	var sb strings.Builder
	for _, r := range string(b) {
		if r < 0x20 || r == 0x7f {
			r = ' '
		}
		sb.WriteRune(r)
	}
	if truncated {
		sb.WriteString("…")
	}
	return strconv.Quote(sb.String())
}

// body is a request body that reports when the transport closed it, so the
// buffer behind it is reused only after that (http.RoundTripper may read
// and close a body after Do returned).
type body struct {
	bytes.Reader
	wg   *sync.WaitGroup
	once sync.Once
}

func newBody(b []byte, wg *sync.WaitGroup) *body {
	wg.Add(1)
	r := &body{wg: wg}
	r.Reset(b)
	return r
}

// Close marks the body as released.
func (b *body) Close() error {
	b.once.Do(b.wg.Done)
	return nil
}
