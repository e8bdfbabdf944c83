// Package admin serves the opt-in admin HTTP API of `sluice run`: task
// states, counters and stages, live taps, the dead-letter browser, a
// playground, pause, resume and rewind, Prometheus metrics, and health and
// readiness probes. docs/operations.md documents every endpoint.
//
//	GET  /tasks                   every task: state, counters, rate, lag     same origin, token when one is set
//	GET  /events                  SSE: the task list every second             same origin, token when one is set
//	GET  /tasks/{name}            one task, its TOML, stages, last errors     same origin, token when one is set
//	POST /tasks/{name}/pause      stop reading; in-flight events finish       token, JSON, same origin
//	POST /tasks/{name}/resume                                                 token, JSON, same origin
//	POST /tasks/{name}/rewind     read again from earliest/latest/a time      token, JSON, same origin
//	GET  /tasks/{name}/tap        SSE: sampled events leaving a stage         same origin, token when one is set
//	GET  /tasks/{name}/dlq        a page of dead letters                      same origin, token when one is set
//	POST /tasks/{name}/dlq/replay dead letters through the task again         token, JSON, same origin
//	POST /playground              an event through a filter/transforms        token, JSON, same origin
//	POST /reload                  reload the task files (422: their problems) token, JSON, same origin
//	GET  /metrics                 Prometheus text format                      open
//	GET  /healthz                 200 while the process serves                open
//	GET  /readyz                  200 when every task is Running (or Paused)  open
//	GET  /                        the web console (runtime/admin/console)     open; its API calls need the token
//
// The checks are small middlewares (RequireToken, RefuseCrossOrigin,
// RefuseCrossOriginReads, RequireJSON, LoopbackHost) that every endpoint
// reuses. docs/security.md explains the threat model.
package admin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/admin/console"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Server is a running admin API.
type Server struct {
	srv    *http.Server
	addr   net.Addr
	cancel context.CancelFunc // ends the streams (SSE) on Close
}

// Options configure the API.
type Options struct {
	// Token is the bearer token of mutating requests (and of the task
	// views). Empty: the API is read-only, and Start allows only a loopback
	// address.
	Token  string
	Logger zerolog.Logger
	// Tasks, when set, returns the current tasks at each request, in place
	// of Handler's fixed list: a reload changes the set.
	Tasks func() []*engine.Task
	// Files says where a task's file and dead letters are (nil: the TOML
	// view and the dead-letter browser answer 409).
	Files func(task string) TaskFiles
	// Playground runs one event through a [filter]/[[transform]] fragment
	// as `sluice test` does (nil: POST /playground answers 501). It is
	// injected by the command, which may build components; the admin API
	// itself knows none.
	Playground Playground
	// Reload, when set, serves POST /reload (reload.go).
	Reload ReloadFunc
	// ReplayEvent makes the event a dead-letter replay runs through the
	// task from the record rec at pos (its file and byte offset), as
	// `sluice dlq replay` does: a raw line that failed to decode is wrapped
	// as the task's source would (a CloudEvent). It is injected by the
	// command, which knows the line formats; nil, or an error, replays
	// the record's event as it is kept.
	ReplayEvent func(rec []byte, pos message.Position) ([]byte, error)

	// keepAlive is how often an idle tap sends a comment (15 s); tests
	// shorten it.
	keepAlive time.Duration
}

// Handler returns the admin API for tasks.
func Handler(tasks []*engine.Task, ms *metrics.Set, opts Options) http.Handler {
	a := &api{ms: ms, opts: opts, bearer: NewBearer(opts.Token), playRuns: make(chan struct{}, maxPlaygroundRuns), keepAlive: cmp.Or(opts.keepAlive, 15*time.Second)}
	a.opts.Tasks = currentTasks(tasks, opts)
	if a.opts.Files == nil {
		a.opts.Files = func(string) TaskFiles { return TaskFiles{} }
	}
	read, mutate := a.read, a.mutate
	mux := http.NewServeMux()
	mux.Handle("GET /tasks", read(a.listTasks))
	mux.Handle("GET /events", read(a.events))
	mux.Handle("GET /tasks/{name}", read(a.withTask(a.getTask)))
	mux.Handle("POST /tasks/{name}/pause", mutate(a.withTask(a.pause)))
	mux.Handle("POST /tasks/{name}/resume", mutate(a.withTask(a.resume)))
	mux.Handle("POST /tasks/{name}/rewind", mutate(a.withTask(a.rewind)))
	mux.Handle("GET /tasks/{name}/tap", read(a.withTask(a.tap)))
	mux.Handle("GET /tasks/{name}/dlq", read(a.withTask(a.dlqList)))
	mux.Handle("POST /tasks/{name}/dlq/replay", mutate(a.withTask(a.dlqReplay)))
	mux.Handle("POST /playground", mutate(a.playground))
	if opts.Reload != nil {
		mux.Handle("POST /reload", mutate(reload(opts.Reload)))
	}
	mux.Handle("GET /metrics", ms.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.Handle("GET /", console.Handler())
	return LoopbackHost(mux)
}

// api holds what the handlers share.
type api struct {
	ms     *metrics.Set
	opts   Options
	bearer Bearer
	dlq    dlqIndex
	// playRuns holds a token per playground run under way.
	playRuns chan struct{}
	// keepAlive is how often an idle tap sends a comment.
	keepAlive time.Duration
}

// read guards a GET that exposes task data: not cross-origin, and the token
// when one is set.
func (a *api) read(h http.HandlerFunc) http.Handler {
	if a.bearer.Set() {
		return RefuseCrossOriginReads(RequireToken(a.bearer, h))
	}
	return RefuseCrossOriginReads(h)
}

// mutate guards a state-changing request: same origin, token, JSON.
func (a *api) mutate(h http.HandlerFunc) http.Handler {
	return RefuseCrossOrigin(RequireToken(a.bearer, RequireJSON(h)))
}

func (a *api) withTask(h func(http.ResponseWriter, *http.Request, *engine.Task)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := findTask(a.opts.Tasks(), r.PathValue("name"))
		if t == nil {
			writeError(w, http.StatusNotFound, "no task named "+r.PathValue("name"))
			return
		}
		h(w, r, t)
	}
}

func (a *api) ready(w http.ResponseWriter, r *http.Request) {
	for _, t := range a.opts.Tasks() {
		if s := t.State(); s != engine.Running && s != engine.Paused {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "task": t.Name(), "state": s.String()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Start listens on addr and serves the API in the background. It refuses
// an address other machines can reach (anything but loopback) when no
// token is configured.
func Start(addr string, tasks []*engine.Task, ms *metrics.Set, opts Options) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if opts.Token == "" && !isLoopbackAddr(ln.Addr()) {
		ln.Close()
		return nil, fmt.Errorf("admin API on %s would be reachable from other machines without a token: set --admin-token-file FILE (or SLUICE_ADMIN_TOKEN), or listen on 127.0.0.1", addr)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Server{cancel: cancel, srv: &http.Server{
		Handler:           Handler(tasks, ms, opts),
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
	}, addr: ln.Addr()}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error().Err(err).Msg("admin API stopped")
		}
	}()
	opts.Logger.Info().Str("address", ln.Addr().String()).Bool("token", opts.Token != "").Msg("admin API listening")
	return s, nil
}

// Addr returns the address the API listens on.
func (s *Server) Addr() net.Addr { return s.addr }

// Close stops the API.
func (s *Server) Close() error {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
