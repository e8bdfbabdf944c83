// Package admin serves the opt-in admin HTTP API of `sluice run`: the task
// list with states and counters, pause and resume, Prometheus metrics, and
// health and readiness probes.
//
//	GET  /tasks                  every task: name, state, reason, counters    token when one is set
//	GET  /tasks/{name}           one task                                     token when one is set
//	POST /tasks/{name}/pause     stop reading; in-flight events finish        token, JSON, same origin
//	POST /tasks/{name}/resume                                                 token, JSON, same origin
//	POST /reload                 reload the task files (422: their problems)  token, JSON, same origin
//	GET  /metrics                Prometheus text format                       open
//	GET  /healthz                200 while the process serves                 open
//	GET  /readyz                 200 when every task is Running (or Paused)   open
//
// The checks are small middlewares (RequireToken, RefuseCrossOrigin,
// RequireJSON, LoopbackHost) that later endpoints, such as a web console,
// reuse. docs/security.md explains the threat model.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// Server is a running admin API.
type Server struct {
	srv  *http.Server
	addr net.Addr
}

// TaskView is the JSON shape of one task.
type TaskView struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	State       string       `json:"state"`
	Reason      string       `json:"reason,omitempty"`
	Stats       engine.Stats `json:"stats"`
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
	// Reload, when set, serves POST /reload (reload.go).
	Reload ReloadFunc
}

// Handler returns the admin API for tasks.
func Handler(tasks []*engine.Task, ms *metrics.Set, opts Options) http.Handler {
	bearer := NewBearer(opts.Token)
	read := func(h http.HandlerFunc) http.Handler {
		if bearer.Set() {
			return RequireToken(bearer, h)
		}
		return h
	}
	mutate := func(h http.HandlerFunc) http.Handler {
		return RefuseCrossOrigin(RequireToken(bearer, RequireJSON(h)))
	}
	current := currentTasks(tasks, opts)
	view := func(t *engine.Task) TaskView {
		v := TaskView{Name: t.Name(), Description: t.Description(), State: t.State().String(), Stats: t.Stats()}
		if err := t.Reason(); err != nil {
			v.Reason = err.Error()
		}
		return v
	}
	mux := http.NewServeMux()
	mux.Handle("GET /tasks", read(func(w http.ResponseWriter, r *http.Request) {
		tasks := current()
		out := make([]TaskView, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, view(t))
		}
		writeJSON(w, http.StatusOK, out)
	}))
	withTask := func(h func(http.ResponseWriter, *engine.Task)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			t := findTask(current(), r.PathValue("name"))
			if t == nil {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": "no task named " + r.PathValue("name")})
				return
			}
			h(w, t)
		}
	}
	mux.Handle("GET /tasks/{name}", read(withTask(func(w http.ResponseWriter, t *engine.Task) {
		writeJSON(w, http.StatusOK, view(t))
	})))
	mux.Handle("POST /tasks/{name}/pause", mutate(withTask(func(w http.ResponseWriter, t *engine.Task) {
		t.Pause()
		writeJSON(w, http.StatusOK, view(t))
	})))
	mux.Handle("POST /tasks/{name}/resume", mutate(withTask(func(w http.ResponseWriter, t *engine.Task) {
		t.Resume()
		writeJSON(w, http.StatusOK, view(t))
	})))
	if opts.Reload != nil {
		mux.Handle("POST /reload", mutate(reload(opts.Reload)))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(ms.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		for _, t := range current() {
			if s := t.State(); s != engine.Running && s != engine.Paused {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "task": t.Name(), "state": s.String()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return LoopbackHost(mux)
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
	s := &Server{srv: &http.Server{
		Handler:           Handler(tasks, ms, opts),
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}
