package http

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	httpsource "github.com/sluicehq/sluice/builtins/source/http"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestIntoHTTPSource sends from this sink to a running HTTP source: a
// confirmed request delivers the events, and an unconfirmed one (503 with
// Retry-After) becomes a retryable error carrying the hint.
func TestIntoHTTPSource(t *testing.T) {
	src, err := httpsource.New(&httpsource.Config{Address: "127.0.0.1:0", Path: "/in", Token: "tk", ResponseTimeout: component.Duration(time.Second)},
		component.Env{Task: "recv", MaxEvent: 1 << 20, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer src.Close(context.Background())
	url := "http://" + src.Addr().String() + "/in"
	s := newSink(t, urlKey(url)+`token = "tk"`)
	in := msgs(`{"n":1}`, `{"n":2}`, `text`)

	// No engine reads the source yet: the request times out unconfirmed.
	err = s.Write(context.Background(), in)
	if component.ClassOf(err) != component.ClassRetryable || component.RetryAfter(err) != time.Second || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("unconfirmed write: %v (retry after %v), want retryable 503 with 1s", err, component.RetryAfter(err))
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan []message.Message, 1)
	go func() {
		for {
			b, err := src.Read(ctx)
			if err != nil {
				return
			}
			got <- b.Messages
			b.Ack(nil)
		}
	}()
	if err := s.Write(context.Background(), in); err != nil {
		t.Fatalf("confirmed write: %v", err)
	}
	events := <-got
	if len(events) != 3 {
		t.Fatalf("%d events, want 3", len(events))
	}
	var ev struct {
		Source string
		Data   any
	}
	if err := json.Unmarshal(events[2].Payload, &ev); err != nil || ev.Data != "text" || ev.Source != "sluice/recv/http" {
		t.Fatalf("event %s: %v", events[2].Payload, err)
	}

	bad := newSink(t, urlKey(url)+`token = "wrong"`)
	if err := bad.Write(context.Background(), in); component.ClassOf(err) != component.ClassTaskPermanent {
		t.Fatalf("wrong token: %v, want task-permanent", err)
	}
}
