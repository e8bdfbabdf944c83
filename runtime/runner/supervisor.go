package runner

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/logx"
)

// Supervisor runs the tasks of a set of task files (files and folders, as
// `sluice run` takes them) and reloads them: Reload validates the files
// anew and, only when every one is valid, stops the tasks whose file went
// away, restarts those whose file changed and starts the new ones, leaving
// the others untouched (docs/operations.md, "Reload").
type Supervisor struct {
	loader *config.Loader
	args   []string
	opts   engine.Options
	log    zerolog.Logger
	// KeepAlive keeps Run going when no task runs (a watched folder waits
	// for its files to be fixed); without it Run ends with the last task.
	KeepAlive bool

	reload   sync.Mutex      // one reload at a time
	fileArgs map[string]bool // the arguments that were files at the start

	mu       sync.Mutex
	ctx      context.Context // Run's; nil before Run
	tasks    map[string]*incarnation
	order    []string // task names in file order
	applying bool     // a reload is stopping and starting tasks
	ended    bool     // Run returned
	changed  chan struct{}
	started  chan struct{} // closed once Run started the tasks
}

// incarnation is one run of one task: a reload that changes the task
// replaces it with a new incarnation.
type incarnation struct {
	file   *config.Task
	task   *engine.Task
	cancel context.CancelFunc // nil until started
	done   chan struct{}      // closed when Run returned
	err    error              // Run's, once done is closed
}

// ReloadResult is what a reload did, task names in file order.
type ReloadResult struct {
	Started   []string `json:"started"`
	Stopped   []string `json:"stopped"`
	Restarted []string `json:"restarted"`
	Unchanged []string `json:"unchanged"`
}

// InvalidError is the error of a reload whose files are not all valid; the
// running tasks were left alone.
type InvalidError struct {
	// Problems are every problem found, each FILE:LINE:COL: message (or
	// FILE: message when the problem has no position).
	Problems []string
}

func (e *InvalidError) Error() string {
	s := fmt.Sprintf("reload refused: %d problem(s) in the task files; the running tasks were left alone", len(e.Problems))
	for _, p := range e.Problems {
		s += "\n" + p
	}
	return s
}

// ErrStopping is the error of a reload asked for while the process stops.
var ErrStopping = errors.New("reload refused: the process is stopping")

// errNotStarted is the error of a reload asked for before Run.
var errNotStarted = errors.New("reload refused: the tasks have not started yet; ask again")

// NewSupervisor loads the task files named by args (every problem of every
// file at once, as config.Diagnostics) and prepares their tasks; Run runs
// them.
func NewSupervisor(loader *config.Loader, args []string, opts engine.Options) (*Supervisor, error) {
	files, err := loader.LoadAll(args)
	if err != nil {
		return nil, err
	}
	fileArgs := map[string]bool{}
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && !st.IsDir() {
			fileArgs[a] = true
		}
	}
	s := &Supervisor{loader: loader, args: args, fileArgs: fileArgs, opts: opts, log: opts.Logger, tasks: map[string]*incarnation{}, changed: make(chan struct{}, 1), started: make(chan struct{})}
	for _, f := range files {
		s.tasks[f.Name] = &incarnation{file: f, task: New(f, opts), done: make(chan struct{})}
		s.order = append(s.order, f.Name)
	}
	return s, nil
}

// Started is closed once Run started the tasks: a reload asked for earlier
// is refused.
func (s *Supervisor) Started() <-chan struct{} { return s.started }

// Tasks returns the current tasks in file order: those a reload replaced
// are gone, a task that ended stays.
func (s *Supervisor) Tasks() []*engine.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*engine.Task, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.tasks[n].task)
	}
	return out
}

// Loaded returns the loaded task file of the current task named name (nil
// when there is none): where its file is, its components' configuration.
// A reload that changes the task changes it.
func (s *Supervisor) Loaded(name string) *config.Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	if inc, ok := s.tasks[name]; ok {
		return inc.file
	}
	return nil
}

