package main

import (
	"context"
	"errors"
	"maps"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/admin"
	"github.com/sluicehq/sluice/runtime/runner"
)

// reloader returns the reload of SIGHUP and --watch. One asked for while
// the tasks start waits until they did.
func reloader(ctx context.Context, sup *runner.Supervisor, log zerolog.Logger) func(trigger string) {
	return func(trigger string) {
		select {
		case <-sup.Started():
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			return
		}
		log.Info().Str("trigger", trigger).Msg("reload requested")
		// The supervisor logs what it did, or every problem it found.
		if _, err := sup.Reload(ctx); err != nil && !errors.As(err, new(*runner.InvalidError)) {
			log.Warn().Err(err).Str("trigger", trigger).Msg("reload not done")
		}
	}
}

// notifyHUP starts catching SIGHUP (whose default is to end the process),
// before the task files are loaded.
func notifyHUP() chan os.Signal {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup
}

// reloadOnSignal reloads on each SIGHUP of hup until ctx ends or the
// returned func is called. Signals that come during a reload make one more
// reload, not one each.
func reloadOnSignal(ctx context.Context, hup chan os.Signal, reload func(string)) func() {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				reload("SIGHUP")
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// adminReload is POST /reload's: the supervisor's reload in the admin API's
// terms.
func adminReload(sup *runner.Supervisor, log zerolog.Logger) admin.ReloadFunc {
	return func(ctx context.Context) (admin.ReloadResult, error) {
		log.Info().Str("trigger", "POST /reload").Msg("reload requested")
		res, err := sup.Reload(ctx)
		var inv *runner.InvalidError
		if errors.As(err, &inv) {
			return admin.ReloadResult{}, &admin.ReloadError{Problems: inv.Problems}
		}
		return admin.ReloadResult{Started: res.Started, Stopped: res.Stopped, Restarted: res.Restarted, Unchanged: res.Unchanged}, err
	}
}

// watchSettle is how long the task files must stay quiet after a change
// before --watch reloads: an editor's save is several events (write,
// rename, chmod), and a reload per event would load half-written files.
const watchSettle = 300 * time.Millisecond

// watchFiles reloads, until ctx ends, when a task file named by args (a
// file, or a *.toml file of a folder) is written, created, removed or
// renamed. It watches the folders, not the files: editors and deployment
// tools replace a file by renaming another over it. Kubernetes mounts a
// ConfigMap as symlinks through a "..data" entry it swaps; a change of
// such a ".." entry counts too. A watched folder replaced as a whole is
// watched again.
func watchFiles(ctx context.Context, args []string, log zerolog.Logger, reload func(string)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	files := map[string]bool{}   // file arguments, absolute
	folders := map[string]bool{} // folder arguments, absolute
	dirs := map[string]bool{}    // what is watched
	for _, a := range args {
		abs, err := filepath.Abs(a)
		if err != nil {
			w.Close()
			return err
		}
		if st, err := os.Stat(abs); err == nil && st.IsDir() {
			folders[abs] = true
			dirs[abs] = true
		} else {
			files[abs] = true
			dirs[filepath.Dir(abs)] = true
		}
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			w.Close()
			return err
		}
	}
	// A watch ends with its folder: deploying by replacing the whole
	// folder (rm -r and copy, or a new folder renamed into place) would
	// leave the process deaf. The folders' parents are watched too, to
	// watch a folder again when it comes back.
	for d := range dirs {
		if parent := filepath.Dir(d); parent != d && !dirs[parent] {
			if err := w.Add(parent); err != nil {
				log.Warn().Err(err).Str("folder", parent).Msg("cannot watch the folder holding a watched folder: replacing the watched folder will go unseen")
			}
		}
	}
	rewatch := func(ev fsnotify.Event) bool {
		if !dirs[ev.Name] || !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Rename) {
			return false
		}
		if st, err := os.Stat(ev.Name); err != nil || !st.IsDir() {
			return false // renamed away, not into place
		}
		if err := w.Add(ev.Name); err != nil {
			log.Warn().Err(err).Str("folder", ev.Name).Msg("cannot watch the replaced folder again")
			return false
		}
		log.Info().Str("folder", ev.Name).Msg("the watched folder was replaced: watching the new one")
		return true
	}
	relevant := func(ev fsnotify.Event) bool {
		if ev.Op == fsnotify.Chmod {
			return false // touch: the bytes are the same
		}
		dir, base := filepath.Split(ev.Name)
		dir = filepath.Clean(dir)
		// Hidden files are not tasks (config.FolderTasks); ".." entries
		// are Kubernetes's links.
		return files[ev.Name] || strings.HasPrefix(base, "..") ||
			folders[dir] && strings.HasSuffix(base, ".toml") && !strings.HasPrefix(base, ".")
	}
	go func() {
		defer w.Close()
		settle := time.NewTimer(watchSettle)
		settle.Stop()
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if rewatch(ev) || relevant(ev) {
					log.Debug().Str("file", ev.Name).Str("op", ev.Op.String()).Msg("task file changed")
					settle.Reset(watchSettle)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow loses events: reload, the digests tell what changed.
				log.Warn().Err(err).Msg("watching the task files")
				settle.Reset(watchSettle)
			case <-settle.C:
				reload("file change")
			case <-ctx.Done():
				return
			}
		}
	}()
	log.Info().Strs("folders", slices.Sorted(maps.Keys(dirs))).Msg("watching the task files for changes")
	return nil
}
