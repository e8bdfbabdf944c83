package http

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestFormats(t *testing.T) {
	in := msgs(`{"a": 1,  "b": [1, 2]}`, `plain text`, `"str"`, "  42 \n")
	t.Run("ndjson", func(t *testing.T) {
		rec := newRecorder(t, nil)
		s := newSink(t, urlKey(rec.srv.URL+"/hook"))
		if err := s.Write(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		reqs := rec.all()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.method != "POST" || r.path != "/hook" || r.header.Get("Content-Type") != "application/x-ndjson" {
			t.Errorf("request %s %s %q", r.method, r.path, r.header.Get("Content-Type"))
		}
		want := "{\"a\":1,\"b\":[1,2]}\nplain text\n\"str\"\n42\n"
		if r.body != want {
			t.Errorf("body %q, want %q", r.body, want)
		}
	})
	t.Run("ndjson text with newline", func(t *testing.T) {
		rec := newRecorder(t, nil)
		s := newSink(t, urlKey(rec.srv.URL))
		err := s.Write(context.Background(), msgs(`{"a":1}`, "two\nlines", `3`))
		var re *component.RecordErrors
		if !errors.As(err, &re) || len(re.Errs) != 1 || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
			t.Fatalf("err %v, want RecordErrors with record 1 event-permanent", err)
		}
		if !strings.Contains(re.Errs[1].Error(), "newline") {
			t.Errorf("message %q does not say why", re.Errs[1])
		}
		if reqs := rec.all(); len(reqs) != 1 || reqs[0].body != "{\"a\":1}\n3\n" {
			t.Fatalf("requests %+v, want the two good records", reqs)
		}
	})
	t.Run("json_array", func(t *testing.T) {
		rec := newRecorder(t, nil)
		s := newSink(t, urlKey(rec.srv.URL)+`format = "json_array"`)
		if err := s.Write(context.Background(), msgs(`{"a": 1}`, "two\nlines", `[ 1 , 2 ]`, `bad "quote"`)); err != nil {
			t.Fatal(err)
		}
		reqs := rec.all()
		want := `[{"a":1},"two\nlines",[1,2],"bad \"quote\""]`
		if len(reqs) != 1 || reqs[0].body != want || reqs[0].header.Get("Content-Type") != "application/json" {
			t.Fatalf("requests %+v, want body %s", reqs, want)
		}
	})
	t.Run("single", func(t *testing.T) {
		rec := newRecorder(t, nil)
		s := newSink(t, urlKey(rec.srv.URL)+"format = \"single\"\nmethod = \"PUT\"")
		if err := s.Write(context.Background(), in); err != nil {
			t.Fatal(err)
		}
		reqs := rec.all()
		if len(reqs) != len(in) {
			t.Fatalf("%d requests, want %d", len(reqs), len(in))
		}
		wantCT := []string{"application/json", "text/plain; charset=utf-8", "application/json", "application/json"}
		for i, r := range reqs {
			if r.method != "PUT" || r.body != string(in[i].Payload) || r.header.Get("Content-Type") != wantCT[i] {
				t.Errorf("request %d: %s %q %q", i, r.method, r.body, r.header.Get("Content-Type"))
			}
		}
	})
	t.Run("empty write", func(t *testing.T) {
		rec := newRecorder(t, nil)
		s := newSink(t, urlKey(rec.srv.URL))
		if err := s.Write(context.Background(), nil); err != nil || len(rec.all()) != 0 {
			t.Fatalf("err %v, %d requests", err, len(rec.all()))
		}
	})
}

