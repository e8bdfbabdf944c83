package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// settings are the process-wide options of `sluice run` (design.md §2): each
// is a flag with a SLUICE_* environment variable as its default.
type settings struct {
	stateDir        string
	shutdownTimeout time.Duration
	taskQuota       int
	maxEventSize    component.ByteSize
	adminAddr       string
	adminToken      string
	adminTokenFile  string
	logLevel        string
	logFormat       string
	progress        string
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// bindSettings declares the process flags on fs, with defaults from the
// environment. Bad environment values are reported when parsing ends.
func bindSettings(fs *flag.FlagSet, s *settings) func() error {
	var errs []error
	fs.StringVar(&s.stateDir, "state-dir", envOr("SLUICE_STATE_DIR", ".sluice"), "folder for checkpoints, buffers and the compiled-WASM cache (SLUICE_STATE_DIR)")
	d, err := time.ParseDuration(envOr("SLUICE_SHUTDOWN_TIMEOUT", "30s"))
	if err != nil {
		errs = append(errs, fmt.Errorf("SLUICE_SHUTDOWN_TIMEOUT: %w", err))
	}
	fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", d, "how long a stopping task may drain and commit (SLUICE_SHUTDOWN_TIMEOUT)")
	q, err := strconv.Atoi(envOr("SLUICE_TASK_QUOTA", strconv.Itoa(config.DefaultQuota)))
	if err != nil {
		errs = append(errs, fmt.Errorf("SLUICE_TASK_QUOTA: %w", err))
	}
	fs.IntVar(&s.taskQuota, "task-quota", q, "most tasks in one process (SLUICE_TASK_QUOTA)")
	s.maxEventSize = config.DefaultMaxEvent
	if v := os.Getenv("SLUICE_MAX_EVENT_SIZE"); v != "" {
		if err := s.maxEventSize.UnmarshalText([]byte(v)); err != nil {
			errs = append(errs, fmt.Errorf("SLUICE_MAX_EVENT_SIZE: %w", err))
		}
	}
	fs.TextVar(&s.maxEventSize, "max-event-size", s.maxEventSize, "largest event; larger ones go to the dead-letter queue (SLUICE_MAX_EVENT_SIZE)")
	fs.StringVar(&s.adminAddr, "admin-addr", envOr("SLUICE_ADMIN_ADDR", ""), "address of the admin HTTP API (tasks, pause/resume, metrics, health); empty: off (SLUICE_ADMIN_ADDR)")
	fs.StringVar(&s.adminToken, "admin-token", envOr("SLUICE_ADMIN_TOKEN", ""), "bearer token of the admin API: required for pause/resume and the task views, and for an address other machines reach; prefer the variable or --admin-token-file, a flag shows in ps (SLUICE_ADMIN_TOKEN)")
	fs.StringVar(&s.adminTokenFile, "admin-token-file", envOr("SLUICE_ADMIN_TOKEN_FILE", ""), "file holding the admin API's bearer token (SLUICE_ADMIN_TOKEN_FILE)")
	fs.StringVar(&s.logLevel, "log-level", envOr("SLUICE_LOG_LEVEL", "info"), "debug, info, warn or error (SLUICE_LOG_LEVEL)")
	fs.StringVar(&s.logFormat, "log-format", envOr("SLUICE_LOG_FORMAT", "auto"), "json, console, or auto: console on a terminal, json otherwise (SLUICE_LOG_FORMAT)")
	fs.StringVar(&s.progress, "progress", envOr("SLUICE_PROGRESS", "auto"), "live progress line: auto (on a terminal), always or never (SLUICE_PROGRESS)")
	return func() error {
		switch s.logFormat {
		case "auto", "json", "console":
		default:
			errs = append(errs, fmt.Errorf("--log-format %q: want auto, json or console", s.logFormat))
		}
		switch s.progress {
		case "auto", "always", "never":
		default:
			errs = append(errs, fmt.Errorf("--progress %q: want auto, always or never", s.progress))
		}
		if err := s.loadAdminToken(); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments ("sluice run a.toml --state-dir x").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		i := 0
		for i < len(rest) && (!strings.HasPrefix(rest[i], "-") || rest[i] == "-") {
			pos = append(pos, rest[i])
			i++
		}
		if i < len(rest) && rest[i] == "--" {
			return append(pos, rest[i+1:]...), nil
		}
		args = rest[i:]
		if len(args) == 0 {
			return pos, nil
		}
	}
}

func newFlagSet(name string, stderr io.Writer, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: sluice %s\n\nOptions:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// loadAdminToken reads --admin-token-file into adminToken and checks the
// token: one source of it, no surrounding whitespace, at least 16
// characters (a token is guessed online, one request at a time, but a short
// one still falls to a patient script).
func (s *settings) loadAdminToken() error {
	if s.adminTokenFile != "" {
		if s.adminToken != "" {
			return errors.New("--admin-token (SLUICE_ADMIN_TOKEN) and --admin-token-file (SLUICE_ADMIN_TOKEN_FILE) are both set: keep one")
		}
		data, err := os.ReadFile(s.adminTokenFile)
		if err != nil {
			return fmt.Errorf("--admin-token-file: %w", err)
		}
		s.adminToken = strings.TrimSpace(string(data))
		if s.adminToken == "" {
			return fmt.Errorf("--admin-token-file %s is empty", s.adminTokenFile)
		}
	}
	switch t := s.adminToken; {
	case t == "":
	case strings.TrimSpace(t) != t:
		return errors.New("the admin token must not start or end with whitespace")
	case len(t) < 16:
		return errors.New("the admin token is shorter than 16 characters: generate one, e.g. with `openssl rand -hex 32`")
	}
	return nil
}
