package admin

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/engine"
)

// TapRecord is the data of one `record` event of a tap stream.
type TapRecord struct {
	Stage string    `json:"stage"`
	Time  time.Time `json:"time"`
	// Event is the payload as it leaves the stage: JSON as is, anything
	// else as a JSON string.
	Event json.RawMessage `json:"event"`
}

// TapEnd is the data of the `end` event a tap stream ends with when the
// task's run ended: no record will come. A reload starts a changed task as
// a new run, which a client taps anew.
type TapEnd struct {
	State   string `json:"state"` // the task's state: Stopped, StartFailed, ...
	Message string `json:"message"`
}

// tap streams a sample of the events leaving a stage (?stage=ID, default
// the source; ?limit=N ends the stream after N records) as Server-Sent
// Events: `record` events, and a comment every 15 s while none pass. When
// the task's run ends the stream ends with an `end` event.
func (a *api) tap(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	stage := r.URL.Query().Get("stage")
	if stage == "" {
		stage = "source"
	}
	limit := 0
	if l := r.URL.Query().Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "limit "+l+": want a number of records (0: no limit)")
			return
		}
		limit = n
	}
	recs, stop, err := t.Tap(stage)
	switch {
	case errors.Is(err, engine.ErrNoStage):
		ids := make([]string, 0, 4)
		for _, s := range t.Stages() {
			ids = append(ids, s.ID)
		}
		writeError(w, http.StatusNotFound, "task "+t.Name()+" has no stage "+stage+" (its stages: "+strings.Join(ids, ", ")+")")
		return
	case errors.Is(err, engine.ErrTooManyTaps):
		writeError(w, http.StatusTooManyRequests, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	defer stop()
	s, ok := startSSE(w)
	if !ok {
		return
	}
	keep := time.NewTicker(a.keepAlive)
	defer keep.Stop()
	for sent := 0; limit == 0 || sent < limit; {
		select {
		case <-r.Context().Done():
			return
		case <-keep.C:
			if s.comment() != nil {
				return
			}
		case rec, ok := <-recs:
			if !ok {
				st := t.State()
				_ = s.send("end", TapEnd{State: st.String(), Message: "the task's run ended (" + st.String() + "): no more records come from it; a reload starts a changed task as a new run, tap it again to watch that"})
				return
			}
			if s.send("record", TapRecord{Stage: rec.Stage, Time: rec.Time, Event: asJSON(rec.Event)}) != nil {
				return
			}
			sent++
		}
	}
}

// asJSON returns b when it is one JSON value, else b as a JSON string (a
// text line, bytes that are not UTF-8 replaced).
func asJSON(b []byte) json.RawMessage {
	if json.Valid(b) {
		return b
	}
	q, _ := json.Marshal(strings.ToValidUTF8(string(b), "\uFFFD"))
	return q
}