func TestHeaders(t *testing.T) {
	rec := newRecorder(t, nil)
	u := strings.Replace(rec.srv.URL, "http://", "http://alice:pw@", 1)
	s := newSink(t, urlKey(u+"/h?k=v")+`token = "tok"
headers = { "X-Api-Key" = "k1", "content-type" = "application/vnd.acme+x-ndjson", "Host" = "hooks.example" }`)
	if err := s.Write(context.Background(), msgs(`1`)); err != nil {
		t.Fatal(err)
	}
	r := rec.all()[0]
	checks := map[string]string{
		"Authorization": "Bearer tok",
		"X-Api-Key":     "k1",
		"Content-Type":  "application/vnd.acme+x-ndjson",
		"User-Agent":    "sluice",
		"Host":          "hooks.example",
	}
	for k, v := range checks {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	t.Run("basic auth from url", func(t *testing.T) {
		rec := newRecorder(t, nil)
		u := strings.Replace(rec.srv.URL, "http://", "http://alice:pw@", 1)
		s := newSink(t, urlKey(u))
		if err := s.Write(context.Background(), msgs(`1`)); err != nil {
			t.Fatal(err)
		}
		if got := rec.all()[0].header.Get("Authorization"); got != "Basic YWxpY2U6cHc=" {
			t.Errorf("Authorization %q", got)
		}
	})
}

func TestStatusClasses(t *testing.T) {
	date := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	cases := []struct {
		code       int
		retryAfter string
		class      component.Class
		minRA      time.Duration
		maxRA      time.Duration
	}{
		{500, "", component.ClassRetryable, 0, 0},
		{502, "", component.ClassRetryable, 0, 0},
		{503, "7", component.ClassRetryable, 7 * time.Second, 7 * time.Second},
		{429, "3", component.ClassRetryable, 3 * time.Second, 3 * time.Second},
		{429, date, component.ClassRetryable, 80 * time.Second, 91 * time.Second},
		{429, "soon", component.ClassRetryable, 0, 0},
		{408, "", component.ClassRetryable, 0, 0},
		{400, "", component.ClassEventPermanent, 0, 0},
		{413, "", component.ClassEventPermanent, 0, 0},
		{422, "", component.ClassEventPermanent, 0, 0},
		{409, "", component.ClassEventPermanent, 0, 0},
		{401, "", component.ClassTaskPermanent, 0, 0},
		{403, "", component.ClassTaskPermanent, 0, 0},
		{404, "", component.ClassTaskPermanent, 0, 0},
		{405, "", component.ClassTaskPermanent, 0, 0},
		{415, "", component.ClassTaskPermanent, 0, 0},
		{302, "", component.ClassTaskPermanent, 0, 0},
		// 501 (method or feature not supported), 505 (HTTP version
		// refused) and 511 (a captive network wants a login, as 407 a
		// proxy) come back for every request until someone changes the
		// config or the network: retrying would hold the records until
		// the policy gives up (forever with a disk buffer).
		{501, "", component.ClassTaskPermanent, 0, 0},
		{505, "", component.ClassTaskPermanent, 0, 0},
		{511, "", component.ClassTaskPermanent, 0, 0},
		{504, "2", component.ClassRetryable, 2 * time.Second, 2 * time.Second},
		// 421: the connection reached a server that does not serve this
		// origin; another connection may (RFC 9110, 15.5.20), and the
		// records are not at fault.
		{421, "", component.ClassRetryable, 0, 0},
		{425, "", component.ClassRetryable, 0, 0},
		// Outside 100..599 a client treats a status as 5xx (RFC 9110, 15).
		{600, "", component.ClassRetryable, 0, 0},
		{999, "", component.ClassRetryable, 0, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%d %s", c.code, c.retryAfter), func(t *testing.T) {
			rec := newRecorder(t, func(_ int, _ request, w http.ResponseWriter) bool {
				if c.retryAfter != "" {
					w.Header().Set("Retry-After", c.retryAfter)
				}
				if c.code == 302 {
					w.Header().Set("Location", "/elsewhere?token=x")
				}
				w.WriteHeader(c.code)
				fmt.Fprintf(w, "reason for %d\nsecond line\x00", c.code)
				return true
			})
			u := strings.Replace(rec.srv.URL, "http://", "http://user:hunter2@", 1) + "/hook?key=s3cret"
			s := newSink(t, urlKey(u))
			err := s.Write(context.Background(), msgs(`{"a":1}`, `{"a":2}`))
			if err == nil {
				t.Fatal("no error")
			}
			if got := component.ClassOf(err); got != c.class {
				t.Errorf("class %v, want %v (%v)", got, c.class, err)
			}
			if ra := component.RetryAfter(err); ra < c.minRA || ra > c.maxRA {
				t.Errorf("retry after %v, want %v..%v", ra, c.minRA, c.maxRA)
			}
			msg := err.Error()
			for _, leak := range []string{"hunter2", "s3cret", "user:"} {
				if strings.Contains(msg, leak) {
					t.Errorf("message leaks %q: %s", leak, msg)
				}
			}
			for _, want := range []string{"POST http://127.0.0.1", "/hook", fmt.Sprintf("status %d", c.code), fmt.Sprintf("reason for %d second line", c.code)} {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q lacks %q", msg, want)
				}
			}
			if len(rec.all()) != 1 {
				t.Errorf("%d requests, want 1 (the engine retries, not the sink)", len(rec.all()))
			}
		})
	}
}

