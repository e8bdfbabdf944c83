package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Playground runs one event (a JSON value or a text line) through a TOML
// fragment holding a [filter] table and/or [[transform]] tables, the code
// path of `sluice test`. It returns the outputs' payloads, or filtered
// when the event left no output. A fragment that does not load is a
// *PositionError.
type Playground func(ctx context.Context, event, config string) (outputs [][]byte, filtered bool, err error)

// PositionError is a playground error at a place of the fragment (Line
// and Column 1-based; 0 when unknown) or of the run (Stage).
type PositionError struct {
	Message string `json:"error"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Stage   string `json:"stage,omitempty"`
}

func (e *PositionError) Error() string { return e.Message }

// PlaygroundResult is the answer of POST /playground.
type PlaygroundResult struct {
	Outputs  []json.RawMessage `json:"outputs"`
	Filtered bool              `json:"filtered"`
}

// maxPlayground bounds one playground run: a fragment may hold a remote
// transform, and a condition may loop (it stops when the run's context
// ends).
const maxPlayground = 10 * time.Second

// maxPlaygroundRuns is how many playground runs the API serves at once; one
// more answers 429. Each holds a goroutine and, for a condition or a WASM
// transform, a core, for up to maxPlayground.
const maxPlaygroundRuns = 2

func (a *api) playground(w http.ResponseWriter, r *http.Request) {
	if a.opts.Playground == nil {
		writeError(w, http.StatusNotImplemented, "this process has no playground")
		return
	}
	var body struct {
		Event  string `json:"event"`
		Config string `json:"config"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, `send {"event": "<the event, JSON or a line>", "config": "<[filter] and/or [[transform]] tables>"}`)
		return
	}
	select {
	case a.playRuns <- struct{}{}:
		defer func() { <-a.playRuns }()
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("%d playground runs are under way, the most at once: try again in a moment", maxPlaygroundRuns))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), maxPlayground)
	defer cancel()
	outs, filtered, err := a.opts.Playground(ctx, body.Event, body.Config)
	if err != nil {
		var pe *PositionError
		if !errors.As(err, &pe) {
			pe = &PositionError{Message: err.Error()}
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
			pe = &PositionError{Message: fmt.Sprintf("the run was stopped after %s, the playground's bound: %s", maxPlayground, pe.Message), Stage: pe.Stage}
		}
		writeJSON(w, http.StatusBadRequest, pe)
		return
	}
	res := PlaygroundResult{Outputs: make([]json.RawMessage, len(outs)), Filtered: filtered}
	for i, o := range outs {
		res.Outputs[i] = asJSON(o)
	}
	writeJSON(w, http.StatusOK, res)
}