// Run runs the tasks until ctx ends (each task then drains, as on SIGTERM)
// or, without KeepAlive, until every task ended. It returns the error of
// each current task that ended with one, in file order; tasks a reload
// stopped or replaced had theirs logged.
func (s *Supervisor) Run(ctx context.Context) []error {
	s.warnOrphanBuffers()
	s.mu.Lock()
	s.ctx = ctx
	for _, n := range s.order {
		s.start(s.tasks[n])
	}
	s.mu.Unlock()
	close(s.started)
	done := ctx.Done()
	for {
		s.mu.Lock()
		idle := s.live() == 0 && !s.applying && (!s.KeepAlive || ctx.Err() != nil)
		s.ended = idle
		s.mu.Unlock()
		if idle {
			break
		}
		select {
		case <-s.changed:
		case <-done:
			done = nil // the tasks drain; wait for them through changed
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, n := range s.order {
		if err := s.tasks[n].err; err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// live counts the current tasks still running. s.mu is held.
func (s *Supervisor) live() int {
	n := 0
	for _, inc := range s.tasks {
		select {
		case <-inc.done:
		default:
			n++
		}
	}
	return n
}

// start runs inc in the background. s.mu is held and s.ctx is set.
func (s *Supervisor) start(inc *incarnation) {
	ctx, cancel := context.WithCancel(s.ctx)
	inc.cancel = cancel
	go func() {
		err := inc.task.Run(ctx)
		cancel()
		s.mu.Lock()
		inc.err = err
		close(inc.done)
		s.mu.Unlock()
		s.signal()
	}()
}

func (s *Supervisor) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// reloadArgs are the arguments a reload loads: those of the start, less
// the files named directly that are gone, whose tasks a reload stops as it
// does those of a file removed from a folder (docs/operations.md). A file
// that is there but cannot be read stays, and refuses the reload.
func (s *Supervisor) reloadArgs() []string {
	out := make([]string, 0, len(s.args))
	for _, a := range s.args {
		if s.fileArgs[a] {
			if _, err := os.Lstat(a); errors.Is(err, fs.ErrNotExist) {
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// Reload loads the task files again. When any file is invalid it returns
// an *InvalidError with every problem and changes nothing. Otherwise it
// stops (draining, as on SIGTERM) the tasks whose file is gone or changed,
// waits for them to end, then starts the changed tasks again, from their
// committed position, and the new ones. Tasks whose file is byte for byte
// the same (at the same path) are not touched, even when they ended. It
// returns once the new tasks were started; ctx is not used to interrupt a
// reload half applied.
func (s *Supervisor) Reload(ctx context.Context) (ReloadResult, error) {
	s.reload.Lock()
	defer s.reload.Unlock()
	if err := s.running(); err != nil {
		return ReloadResult{}, err
	}
	files, err := s.loader.LoadAll(s.reloadArgs())
	if err != nil {
		inv := invalid(err)
		for _, p := range inv.Problems {
			s.log.Error().Str("problem", p).Msg("invalid task file")
		}
		s.log.Error().Int("problems", len(inv.Problems)).Msg("reload refused: the task files have problems (above); the running tasks keep running unchanged")
		return ReloadResult{}, inv
	}

	var res ReloadResult
	var stop []*incarnation // to stop: removed or changed
	next := map[string]*incarnation{}
	var order []string
	var discard []*config.Task // new loads of unchanged tasks
	var early []*config.Task   // the validation's loads of changed tasks
	defer func() {
		// Outside s.mu: closing what Build made (WASM modules) takes time.
		for _, f := range discard {
			f.Discard(context.WithoutCancel(ctx))
		}
	}()
	s.mu.Lock()
	if s.ended || s.ctx.Err() != nil {
		s.mu.Unlock()
		discard = files
		return ReloadResult{}, ErrStopping
	}
	for _, f := range files {
		order = append(order, f.Name)
		old, ok := s.tasks[f.Name]
		switch {
		case !ok:
			res.Started = append(res.Started, f.Name)
		case old.file.Digest == f.Digest && old.file.File == f.File:
			res.Unchanged = append(res.Unchanged, f.Name)
			discard = append(discard, f)
			next[f.Name] = old
			continue
		default:
			res.Restarted = append(res.Restarted, f.Name)
			stop = append(stop, old)
			// Loaded again once the old run closed (below): a component
			// may read at Build what the old run saves at Close (a WASM
			// module's persisted state). This load is released before the
			// old run closes, so that whatever releasing it saves comes
			// before what the old run saves.
			early = append(early, f)
			next[f.Name] = &incarnation{file: f, done: make(chan struct{})}
			continue
		}
		next[f.Name] = &incarnation{file: f, task: New(f, s.opts), done: make(chan struct{})}
	}
	for _, n := range s.order {
		if _, ok := next[n]; !ok {
			res.Stopped = append(res.Stopped, n)
			stop = append(stop, s.tasks[n])
		}
	}
	if len(stop) == 0 && len(res.Started) == 0 {
		s.mu.Unlock()
		s.log.Info().Int("unchanged", len(res.Unchanged)).Msg("task files reloaded: no task changed")
		return res, nil
	}
	s.applying = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.applying = false
		s.mu.Unlock()
		s.signal()
	}()

	s.log.Info().Strs("start", res.Started).Strs("restart", res.Restarted).Strs("stop", res.Stopped).Int("unchanged", len(res.Unchanged)).Msg("reloading the task files")
	for _, f := range early {
		f.Discard(context.WithoutCancel(ctx))
	}
	// Stop first: a new incarnation may need what the old one holds (a
	// listening port, a consumer group member, a buffer's lock).
	for _, inc := range stop {
		inc.cancel()
	}
	for _, inc := range stop {
		<-inc.done
		if inc.err != nil {
			s.log.Error().Err(inc.err).Str(logx.Task, inc.task.Name()).Msg("task stopped by the reload ended with an error")
		}
		s.warnStranded(inc, next[inc.task.Name()])
	}
	// A removed task leaves no series in /metrics, and a restarted one
	// starts its series again (a counter reset, as a process restart is):
	// a series only the old run fed (a source type or a transform since
	// removed, a gauge such as a consumer's pending count) would otherwise
	// stay at its last value for good. The old run has stopped and the new
	// one is not built yet: its components register their series as they
	// are built.
	for _, n := range res.Stopped {
		s.opts.Metrics.Forget("task", n)
	}
	for _, n := range res.Restarted {
		inc := next[n]
		s.opts.Metrics.Forget("task", n)
		f, err := s.rebuild(inc.file)
		if err != nil {
			// The old run stays, ended; with its digest cleared the next
			// reload restarts it whatever its file then holds. Its state
			// goes back into /metrics, where an alert on a stopped task
			// looks for it.
			// It also ended with this error: without KeepAlive, once no
			// task runs, Run returns it and `sluice run` exits 1, which a
			// supervisor (systemd's Restart=on-failure) restarts; it
			// exited 0 and the box stayed down. Under s.mu: Loaded and Run
			// read both fields.
			s.log.Error().Err(err).Str(logx.Task, n).Msg("task stopped and not restarted: reload again")
			s.mu.Lock()
			old := s.tasks[n]
			cleared := *old.file
			cleared.Digest = [32]byte{}
			old.file = &cleared
			old.err = fmt.Errorf("%s: stopped by a reload and not started again: %w", n, err)
			s.mu.Unlock()
			old.task.ExposeState()
			next[n] = old
			continue
		}
		inc.file, inc.task = f, New(f, s.opts)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		// The process began to stop while the old tasks drained: start
		// nothing new (the stopped incarnations stay current, ended).
		for _, inc := range next {
			if inc.cancel == nil {
				discard = append(discard, inc.file)
			}
		}
		return res, ErrStopping
	}
	s.tasks, s.order = next, order
	for _, n := range order {
		if inc := next[n]; inc.cancel == nil {
			s.start(inc)
		}
	}
	s.log.Info().Strs("started", res.Started).Strs("restarted", res.Restarted).Strs("stopped", res.Stopped).Msg("task files reloaded")
	return res, nil
}

// warnStranded warns when a run the reload stopped left undelivered
// records in its disk buffer and no run of the new files will read that
// buffer: the task was removed or renamed, or its new file has no disk
// buffer or one in another folder. Its buffer is keyed by its name (or its
// path), and the acknowledged source will not send the records again, so
// nothing but a task using that buffer again delivers them.
func (s *Supervisor) warnStranded(old, next *incarnation) {
	left, dir := old.task.BufferLeft()
	if left == 0 || dir == "" {
		return
	}
	if next != nil {
		if b := next.file.Engine.Buffer; b != nil && filepath.Clean(b.Dir) == filepath.Clean(dir) {
			return // the new run drains it
		}
	}
	s.log.Warn().Str(logx.Task, old.task.Name()).Uint64("records", left).Str("buffer", dir).
		Msg("the stopped task left undelivered records in its disk buffer, and no task of the reloaded files uses that buffer: they are not delivered until a task of this name with this buffer runs again (restore the task's name or its buffer settings)")
}

// warnOrphanBuffers warns, before the tasks start, of each disk buffer in
// the state directory's buffers folder that holds undelivered records and
// that no task uses: what the reload warning (warnStranded) says when the
// change came with a restart instead (the task renamed or removed, or its
// buffer settings changed, while its uplink was down). Only buffers at
// their default place can be found this way. It runs before the tasks
// start because looking takes the buffer's lock for a moment.
func (s *Supervisor) warnOrphanBuffers() {
	if s.loader.StateDir == "" {
		return
	}
	root := filepath.Join(s.loader.StateDir, "buffers")
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	used := map[string]bool{}
	for _, inc := range s.tasks {
		if b := inc.file.Engine.Buffer; b != nil {
			used[filepath.Clean(b.Dir)] = true
		}
	}
	for _, e := range entries {
		dir := filepath.Join(root, e.Name())
		if !e.IsDir() || used[filepath.Clean(dir)] {
			continue
		}
		// Fails if another process holds the buffer: then it is not
		// orphaned.
		if left, err := engine.BufferBacklog(dir); err == nil && left > 0 {
			s.log.Warn().Str(logx.Task, e.Name()).Uint64("records", left).Str("buffer", dir).
				Msg("a disk buffer holds undelivered records and no task uses it (a task of this name was removed or renamed, or its buffer settings changed): they are not delivered until a task of this name with this buffer runs again")
		}
	}
}

// rebuild loads the file of a changed task again, now that its old run
// closed, from the same bytes the reload validated.
func (s *Supervisor) rebuild(f *config.Task) (*config.Task, error) {
	data, err := os.ReadFile(f.File)
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(data) != f.Digest {
		return nil, fmt.Errorf("%s changed again during the reload", f.File)
	}
	return s.loader.Load(f.File, data)
}

// running reports ErrStopping unless Run runs and its ctx did not end.
// Reload checks again before it acts: this early check only spares a load.
func (s *Supervisor) running() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil {
		return errNotStarted
	}
	if s.ended || s.ctx.Err() != nil {
		return ErrStopping
	}
	return nil
}

// invalid turns a loading error into an *InvalidError.
func invalid(err error) *InvalidError {
	var ds config.Diagnostics
	if errors.As(err, &ds) {
		out := make([]string, len(ds))
		for i, d := range ds {
			out[i] = d.Error()
		}
		return &InvalidError{Problems: out}
	}
	// A file or folder that cannot be listed.
	return &InvalidError{Problems: []string{err.Error()}}
}
