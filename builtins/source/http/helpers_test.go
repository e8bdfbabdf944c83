package http

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// decodeConfig runs the loader's path for a table written as TOML.
func decodeConfig(t testing.TB, src string) (*Config, []component.Problem) {
	t.Helper()
	cfg, p := componenttest.Decode(t, Register, component.KindSource, "http", src)
	return cfg.(*Config), p.List()
}

func testEnv(t testing.TB) component.Env {
	return componenttest.Env(t, zerolog.WarnLevel, "source")
}

// startSource builds a source from TOML keys (address defaults to a free
// loopback port), opens it and returns it with its base URL.
func startSource(t testing.TB, keys string) (*Source, string) {
	t.Helper()
	if !strings.Contains(keys, "address") {
		keys = "address = \"127.0.0.1:0\"\n" + keys
	}
	cfg, probs := decodeConfig(t, keys)
	if len(probs) > 0 {
		t.Fatalf("config problems: %v", probs)
	}
	env := testEnv(t)
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSource, "http")
	v, err := spec.Build(cfg, env)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	s := v.(*Source)
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	return s, scheme + "://" + s.Addr().String()
}

// engine plays the task engine: it reads batches and acknowledges each with
// what decide returns after delay (never, when decide says so).
type engine struct {
	src     *Source
	mu      sync.Mutex
	batches []component.Batch
	events  [][]message.Message // deep copies taken at Read time
	decide  func(b component.Batch) (delay time.Duration, ack bool, err error)
	cancel  context.CancelFunc
	done    chan struct{}
	acks    sync.WaitGroup
}

func runEngine(t testing.TB, s *Source, decide func(b component.Batch) (time.Duration, bool, error)) *engine {
	ctx, cancel := context.WithCancel(context.Background())
	e := &engine{src: s, decide: decide, cancel: cancel, done: make(chan struct{})}
	if e.decide == nil {
		e.decide = func(component.Batch) (time.Duration, bool, error) { return 0, true, nil }
	}
	go func() {
		defer close(e.done)
		for {
			b, err := s.Read(ctx)
			if err != nil {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
					t.Errorf("read: %v", err)
				}
				return
			}
			e.mu.Lock()
			e.batches = append(e.batches, b)
			e.events = append(e.events, copyMsgs(b.Messages))
			e.mu.Unlock()
			delay, ack, aerr := e.decide(b)
			if !ack {
				continue
			}
			e.acks.Add(1)
			go func() {
				defer e.acks.Done()
				time.Sleep(delay) // a slow sink, as the test scripts it: not synchronisation
				b.Ack(aerr)
			}()
		}
	}()
	t.Cleanup(func() { e.stop() })
	return e
}

func (e *engine) stop() {
	e.cancel()
	<-e.done
	e.acks.Wait()
}

func (e *engine) all() [][]message.Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([][]message.Message(nil), e.events...)
}

func copyMsgs(in []message.Message) []message.Message {
	out := make([]message.Message, len(in))
	for i, m := range in {
		m.Payload = bytes.Clone(m.Payload)
		m.Event = bytes.Clone(m.Event)
		out[i] = m
	}
	return out
}

// post sends body with the given headers ("Key: value" pairs).
func post(t testing.TB, url string, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
