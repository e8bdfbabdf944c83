// Package admin serves the opt-in admin HTTP API of `sluice run`: the task
// list with states and counters, pause and resume, Prometheus metrics, and
// health and readiness probes.
//
//	GET  /tasks                  every task: name, state, reason, counters
//	GET  /tasks/{name}           one task
//	POST /tasks/{name}/pause     stop reading; in-flight events finish
//	POST /tasks/{name}/resume
//	GET  /metrics                Prometheus text format
//	GET  /healthz                200 while the process serves
//	GET  /readyz                 200 when every task is Running (or Paused), 503 otherwise
package admin

import (
	"context"
	"encoding/json"
	"errors"
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

// Handler returns the admin API for tasks.
func Handler(tasks []*engine.Task, ms *metrics.Set) http.Handler {
	byName := map[string]*engine.Task{}
	for _, t := range tasks {
		byName[t.Name()] = t
	}
	view := func(t *engine.Task) TaskView {
		v := TaskView{Name: t.Name(), Description: t.Description(), State: t.State().String(), Stats: t.Stats()}
		if err := t.Reason(); err != nil {
			v.Reason = err.Error()
		}
		return v
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tasks", func(w http.ResponseWriter, r *http.Request) {
		out := make([]TaskView, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, view(t))
		}
		writeJSON(w, http.StatusOK, out)
	})
	withTask := func(h func(http.ResponseWriter, *engine.Task)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			t, ok := byName[r.PathValue("name")]
			if !ok {
				writeJSON(w, http.StatusNotFound, map[string]string{"error": "no task named " + r.PathValue("name")})
				return
			}
			h(w, t)
		}
	}
	mux.HandleFunc("GET /tasks/{name}", withTask(func(w http.ResponseWriter, t *engine.Task) {
		writeJSON(w, http.StatusOK, view(t))
	}))
	mux.HandleFunc("POST /tasks/{name}/pause", withTask(func(w http.ResponseWriter, t *engine.Task) {
		t.Pause()
		writeJSON(w, http.StatusOK, view(t))
	}))
	mux.HandleFunc("POST /tasks/{name}/resume", withTask(func(w http.ResponseWriter, t *engine.Task) {
		t.Resume()
		writeJSON(w, http.StatusOK, view(t))
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(ms.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		for _, t := range tasks {
			if s := t.State(); s != engine.Running && s != engine.Paused {
				writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "task": t.Name(), "state": s.String()})
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Start listens on addr and serves the API in the background.
func Start(addr string, tasks []*engine.Task, ms *metrics.Set, log zerolog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{srv: &http.Server{Handler: Handler(tasks, ms), ReadHeaderTimeout: 5 * time.Second}, addr: ln.Addr()}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("admin API stopped")
		}
	}()
	log.Info().Str("address", ln.Addr().String()).Msg("admin API listening")
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