// TestMisdirectedRetriesOnANewConnection: a 421 says this connection
// reached a server that does not serve the URL's origin, so the retry must
// not go out on the same kept-alive connection, where it would meet the
// same answer.
func TestMisdirectedRetriesOnANewConnection(t *testing.T) {
	rec := newRecorder(t, func(n int, _ request, w http.ResponseWriter) bool {
		if n == 0 {
			w.WriteHeader(http.StatusMisdirectedRequest)
			return true
		}
		return false
	})
	s := newSink(t, urlKey(rec.srv.URL))
	batch := msgs(`1`, `2`)
	if err := s.Write(context.Background(), batch); component.ClassOf(err) != component.ClassRetryable || err == nil {
		t.Fatalf("first write: %v (class %v), want retryable", err, component.ClassOf(err))
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("second write: %v", err)
	}
	reqs := rec.all()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	if reqs[0].remote == reqs[1].remote {
		t.Errorf("the retry after 421 reused the connection %s", reqs[0].remote)
	}
}

// TestSameConnectionIsKept: the counterpart of the test above, so that it
// proves something: without a 421 the second request reuses the connection.
func TestSameConnectionIsKept(t *testing.T) {
	rec := newRecorder(t, func(n int, _ request, w http.ResponseWriter) bool {
		if n == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	s := newSink(t, urlKey(rec.srv.URL))
	s.Write(context.Background(), msgs(`1`))
	if err := s.Write(context.Background(), msgs(`1`)); err != nil {
		t.Fatal(err)
	}
	if reqs := rec.all(); len(reqs) != 2 || reqs[0].remote != reqs[1].remote {
		t.Errorf("requests %+v: want two on one connection", reqs)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	rec := newRecorder(t, func(n int, _ request, w http.ResponseWriter) bool {
		if n == 0 {
			w.WriteHeader(500)
			return true
		}
		return false
	})
	s := newSink(t, urlKey(rec.srv.URL))
	batch := msgs(`1`, `2`)
	err := s.Write(context.Background(), batch)
	if component.ClassOf(err) != component.ClassRetryable || err == nil {
		t.Fatalf("first write: %v, want retryable", err)
	}
	if err := s.Write(context.Background(), batch); err != nil {
		t.Fatalf("second write: %v", err)
	}
	reqs := rec.all()
	if len(reqs) != 2 || reqs[0].body != reqs[1].body {
		t.Fatalf("requests %+v, want the same body twice", reqs)
	}
}

func TestTimeoutsAndConnections(t *testing.T) {
	t.Run("hang", func(t *testing.T) {
		release := make(chan struct{})
		rec := newRecorder(t, func(_ int, _ request, w http.ResponseWriter) bool {
			<-release
			return false
		})
		defer close(release)
		s := newSink(t, urlKey(rec.srv.URL)+`timeout = "100ms"`)
		start := time.Now()
		err := s.Write(context.Background(), msgs(`1`))
		if component.ClassOf(err) != component.ClassRetryable || err == nil || !strings.Contains(err.Error(), "timeout (100ms)") {
			t.Fatalf("err %v, want retryable timeout", err)
		}
		// The error names the timeout; this bound only catches a wait for
		// the server (which never answers), far above any stall.
		if d := time.Since(start); d > 30*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("cancelled by the engine", func(t *testing.T) {
		release := make(chan struct{})
		rec := newRecorder(t, func(_ int, _ request, w http.ResponseWriter) bool {
			<-release
			return false
		})
		defer close(release)
		s := newSink(t, urlKey(rec.srv.URL))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := s.Write(ctx, msgs(`1`))
		if !errors.Is(err, context.DeadlineExceeded) || component.ClassOf(err) != component.ClassRetryable {
			t.Fatalf("err %v, want retryable context error", err)
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		s := newSink(t, urlKey("http://"+addr+"/x"))
		err = s.Write(context.Background(), msgs(`1`))
		if err == nil || component.ClassOf(err) != component.ClassRetryable || !strings.Contains(err.Error(), addr) {
			t.Fatalf("err %v, want retryable naming %s", err, addr)
		}
	})
	t.Run("307 is followed with the body", func(t *testing.T) {
		rec := newRecorder(t, func(n int, r request, w http.ResponseWriter) bool {
			if r.path == "/old" {
				w.Header().Set("Location", "/new")
				w.WriteHeader(http.StatusTemporaryRedirect)
				return true
			}
			return false
		})
		s := newSink(t, urlKey(rec.srv.URL+"/old"))
		if err := s.Write(context.Background(), msgs(`{"x":1}`)); err != nil {
			t.Fatal(err)
		}
		reqs := rec.all()
		if len(reqs) != 2 || reqs[1].path != "/new" || reqs[1].body != "{\"x\":1}\n" {
			t.Fatalf("requests %+v", reqs)
		}
	})
}

func TestMaxBytes(t *testing.T) {
	rec := newRecorder(t, nil)
	s := newSink(t, urlKey(rec.srv.URL)+"batch = { max_bytes = \"64B\" }")
	var in []string
	for i := range 10 {
		in = append(in, fmt.Sprintf(`{"n":%d,"pad":"xxxxxxxx"}`, i)) // 25 bytes + newline
	}
	in = append(in, `{"big":"`+strings.Repeat("y", 100)+`"}`, `{"n":10}`)
	if err := s.Write(context.Background(), msgs(in...)); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rec.all() {
		if len(r.body) > 64 && !strings.Contains(r.body, "big") {
			t.Errorf("body of %d bytes over max_bytes: %q", len(r.body), r.body)
		}
		if strings.Contains(r.body, "big") && strings.Count(r.body, "\n") != 1 {
			t.Errorf("an over-size record shares its request: %q", r.body)
		}
		got = append(got, lines(r.body)...)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("records across requests\n got %q\nwant %q", got, in)
	}
	if n := len(rec.all()); n != 7 {
		t.Errorf("%d requests, want 7 (5 pairs, the big one, the last)", n)
	}

	t.Run("json_array", func(t *testing.T) {
		rec := newRecorder(t, nil)
		s := newSink(t, urlKey(rec.srv.URL)+"format = \"json_array\"\nbatch = { max_bytes = \"20B\" }")
		if err := s.Write(context.Background(), msgs(`1111`, `2222`, `3333`, `4444`, `5555`)); err != nil {
			t.Fatal(err)
		}
		var bodies []string
		for _, r := range rec.all() {
			bodies = append(bodies, r.body)
		}
		want := []string{"[1111,2222,3333]", "[4444,5555]"}
		if !reflect.DeepEqual(bodies, want) {
			t.Fatalf("bodies %q, want %q", bodies, want)
		}
	})
}

// poisonServer rejects with 400 any body that holds "poison".
func poisonServer(t *testing.T, failOn func(n int) int) *recorder {
	return newRecorder(t, func(n int, r request, w http.ResponseWriter) bool {
		if failOn != nil {
			if code := failOn(n); code != 0 {
				w.WriteHeader(code)
				return true
			}
		}
		if strings.Contains(r.body, "poison") {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"poison"}`)
			return true
		}
		return false
	})
}

func delivered(rec *recorder) map[string]int {
	out := map[string]int{}
	for _, r := range rec.all() {
		if strings.Contains(r.body, "poison") {
			continue // rejected
		}
		for _, l := range lines(r.body) {
			out[l]++
		}
	}
	return out
}

func TestPoisonRecords(t *testing.T) {
	t.Run("one request: the engine splits", func(t *testing.T) {
		rec := poisonServer(t, nil)
		s := newSink(t, urlKey(rec.srv.URL))
		err := s.Write(context.Background(), msgs(`"ok1"`, `"poison"`, `"ok2"`))
		var re *component.RecordErrors
		if errors.As(err, &re) || component.ClassOf(err) != component.ClassEventPermanent {
			t.Fatalf("err %v, want one event-permanent error for the batch", err)
		}
	})
	t.Run("several requests: isolated in the sink", func(t *testing.T) {
		rec := poisonServer(t, nil)
		s := newSink(t, urlKey(rec.srv.URL)+"batch = { max_bytes = \"40B\" }")
		var in []string
		for i := range 12 {
			if i == 3 || i == 4 || i == 10 {
				in = append(in, fmt.Sprintf(`"poison-%02d"`, i))
			} else {
				in = append(in, fmt.Sprintf(`"ok-%02d"`, i))
			}
		}
		err := s.Write(context.Background(), msgs(in...))
		var re *component.RecordErrors
		if !errors.As(err, &re) {
			t.Fatalf("err %v, want RecordErrors", err)
		}
		var bad []int
		for i, e := range re.Errs {
			if component.ClassOf(e) != component.ClassEventPermanent {
				t.Errorf("record %d: class %v", i, component.ClassOf(e))
			}
			bad = append(bad, i)
		}
		if len(bad) != 3 || re.Errs[3] == nil || re.Errs[4] == nil || re.Errs[10] == nil {
			t.Fatalf("failed records %v, want 3, 4, 10", bad)
		}
		got := delivered(rec)
		for i, p := range in {
			want := 1
			if strings.Contains(p, "poison") {
				want = 0
			}
			if got[p] != want {
				t.Errorf("record %d %s delivered %d times, want %d", i, p, got[p], want)
			}
		}
	})
	t.Run("several requests: a retryable failure stops the write", func(t *testing.T) {
		rec := poisonServer(t, func(n int) int {
			if n == 1 {
				return 503
			}
			return 0
		})
		s := newSink(t, urlKey(rec.srv.URL)+"batch = { max_bytes = \"20B\" }")
		in := []string{`"a-0"`, `"a-1"`, `"a-2"`, `"a-3"`, `"a-4"`, `"a-5"`}
		err := s.Write(context.Background(), msgs(in...))
		var re *component.RecordErrors
		if !errors.As(err, &re) {
			t.Fatalf("err %v, want RecordErrors", err)
		}
		for i := range in {
			e, failed := re.Errs[i]
			if i < 3 && failed {
				t.Errorf("record %d of the delivered first request failed: %v", i, e)
			}
			if i >= 3 && (!failed || component.ClassOf(e) != component.ClassRetryable) {
				t.Errorf("record %d: %v, want retryable", i, e)
			}
		}
		if n := len(rec.all()); n != 2 {
			t.Errorf("%d requests, want 2 (stop at the failure)", n)
		}
	})
	t.Run("single format", func(t *testing.T) {
		rec := poisonServer(t, func(n int) int {
			if n == 2 {
				return 503
			}
			return 0
		})
		s := newSink(t, urlKey(rec.srv.URL)+`format = "single"`)
		err := s.Write(context.Background(), msgs(`"ok"`, `"poison"`, `"later"`, `"last"`))
		var re *component.RecordErrors
		if !errors.As(err, &re) || len(re.Errs) != 3 {
			t.Fatalf("err %v, want RecordErrors for records 1..3", err)
		}
		if component.ClassOf(re.Errs[1]) != component.ClassEventPermanent ||
			component.ClassOf(re.Errs[2]) != component.ClassRetryable || component.ClassOf(re.Errs[3]) != component.ClassRetryable {
			t.Errorf("classes %v %v %v", component.ClassOf(re.Errs[1]), component.ClassOf(re.Errs[2]), component.ClassOf(re.Errs[3]))
		}
		if n := len(rec.all()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})
	t.Run("single format, first record fails", func(t *testing.T) {
		rec := poisonServer(t, func(n int) int { return 401 })
		s := newSink(t, urlKey(rec.srv.URL)+`format = "single"`)
		err := s.Write(context.Background(), msgs(`1`, `2`))
		var re *component.RecordErrors
		if errors.As(err, &re) || component.ClassOf(err) != component.ClassTaskPermanent {
			t.Fatalf("err %v, want one task-permanent error", err)
		}
	})
}

func TestConcurrentWrites(t *testing.T) {
	var inFlight, peak atomic.Int32
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond) // a slow server, so that requests overlap: not synchronisation
		buf, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		for _, l := range lines(string(buf)) {
			seen[l]++
		}
		mu.Unlock()
	}))
	defer srv.Close()
	s := newSink(t, urlKey(srv.URL)+"max_in_flight = 3")
	const workers, writes, per = 8, 25, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range writes {
				var in []message.Message
				for j := range per {
					p := fmt.Sprintf(`{"w":%d,"i":%d,"j":%d}`, w, i, j)
					in = append(in, message.Message{Payload: []byte(p)})
				}
				if err := s.Write(context.Background(), in); err != nil {
					t.Error(err)
				}
				for k := range in {
					in[k].Payload[0] = 'X' // the sink must not hold payloads after Write
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != workers*writes*per {
		t.Fatalf("%d distinct records, want %d", len(seen), workers*writes*per)
	}
	for l, n := range seen {
		if n != 1 || l[0] != '{' {
			t.Fatalf("record %q seen %d times", l, n)
		}
	}
	if p := peak.Load(); p > 3 {
		t.Errorf("peak %d requests in flight, max_in_flight is 3", p)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "ca.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)

	t.Run("trusted ca_file", func(t *testing.T) {
		cfg, probs := decodeConfig(t, urlKey(srv.URL)+`tls = { ca_file = "ca.pem" }`)
		if len(probs) > 0 {
			t.Fatal(probs)
		}
		env := testEnv(t)
		env.Dir = dir
		s, err := New(cfg, env)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close(context.Background())
		if err := s.Write(context.Background(), msgs(`1`)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown authority", func(t *testing.T) {
		s := newSink(t, urlKey(srv.URL))
		err := s.Write(context.Background(), msgs(`1`))
		if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "tls.ca_file") {
			t.Fatalf("err %v, want task-permanent certificate error", err)
		}
	})
	t.Run("missing ca file", func(t *testing.T) {
		cfg, _ := decodeConfig(t, urlKey(srv.URL)+`tls = { ca_file = "nope.pem" }`)
		if _, err := New(cfg, testEnv(t)); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
			t.Fatalf("err %v", err)
		}
	})
}

// TestRetryAfterDateIsCapped: a 503 whose Retry-After is an HTTP date
// centuries away passes on at most 7 days, as the seconds form does.
func TestRetryAfterDateIsCapped(t *testing.T) {
	rec := newRecorder(t, func(n int, r request, w http.ResponseWriter) bool {
		w.Header().Set("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT")
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	s := newSink(t, urlKey(rec.srv.URL))
	err := s.Write(context.Background(), msgs(`{"a":1}`))
	if c := component.ClassOf(err); c != component.ClassRetryable {
		t.Fatalf("class %v, want retryable: %v", c, err)
	}
	if ra := component.RetryAfter(err); ra != 7*24*time.Hour {
		t.Fatalf("Retry-After hint = %v, want 7 days (the cap)", ra)
	}
}

// TestInvalidHeaderValueIsTaskPermanent: a header value net/http refuses
// (Validate refuses it in the config; this one is set behind its back)
// fails every request before anything is sent, so it stops the task
// instead of being retried and dead-lettering every record.
func TestInvalidHeaderValueIsTaskPermanent(t *testing.T) {
	rec := newRecorder(t, nil)
	s := newSink(t, urlKey(rec.srv.URL))
	s.header.Set("X-Api-Key", "k\x01ey")
	err := s.Write(context.Background(), msgs(`{"a":1}`))
	if c := component.ClassOf(err); c != component.ClassTaskPermanent {
		t.Fatalf("class %v, want task_permanent: %v", c, err)
	}
	if strings.Contains(err.Error(), "k\x01ey") {
		t.Errorf("error quotes the header value: %v", err)
	}
	if n := len(rec.all()); n != 0 {
		t.Errorf("server saw %d requests", n)
	}
}

// TestStatusBelow100IsRetryable: net/http takes any three digits as a
// status, and net/http's server cannot send one below 100, so a bare
// listener answers "099". RFC 9110 (section 15) has a client treat a
// status outside 100..599 as 5xx; it used to fall through to the 4xx rule
// and dead-letter records the server never judged.
func TestStatusBelow100IsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 099 Odd\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
	})
	s := newSink(t, urlKey("http://"+addr))
	err = s.Write(context.Background(), msgs(`{"a":1}`))
	if c := component.ClassOf(err); c != component.ClassRetryable {
		t.Fatalf("class %v, want retryable: %v", c, err)
	}
	if !strings.Contains(err.Error(), "status 99") {
		t.Errorf("message %q does not name the status", err)
	}
}

// TestSwitchingProtocolsAnswerStopsTheTaskWithoutHanging: net/http hands
// a 101 over as the final answer, with the raw connection as its body and
// out of reach of the request's timeout. The sink read that body for the
// error message and to drain it, so a server (or a proxy) that answered
// 101 and kept the connection open held the Write, the worker and the
// task's shutdown forever. A 101 to a plain POST is about the setup (the
// url points at something that is not a webhook): it is task-permanent.
func TestSwitchingProtocolsAnswerStopsTheTaskWithoutHanging(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	defer close(hold)
	addr := testkit.Serve(t, ln, func(c net.Conn) {
		defer c.Close()
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		<-hold // the connection stays open and silent
	})
	s := newSink(t, urlKey("http://"+addr)+`timeout = "300ms"`)
	done := make(chan error, 1)
	go func() { done <- s.Write(context.Background(), msgs(`{"a":1}`)) }()
	select {
	case err := <-done:
		if c := component.ClassOf(err); c != component.ClassTaskPermanent {
			t.Fatalf("class %v, want task_permanent: %v", c, err)
		}
		if !strings.Contains(err.Error(), "status 101") {
			t.Errorf("message %q does not name the status", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Write still waits 20 s after a 101 answer, with timeout = 300ms")
	}
}
