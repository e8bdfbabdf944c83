package runner_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/runner"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// failingRebuild returns a loader whose transform "second_build_fails"
// builds once (the reload's validation) and fails on the next build (the
// new run, built after the old one closed), and the count of its builds.
func failingRebuild(t *testing.T) (*config.Loader, *atomic.Int32) {
	loader := newLoader(t)
	constant, ok := loader.Registry.Lookup(component.KindTransform, "constant")
	if !ok {
		t.Fatal("no constant transform")
	}
	builds := new(atomic.Int32)
	loader.Registry.Register(component.Spec{Kind: component.KindTransform, Name: "second_build_fails", New: constant.New,
		Build: func(cfg any, env component.Env) (any, error) {
			if builds.Add(1) >= 2 {
				return nil, errors.New("the second build fails")
			}
			return constant.Build(cfg, env)
		}})
	return loader, builds
}

// TestFailedRestartEndsRunWithAnError: without KeepAlive (sluice run
// without --watch), a reload whose changed task cannot be rebuilt leaves the
// task stopped; Run then ends as no task is live, and it must report that
// the task did not run (sluice run's exit status 1, so systemd's
// Restart=on-failure restarts it). It returned no error: exit status 0, and
// the box stayed down.
func TestFailedRestartEndsRunWithAnError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "change.toml"), genTask(dir, "change", ""))
	loader, _ := failingRebuild(t)
	s, err := runner.NewSupervisor(loader, []string{dir}, engine.Options{Logger: zerolog.Nop(), Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan []error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Started()
	waitRunning(t, byName(s)["change"])

	writeFile(t, filepath.Join(dir, "change.toml"), genTask(dir, "change", "[[transform]]\ntype = \"second_build_fails\"\nvalue = \"v2\"\n"))
	res, err := s.Reload(context.Background())
	if err != nil || !slices.Equal(res.Restarted, []string{"change"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
	select {
	case errs := <-done:
		if len(errs) == 0 {
			t.Fatalf("Run ended with no error after the reload left task %q stopped and not restarted (no task runs): sluice run exits 0, which Restart=on-failure does not restart", "change")
		}
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		// Run kept going: a later reload could start the task. Fine.
	}
}

// TestFailedRestartRaceOnLoaded: the failed-restart path of Reload
// rewrote the kept incarnation's file (its digest cleared) without s.mu,
// while Loaded (what the admin API uses for a task's files) reads it under
// s.mu: a data race (run with -race).
// Deterministic: a second restarted task, rebuilt after the first, holds
// the reload until a reader has seen the cleared digest through Loaded.
func TestFailedRestartRaceOnLoaded(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.toml"), genTask(dir, "a", ""))
	writeFile(t, filepath.Join(dir, "b.toml"), genTask(dir, "b", ""))
	loader, _ := failingRebuild(t)
	constant, _ := loader.Registry.Lookup(component.KindTransform, "constant")
	seen := make(chan struct{})
	var blockerBuilds atomic.Int32
	loader.Registry.Register(component.Spec{Kind: component.KindTransform, Name: "blocker", New: constant.New,
		Build: func(cfg any, env component.Env) (any, error) {
			if blockerBuilds.Add(1) >= 2 { // b's new run, rebuilt after a's failed
				select {
				case <-seen:
				case <-time.After(testkit.Scale(testkit.DefaultWait)):
				}
			}
			return constant.Build(cfg, env)
		}})
	s, err := runner.NewSupervisor(loader, []string{dir}, engine.Options{Logger: zerolog.Nop(), Metrics: metrics.New()})
	if err != nil {
		t.Fatal(err)
	}
	s.KeepAlive = true
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() { defer close(ended); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ended })
	<-s.Started()
	waitRunning(t, byName(s)["a"], byName(s)["b"])

	go func() {
		defer close(seen)
		testkit.Eventually(testkit.DefaultWait, func() bool {
			f := s.Loaded("a")
			return f != nil && f.Digest == [32]byte{}
		})
	}()
	writeFile(t, filepath.Join(dir, "a.toml"), genTask(dir, "a", "[[transform]]\ntype = \"second_build_fails\"\nvalue = \"v2\"\n"))
	writeFile(t, filepath.Join(dir, "b.toml"), genTask(dir, "b", "[[transform]]\ntype = \"blocker\"\nvalue = \"v2\"\n"))
	res, err := s.Reload(context.Background())
	if err != nil || !slices.Equal(res.Restarted, []string{"a", "b"}) {
		t.Fatalf("reload: %+v, %v", res, err)
	}
}
