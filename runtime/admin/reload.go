package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/sluicehq/sluice/runtime/engine"
)

// ReloadFunc reloads the task files (the command injects it: the admin API
// neither reads task files nor builds components). It returns what
// changed, a *ReloadError when the files are invalid (nothing changed
// then), or another error when the reload could not be done at all (the
// process is stopping).
type ReloadFunc func(context.Context) (ReloadResult, error)

// ReloadResult names the tasks by what a reload did to them.
type ReloadResult struct {
	Started   []string `json:"started"`
	Stopped   []string `json:"stopped"`
	Restarted []string `json:"restarted"`
	Unchanged []string `json:"unchanged"`
}

// ReloadError refuses a reload: every problem of the task files, each
// FILE:LINE:COL: message.
type ReloadError struct{ Problems []string }

func (e *ReloadError) Error() string { return "invalid task files" }

// reload serves POST /reload: 200 with what changed, 422 with every problem
// of invalid files (the running tasks keep running), 503 while stopping.
func reload(fn ReloadFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A client that gives up must not leave a reload half applied.
		res, err := fn(context.WithoutCancel(r.Context()))
		var inv *ReloadError
		switch {
		case errors.As(err, &inv):
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": "invalid task files; the running tasks were left alone", "problems": inv.Problems})
		case err != nil:
			writeError(w, http.StatusServiceUnavailable, err.Error())
		default:
			for _, l := range []*[]string{&res.Started, &res.Stopped, &res.Restarted, &res.Unchanged} {
				if *l == nil {
					*l = []string{}
				}
			}
			writeJSON(w, http.StatusOK, res)
		}
	}
}

// currentTasks returns the tasks to serve: opts.Tasks() when set (a reload
// changes the set), the fixed list otherwise.
func currentTasks(tasks []*engine.Task, opts Options) func() []*engine.Task {
	if opts.Tasks != nil {
		return opts.Tasks
	}
	return func() []*engine.Task { return tasks }
}

// findTask returns the task named name among tasks, or nil.
func findTask(tasks []*engine.Task, name string) *engine.Task {
	for _, t := range tasks {
		if t.Name() == name {
			return t
		}
	}
	return nil
}
