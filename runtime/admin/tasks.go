package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/sluicehq/sluice/runtime/engine"
)

// TaskView is the JSON shape of one task in GET /tasks.
type TaskView struct {
	Name        string       `json:"name"`
	Description string       `json:"description,omitempty"`
	State       string       `json:"state"`
	Reason      string       `json:"reason,omitempty"`
	Stats       engine.Stats `json:"stats"`
	Counters    Counters     `json:"counters"`
	// Rate is the events read per second over the last second;
	// RateHistory the last samples, one a second, oldest first (at most
	// 300: five minutes).
	Rate        float64   `json:"rate"`
	RateHistory []float64 `json:"rate_history"`
	// Lag is the records the source has yet to read (Kafka: up to the
	// high watermarks); null for sources that cannot tell.
	Lag *int64 `json:"lag"`
	// LatencySeconds is the end-to-end latency (source read to sink
	// delivery) of the last delivered batch.
	LatencySeconds float64 `json:"latency_seconds"`
}

// Counters are a task's event counts under the names of the console.
type Counters struct {
	Received     uint64 `json:"received"`
	Delivered    uint64 `json:"delivered"`
	Filtered     uint64 `json:"filtered"`
	Failed       uint64 `json:"failed"` // dead-lettered + dropped
	DeadLettered uint64 `json:"dead_lettered"`
	Dropped      uint64 `json:"dropped"`
	BytesIn      uint64 `json:"bytes_in"`
	BytesOut     uint64 `json:"bytes_out"`
}

// TaskDetail is GET /tasks/{name}: the view plus the task file (secrets
// redacted), the stages and the last errors.
type TaskDetail struct {
	TaskView
	TOML   string              `json:"toml"`
	Stages []engine.StageStats `json:"stages"`
	Errors []engine.StageError `json:"errors"`
}

// TaskFiles says where a task's file and dead letters are.
type TaskFiles struct {
	// Path is the task file; "" when the task was not loaded from one.
	Path string
	// DeadLetterPath is the file of the task's dead-letter queue when it
	// is a file sink; DeadLetterWhere describes the queue otherwise
	// ("kafka topic orders-dlq"), for the 409 of the browser.
	DeadLetterPath  string
	DeadLetterWhere string
	// SecretKeys are the keys of the task's components whose specs mark
	// them secret: the TOML view masks their values, whatever their names.
	SecretKeys []string
}

func viewOf(t *engine.Task) TaskView {
	s := t.Stats()
	v := TaskView{Name: t.Name(), Description: t.Description(), State: t.State().String(), Stats: s,
		Counters: Counters{Received: s.In, Delivered: s.Delivered, Filtered: s.Filtered, Failed: s.DeadLettered + s.Dropped,
			DeadLettered: s.DeadLettered, Dropped: s.Dropped, BytesIn: s.BytesIn, BytesOut: s.BytesOut},
		LatencySeconds: t.Latency().Seconds(),
	}
	v.Rate, v.RateHistory = t.Rate()
	if lag, ok := t.Lag(); ok {
		v.Lag = &lag
	}
	if err := t.Reason(); err != nil {
		v.Reason = RedactText(err.Error())
	}
	return v
}

func (a *api) views() []TaskView {
	tasks := a.opts.Tasks()
	out := make([]TaskView, 0, len(tasks))
	for _, t := range tasks {
		out = append(out, viewOf(t))
	}
	return out
}

func (a *api) listTasks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, a.views())
}

func (a *api) getTask(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	d := TaskDetail{TaskView: viewOf(t), Stages: t.Stages(), Errors: t.Errors()}
	for i := range d.Errors {
		d.Errors[i].Message = RedactText(d.Errors[i].Message)
	}
	if f := a.opts.Files(t.Name()); f.Path != "" {
		raw, err := os.ReadFile(f.Path)
		if err != nil {
			d.TOML = fmt.Sprintf("# cannot read %s: %v", f.Path, err)
		} else {
			d.TOML = RedactTOML(string(raw), f.SecretKeys...)
		}
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *api) pause(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	t.Pause()
	writeJSON(w, http.StatusOK, viewOf(t))
}

func (a *api) resume(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	t.Resume()
	writeJSON(w, http.StatusOK, viewOf(t))
}

// rewind moves the task's source: {"to": "earliest" | "latest" | RFC 3339}.
func (a *api) rewind(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	var body struct {
		To string `json:"to"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.To == "" {
		writeError(w, http.StatusBadRequest, `send {"to": "earliest"}, {"to": "latest"} or {"to": "2026-12-06T10:00:00Z"}`)
		return
	}
	to, err := engine.ParseSeek(body.To)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	// Within the server's write timeout; a rewind waits for the events
	// under way, which a slow sink may hold.
	ctx, cancel := context.WithTimeout(r.Context(), 25*time.Second)
	defer cancel()
	err = t.Seek(ctx, to)
	switch {
	case errors.Is(err, engine.ErrCannotSeek):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, context.DeadlineExceeded):
		writeError(w, http.StatusGatewayTimeout, "the rewind did not finish within 25 s: the events under way were not all delivered by then (is the sink slow or down?); the task's log says whether the source moved")
		return
	case err != nil && r.Context().Err() == nil:
		// The source refused (a file rewinds only to its start, a Kafka
		// group still assigning partitions): the task goes on as it was.
		writeError(w, http.StatusConflict, err.Error())
		return
	case err != nil:
		return // the client went away
	}
	writeJSON(w, http.StatusOK, viewOf(t))
}

// events streams the task list every second as Server-Sent Events (event
// "tasks"), until the client goes away or the server closes.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	sse, ok := startSSE(w)
	if !ok {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if err := sse.send("tasks", a.views()); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
}

// sse writes Server-Sent Events.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

// startSSE answers 200 with an event stream. The server's write timeout
// would cut a long stream: each event sets its own deadline instead.
func startSSE(w http.ResponseWriter) (*sse, bool) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, false
	}
	return &sse{w: w, rc: rc}, true
}

// send writes one event whose data is v as JSON (one line: JSON has no raw
// newlines).
func (s *sse) send(event string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, data); err != nil {
		return err
	}
	return s.rc.Flush()
}

// comment writes an SSE comment, which keeps idle proxies from closing
// the stream.
func (s *sse) comment() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprint(s.w, ": keep-alive\n\n"); err != nil {
		return err
	}
	return s.rc.Flush()
}
