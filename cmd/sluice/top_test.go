package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// sluice top draws one table per /events event, with the token, and ends
// when the process closes the stream.
func TestTopFollowsTheEventStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/events" || r.Header.Get("Authorization") != "Bearer tok-0123456789abcdef" {
			http.Error(w, `{"error":"no"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 2 {
			fmt.Fprintf(w, "event: tasks\ndata: [{\"name\":\"orders\",\"state\":\"Running\",\"rate\":%d,\"counters\":{\"received\":%d},\"lag\":7}]\n\n", 100+i, 1000*(i+1))
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	t.Setenv("SLUICE_ADMIN_TOKEN", "tok-0123456789abcdef")
	var out, errb bytes.Buffer
	if code := topCmd([]string{"--admin", srv.URL}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "EVENTS/S"); n != 2 {
		t.Fatalf("%d tables:\n%s", n, out.String())
	}
	if !strings.Contains(out.String(), "2000") || !strings.Contains(out.String(), "101") || !strings.Contains(errb.String(), "closed the stream") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
	t.Setenv("SLUICE_ADMIN_TOKEN", "wrong-0123456789abcdef")
	out.Reset()
	errb.Reset()
	if code := topCmd([]string{"--admin", srv.URL}, &out, &errb); code != exitFailed || !strings.Contains(errb.String(), "401") || !strings.Contains(errb.String(), "SLUICE_ADMIN_TOKEN") {
		t.Fatalf("wrong token: exit %d: %s", code, errb.String())
	}
}

// sluice tap prints the records of the stream, one a line, and when the
// stream ends because the task's run ended (an `end` event), says so and
// exits: it printed every data line, and a stream that never ended kept it
// waiting on a stopped run (found in review).
func TestTapSaysWhenTheRunEnds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/tasks/orders/tap" || r.URL.Query().Get("stage") != "sink" {
			http.Error(w, `{"error":"no"}`, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: record\ndata: {\"stage\":\"sink\",\"event\":{\"n\":1}}\n\n: keep-alive\n\n")
		fmt.Fprint(w, "event: end\ndata: {\"state\":\"Stopped\",\"message\":\"the task's run ended (Stopped): tap it again\"}\n\n")
	}))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := tapCmd([]string{"--admin", srv.URL, "orders", "sink"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if out.String() != `{"stage":"sink","event":{"n":1}}`+"\n" || errb.String() != "sluice tap: the task's run ended (Stopped): tap it again\n" {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
	}
}

// The TOML view masks the keys the specs mark secret (component.Secret).
func TestTaskFilesSecretKeys(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "t.toml", "name = \"t\"\n[source]\ntype = \"generate\"\n[sink]\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\ntoken = \"x\"\n[dead_letter]\ntype = \"file\"\npath = \"dlq/dead.jsonl\"\n")
	var s settings
	s.maxEventSize = 1 << 20
	loader := newLoader(s, zerolog.Nop(), metrics.New(), component.NewShared())
	tk, err := loader.LoadFile(task)
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Discard(context.Background())
	f := taskFiles(func(string) *config.Task { return tk })("t")
	if !slices.Contains(f.SecretKeys, "token") || f.Path != task || f.DeadLetterPath != filepath.Join(dir, "dlq", "dead.jsonl") {
		t.Fatalf("%+v", f)
	}
}
