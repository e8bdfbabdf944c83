package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// MaxBody is the largest body a mutating request may carry. Pause and
// resume take none; the bound leaves room for later endpoints with small
// JSON options.
const MaxBody = 64 << 10

// Bearer checks the "Authorization: Bearer TOKEN" header of requests. It
// keeps only the token's SHA-256 digest, and comparing digests takes the
// same time whatever the lengths. The zero value holds no token and allows
// nothing.
type Bearer struct {
	sum [32]byte
	set bool
}

// NewBearer returns a Bearer for token ("" for none).
func NewBearer(token string) Bearer {
	if token == "" {
		return Bearer{}
	}
	return Bearer{sum: sha256.Sum256([]byte(token)), set: true}
}

// Set reports whether a token is configured.
func (b Bearer) Set() bool { return b.set }

// Allows reports whether r carries the token.
func (b Bearer) Allows(r *http.Request) bool {
	if !b.set {
		return false
	}
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[len(prefix):])))
	return subtle.ConstantTimeCompare(sum[:], b.sum[:]) == 1
}

// noTokenHint says how to configure a token, for the 403 of an API that has
// none.
const noTokenHint = "this needs the admin token, and none is configured: start sluice with --admin-token-file FILE (or SLUICE_ADMIN_TOKEN)"

// RequireToken passes to next only the requests that carry b's token. Others
// get 401 with WWW-Authenticate: Bearer; without a configured token every
// request gets 403, saying how to configure one.
func RequireToken(b Bearer, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !b.set:
			writeError(w, http.StatusForbidden, noTokenHint)
		case !b.Allows(r):
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token (send Authorization: Bearer TOKEN)")
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// crossOrigin refuses unsafe browser requests from other origins, by
// Sec-Fetch-Site or, in older browsers, Origin against Host.
var crossOrigin = http.NewCrossOriginProtection()

// RefuseCrossOrigin answers 403 to a state-changing request a web page of
// another origin sent (a form POST, a fetch): such a request must never act
// on the API, whatever it carries. Safe methods (GET, HEAD, OPTIONS) pass.
func RefuseCrossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := crossOrigin.Check(r); err != nil {
			writeError(w, http.StatusForbidden, "cross-origin request refused: the admin API takes state-changing requests from its own origin or from non-browser clients only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RefuseCrossOriginReads answers 403 to a request for task data (the
// task list, a task, the /events stream, a tap, dead letters) that a web
// page of another origin sent: without a token such a GET passed, so any
// page open in a browser on the machine could hold a task's tap slots (a
// stream the page cannot even read, CORS hides it, but that stays open)
// and the operator got 429. A browser marks the request with
// Sec-Fetch-Site (cross-site, same-site) or, in older browsers, with an
// Origin naming another host; a non-browser client sends neither.
func RefuseCrossOriginReads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if crossOriginRead(r) {
			writeError(w, http.StatusForbidden, "cross-origin request refused: the admin API shows task data to its own origin or to non-browser clients only")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// crossOriginRead reports whether a browser marked r as sent by a page of
// another origin.
func crossOriginRead(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none": // the API's own pages; an address typed in
		return false
	case "":
		// An older browser, or not a browser: Origin, when present, must
		// be this host.
		origin := r.Header.Get("Origin")
		if origin == "" {
			return false
		}
		u, err := url.Parse(origin)
		return err != nil || u.Host != r.Host
	default: // cross-site, same-site (another port of localhost)
		return true
	}
}

// RequireJSON passes on a request only when it is declared JSON
// (Content-Type: application/json, which a web form cannot send and a
// cross-origin page cannot send without a CORS preflight) and its body is
// empty or one JSON value of at most MaxBody bytes. next sees the body
// again.
func RequireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "send Content-Type: application/json (with an empty body or a JSON object)")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusRequestEntityTooLarge, "body larger than 64 KiB")
			return
		case err != nil:
			writeError(w, http.StatusBadRequest, "cannot read the body: "+err.Error())
			return
		case len(strings.TrimSpace(string(body))) > 0 && !json.Valid(body):
			writeError(w, http.StatusBadRequest, "the body is not JSON")
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		next.ServeHTTP(w, r)
	})
}

// LoopbackHost refuses, on a loopback connection, a request whose Host is
// not a loopback name or address: a page of another site whose DNS name
// was made to resolve to 127.0.0.1 (DNS rebinding) counts as same-origin
// to the browser, but its Host header still names that site.
func LoopbackHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		if isLoopbackAddr(local) && !isLoopbackHost(r.Host) {
			writeError(w, http.StatusForbidden, "Host "+r.Host+" is not a loopback name: the admin API listens on loopback and is reached as localhost, 127.0.0.1 or [::1]")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopbackAddr(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

func isLoopbackHost(host string) bool {
	if host == "" {
		return true // HTTP/1.0 without Host
	}
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
