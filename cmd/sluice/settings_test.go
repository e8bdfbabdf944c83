package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNegativeSettingsAreUsageErrors: a negative --task-quota or
// --shutdown-timeout, as a flag or through its variable, is a wrong command
// line (exit 2) naming where the value came from; the loader used to index
// the task files with a negative quota and panic.
func TestNegativeSettingsAreUsageErrors(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "a.toml", "name = \"a\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n")
	for _, c := range []struct {
		env, val string
		args     []string
		want     string
	}{
		{args: []string{"validate", "--task-quota", "-1", task}, want: "--task-quota -1"},
		{env: "SLUICE_TASK_QUOTA", val: "-1", args: []string{"validate", task}, want: "SLUICE_TASK_QUOTA -1"},
		{args: []string{"run", "--shutdown-timeout", "-1s", task}, want: "--shutdown-timeout -1s"},
		{env: "SLUICE_SHUTDOWN_TIMEOUT", val: "-5s", args: []string{"run", task}, want: "SLUICE_SHUTDOWN_TIMEOUT -5s"},
		{args: []string{"dlq", "replay", task, "--from", filepath.Join(dir, "x.jsonl"), "--shutdown-timeout", "-1s"}, want: "--shutdown-timeout -1s"},
		// Too large wrapped the limits components derive from it.
		{args: []string{"validate", "--max-event-size", "2097152TiB", task}, want: "--max-event-size 2097152TiB: at most 256MiB"},
		{env: "SLUICE_MAX_EVENT_SIZE", val: "1GiB", args: []string{"run", task}, want: "SLUICE_MAX_EVENT_SIZE 1GiB: at most 256MiB"},
	} {
		t.Run(strings.Join(append([]string{c.env}, c.args[:len(c.args)-1]...), " "), func(t *testing.T) {
			if c.env != "" {
				t.Setenv(c.env, c.val)
			}
			var code int
			var se string
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("panicked: %v", r)
					}
				}()
				_, se, code = runMain(c.args...)
			}()
			if code != exitUsage || !strings.Contains(se, c.want) {
				t.Fatalf("exit %d, want %d with %q in:\n%s", code, exitUsage, c.want, se)
			}
		})
	}
	// 0 still means the default.
	if _, se, code := runMain("validate", "--task-quota", "0", task); code != exitOK {
		t.Fatalf("--task-quota 0: exit %d\n%s", code, se)
	}
}

// TestMemoryLimitErrorsNameTheirSource: a bad memory limit from
// SLUICE_MEMORY_LIMIT (a unit's EnvironmentFile, where nobody typed a
// flag) is reported under the variable's name, as the other settings are;
// it was always called --memory-limit.
func TestMemoryLimitErrorsNameTheirSource(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "a.toml", "name = \"a\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n")
	for _, c := range []struct {
		env  string
		args []string
		want string
	}{
		{env: "lots", args: []string{"run", task}, want: `SLUICE_MEMORY_LIMIT: invalid size "lots"`},
		{env: "8MiB", args: []string{"run", task}, want: "SLUICE_MEMORY_LIMIT 8MiB is below 16MiB"},
		{args: []string{"run", "--memory-limit", "8MiB", task}, want: "--memory-limit 8MiB is below 16MiB"},
		{env: "lots", args: []string{"run", "--memory-limit", "-1", task}, want: `--memory-limit: invalid size "-1"`},
	} {
		t.Run(c.env+" "+strings.Join(c.args[:len(c.args)-1], " "), func(t *testing.T) {
			if c.env != "" {
				t.Setenv("SLUICE_MEMORY_LIMIT", c.env)
			}
			_, se, code := runMain(c.args...)
			if code != exitUsage || !strings.Contains(se, c.want) {
				t.Fatalf("exit %d, want %d with %q in:\n%s", code, exitUsage, c.want, se)
			}
		})
	}
}

// TestLogLevelOutsideTheDocumentedSetIsRefused: --log-level takes
// debug, info, warn or error (docs/configuration.md; the error message says
// so). zerolog's ParseLevel also takes "", "disabled", "panic" and
// numbers: each of these ran the tasks with every log line (errors
// included) silenced, exit 0, where a wrong command line exits 2.
func TestLogLevelOutsideTheDocumentedSetIsRefused(t *testing.T) {
	dir := t.TempDir()
	task := write(t, dir, "t.toml", "name = \"t\"\n[source]\ntype = \"generate\"\ncount = 1\n[sink]\ntype = \"file\"\npath = "+
		`"`+filepath.Join(dir, "out.jsonl")+`"`+"\n")
	for _, lvl := range []string{"", "disabled", "42"} {
		r := sluice(t, "", "run", "--log-format", "json", "--log-level="+lvl, task)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--log-level") {
			t.Errorf("sluice run --log-level=%q: exit %d, stderr %q; want exit %d and an error naming --log-level", lvl, r.code, r.stderr, exitUsage)
		}
	}
}
