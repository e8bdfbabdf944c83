package admin

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
)

// DeadLetter is one record of a task's dead-letter file, as the browser
// shows it.
type DeadLetter struct {
	// ID is the record's byte offset in the file: stable, since the file
	// only grows.
	ID       int64           `json:"id"`
	Time     string          `json:"time"`
	Stage    string          `json:"stage"`
	Reason   string          `json:"reason"`
	Class    string          `json:"class,omitempty"`
	Attempts int             `json:"attempts,omitempty"`
	Event    json.RawMessage `json:"event"`
	// Replayed is set once the record went through the task again from
	// the browser (it stays in the file; replays are listed in FILE.replayed).
	Replayed bool `json:"replayed"`
}

// DeadLetterPage is GET /tasks/{name}/dlq.
type DeadLetterPage struct {
	Total int          `json:"total"`
	File  string       `json:"file"`
	Items []DeadLetter `json:"items"`
}

// record is the JSON of a dead-letter record (delivery.Record.AppendJSON).
type record struct {
	Event json.RawMessage `json:"event"`
	// EventBase64 holds the exact bytes of an event that was not UTF-8
	// (Event then holds it with the bad bytes replaced).
	EventBase64 string `json:"event_base64"`
	Task        string `json:"task"`
	Stage       string `json:"stage"`
	Time        string `json:"time"`
	Attempts    int    `json:"attempts"`
	Error       struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

// maxRecord bounds one dead-letter line the browser reads.
const maxRecord = 64 << 20

// dlqFile returns the task's dead-letter file, or writes the 409 that says
// where its queue is.
func (a *api) dlqFile(w http.ResponseWriter, t *engine.Task) (string, bool) {
	f := a.opts.Files(t.Name())
	if f.DeadLetterPath != "" {
		return f.DeadLetterPath, true
	}
	where := f.DeadLetterWhere
	if where == "" {
		where = "the task has no [dead_letter] table: failed events are dropped (and counted)"
	}
	writeError(w, http.StatusConflict, "the dead-letter browser reads file dead-letter queues; "+where)
	return "", false
}

// dlqList answers a page of dead letters, oldest first:
// ?offset=N (records to skip) &limit=N (default 50, at most 500).
func (a *api) dlqList(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	path, ok := a.dlqFile(w, t)
	if !ok {
		return
	}
	q := r.URL.Query()
	offset, err1 := atoiDefault(q.Get("offset"), 0)
	limit, err2 := atoiDefault(q.Get("limit"), 50)
	if err := errors.Join(err1, err2); err != nil || offset < 0 || limit < 1 {
		writeError(w, http.StatusBadRequest, "offset and limit: want numbers (offset >= 0, 1 <= limit <= 500)")
		return
	}
	limit = min(limit, 500)
	ids, err := a.dlq.records(path, t.Name())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		writeError(w, http.StatusInternalServerError, "reading the dead-letter file "+path+": "+err.Error())
		return
	}
	page := DeadLetterPage{File: path, Total: len(ids), Items: []DeadLetter{}}
	if offset < len(ids) {
		f, err := os.Open(path)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "reading the dead-letter file "+path+": "+err.Error())
			return
		}
		defer f.Close()
		replayed := readReplayed(path, fingerprint(f))
		for _, id := range ids[offset:min(len(ids), offset+limit)] {
			line, err := readRecord(f, id)
			if err != nil {
				writeError(w, http.StatusInternalServerError, "reading the dead-letter file "+path+": "+err.Error())
				return
			}
			page.Items = append(page.Items, deadLetterOf(id, line, replayed[id]))
		}
	}
	writeJSON(w, http.StatusOK, page)
}

func deadLetterOf(id int64, line []byte, replayed bool) DeadLetter {
	var rec record
	if err := json.Unmarshal(line, &rec); err != nil {
		return DeadLetter{ID: id, Stage: "?", Reason: "not a dead-letter record: " + err.Error(), Event: asJSON(line), Replayed: replayed}
	}
	return DeadLetter{ID: id, Time: rec.Time, Stage: rec.Stage, Reason: RedactText(rec.Error.Message), Class: rec.Error.Class,
		Attempts: rec.Attempts, Event: eventOf(rec.Event), Replayed: replayed}
}

// eventOf is the event a record holds: a JSON value as is; a string (an
// event that was not JSON) is the event's text.
func eventOf(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// eventBytes returns the original event bytes of a record.
func eventBytes(raw json.RawMessage) []byte {
	var s string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
		return []byte(s)
	}
	return raw
}

func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxRecord {
			return line, fmt.Errorf("a record longer than %d bytes", maxRecord)
		}
		if err != bufio.ErrBufferFull {
			return line, err
		}
	}
}

// replayedFile lists the ids of the records replayed from the browser, one
// per line, after a first line "file FINGERPRINT" naming the dead-letter
// file they belong to: ids are byte offsets, and once the file sink
// rotates the file (FILE becomes FILE.1, a new FILE starts) they say
// nothing about the new file's records.
func replayedFile(path string) string { return path + ".replayed" }

// fingerprint identifies a dead-letter file by its first line (its first
// record, with its time and event): a rotated file starts with another
// record. It is "" while the file has no complete line, when nothing can
// have been replayed from it yet.
func fingerprint(f *os.File) string {
	line, err := readRecord(f, 0)
	if err != nil || len(line) == 0 {
		return ""
	}
	sum := sha256.Sum256(line)
	return hex.EncodeToString(sum[:16])
}

// readReplayed returns the marks of the file whose fingerprint is fp; the
// marks of another file (before a rotation) are ignored. Marks written
// before the first line existed are taken as the current file's.
func readReplayed(path, fp string) map[int64]bool {
	out := map[int64]bool{}
	data, err := os.ReadFile(replayedFile(path))
	if err != nil {
		return out
	}
	lines := strings.Split(string(data), "\n")
	if owner, ok := strings.CutPrefix(lines[0], "file "); ok {
		if owner != fp {
			return out
		}
		lines = lines[1:]
	}
	for _, l := range lines {
		if id, err := strconv.ParseInt(strings.TrimSpace(l), 10, 64); err == nil {
			out[id] = true
		}
	}
	return out
}

// replayMu serialises replays, so a record is never replayed twice by two
// requests at once.
var replayMu sync.Mutex

// dlqReplay runs the dead letters {"ids": [...]} through the task again
// and marks them replayed.
func (a *api) dlqReplay(w http.ResponseWriter, r *http.Request, t *engine.Task) {
	path, ok := a.dlqFile(w, t)
	if !ok {
		return
	}
	var body struct {
		IDs []int64 `json:"ids"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.IDs) == 0 {
		writeError(w, http.StatusBadRequest, `send {"ids": [ID, ...]} with the ids of GET /tasks/{name}/dlq`)
		return
	}
	if len(body.IDs) > 1000 {
		writeError(w, http.StatusBadRequest, "at most 1000 dead letters in one replay")
		return
	}
	replayMu.Lock()
	defer replayMu.Unlock()
	known, err := a.dlq.records(path, t.Name())
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the dead-letter file "+path+": "+err.Error())
		return
	}
	f, err := os.Open(path)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "reading the dead-letter file "+path+": "+err.Error())
		return
	}
	defer f.Close()
	fp := fingerprint(f)
	replayed := readReplayed(path, fp)
	want := map[int64]bool{}
	for _, id := range body.IDs {
		if !replayed[id] {
			want[id] = true
		}
	}
	var events [][]byte
	var ids []int64
	for id := range want {
		if _, ok := slices.BinarySearch(known, id); !ok {
			continue // not a record of this task: reported missing
		}
		line, err := readRecord(f, id)
		var rec record
		if err != nil || json.Unmarshal(line, &rec) != nil || len(rec.Event) == 0 {
			continue
		}
		delete(want, id)
		ev := eventBytes(rec.Event)
		if rec.EventBase64 != "" {
			if b, err := base64.StdEncoding.DecodeString(rec.EventBase64); err == nil {
				ev = b
			}
		}
		if a.opts.ReplayEvent != nil {
			// As `sluice dlq replay` reads the record at this place.
			if b, err := a.opts.ReplayEvent(line, message.Position{Stream: path, Offset: id}); err == nil {
				ev = b
			}
		}
		events = append(events, ev)
		ids = append(ids, id)
	}
	if len(want) > 0 {
		missing := make([]string, 0, len(want))
		for id := range want {
			missing = append(missing, strconv.FormatInt(id, 10))
		}
		writeError(w, http.StatusNotFound, "no dead-letter record with id "+strings.Join(missing, ", ")+" in "+path)
		return
	}
	if len(events) == 0 {
		writeJSON(w, http.StatusOK, map[string]any{"replayed": 0})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 25*time.Second)
	defer cancel()
	st, err := t.Replay(ctx, events)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, engine.ErrCannotSeek) {
			code = http.StatusConflict
		}
		writeError(w, code, err.Error())
		return
	}
	if err := markReplayed(path, fp, ids); err != nil {
		a.opts.Logger.Warn().Err(err).Str("file", replayedFile(path)).Msg("dead letters replayed, but they could not be marked so")
	}
	writeJSON(w, http.StatusOK, map[string]any{"replayed": len(events), "delivered": st.Delivered, "filtered": st.Filtered,
		"failed_again": st.DeadLettered + st.Dropped})
}

// markReplayed adds ids to the marks of the file whose fingerprint is fp;
// the marks of another file are replaced.
func markReplayed(path, fp string, ids []int64) error {
	old := readReplayed(path, fp)
	var b strings.Builder
	b.WriteString("file " + fp + "\n")
	for _, id := range slices.Sorted(maps.Keys(old)) {
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte('\n')
	}
	for _, id := range ids {
		b.WriteString(strconv.FormatInt(id, 10))
		b.WriteByte('\n')
	}
	// Written aside and renamed, so that a crash leaves the old marks or
	// the new ones, never a part.
	tmp := replayedFile(path) + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, replayedFile(path))
}

func atoiDefault(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}
