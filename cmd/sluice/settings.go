package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// settings are the process-wide options of `sluice run` (docs/configuration.md,
// "Process settings"): each is a flag with a SLUICE_* environment variable
// as its default. Other commands bind the ones that matter to them.
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
	// memoryLimit is --memory-limit as written ("" when unset: GOMEMLIMIT,
	// which the Go runtime reads itself, or no limit).
	memoryLimit string
}

// setting names one process setting, for the commands that bind a subset.
type setting int

const (
	settingStateDir setting = iota
	settingShutdownTimeout
	settingTaskQuota
	settingMaxEventSize
	settingAdminAddr
	settingLogLevel
	settingLogFormat
	settingProgress
	settingMemoryLimit
)

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// bindSettings sets every setting to its default (from the environment) and
// declares the flags of those named in which (all when which is empty) on
// fs. Bad environment values of bound settings are reported when parsing
// ends.
func bindSettings(fs *flag.FlagSet, s *settings, which ...setting) func() error {
	bound := func(k setting) bool { return len(which) == 0 || slices.Contains(which, k) }
	var errs []error
	s.stateDir = envOr("SLUICE_STATE_DIR", ".sluice")
	d, err := time.ParseDuration(envOr("SLUICE_SHUTDOWN_TIMEOUT", "30s"))
	if err != nil && bound(settingShutdownTimeout) {
		errs = append(errs, fmt.Errorf("SLUICE_SHUTDOWN_TIMEOUT: %w", err))
	}
	s.shutdownTimeout = d
	q, err := strconv.Atoi(envOr("SLUICE_TASK_QUOTA", strconv.Itoa(config.DefaultQuota)))
	if err != nil && bound(settingTaskQuota) {
		errs = append(errs, fmt.Errorf("SLUICE_TASK_QUOTA: %w", err))
	}
	s.taskQuota = q
	s.maxEventSize = config.DefaultMaxEvent
	if v := os.Getenv("SLUICE_MAX_EVENT_SIZE"); v != "" {
		if err := s.maxEventSize.UnmarshalText([]byte(v)); err != nil && bound(settingMaxEventSize) {
			errs = append(errs, fmt.Errorf("SLUICE_MAX_EVENT_SIZE: %w", err))
		}
	}
	s.adminAddr = envOr("SLUICE_ADMIN_ADDR", "")
	s.adminToken = envOr("SLUICE_ADMIN_TOKEN", "")
	s.adminTokenFile = envOr("SLUICE_ADMIN_TOKEN_FILE", "")
	s.logLevel = envOr("SLUICE_LOG_LEVEL", "info")
	s.logFormat = envOr("SLUICE_LOG_FORMAT", "auto")
	s.progress = envOr("SLUICE_PROGRESS", "auto")
	s.memoryLimit = envOr("SLUICE_MEMORY_LIMIT", "")

	if bound(settingStateDir) {
		fs.StringVar(&s.stateDir, "state-dir", s.stateDir, "folder for checkpoints, buffers and the compiled-WASM cache (SLUICE_STATE_DIR)")
	}
	if bound(settingShutdownTimeout) {
		fs.DurationVar(&s.shutdownTimeout, "shutdown-timeout", s.shutdownTimeout, "how long a stopping task may drain and commit; 0: the default, 30s (SLUICE_SHUTDOWN_TIMEOUT)")
	}
	if bound(settingTaskQuota) {
		fs.IntVar(&s.taskQuota, "task-quota", s.taskQuota, "most tasks in one process; 0: the default, 20 (SLUICE_TASK_QUOTA)")
	}
	if bound(settingMaxEventSize) {
		fs.TextVar(&s.maxEventSize, "max-event-size", s.maxEventSize, "largest event; larger ones go to the dead-letter queue; 0: the default, 1MiB (SLUICE_MAX_EVENT_SIZE)")
	}
	if bound(settingAdminAddr) {
		fs.StringVar(&s.adminAddr, "admin-addr", s.adminAddr, "address of the admin HTTP API (tasks, pause/resume, metrics, health); empty: off (SLUICE_ADMIN_ADDR)")
		fs.StringVar(&s.adminToken, "admin-token", s.adminToken, "bearer token of the admin API: required for pause/resume and the task views, and for an address other machines reach; prefer the variable or --admin-token-file, a flag shows in ps (SLUICE_ADMIN_TOKEN)")
		fs.StringVar(&s.adminTokenFile, "admin-token-file", s.adminTokenFile, "file holding the admin API's bearer token (SLUICE_ADMIN_TOKEN_FILE)")
	}
	if bound(settingLogLevel) {
		fs.StringVar(&s.logLevel, "log-level", s.logLevel, "debug, info, warn or error (SLUICE_LOG_LEVEL)")
	}
	if bound(settingLogFormat) {
		fs.StringVar(&s.logFormat, "log-format", s.logFormat, "json, console, or auto: console on a terminal, json otherwise (SLUICE_LOG_FORMAT)")
	}
	if bound(settingProgress) {
		fs.StringVar(&s.progress, "progress", s.progress, "live progress line: auto (on a terminal), always or never (SLUICE_PROGRESS)")
	}
	if bound(settingMemoryLimit) {
		fs.StringVar(&s.memoryLimit, "memory-limit", s.memoryLimit, "soft limit of the process's memory, e.g. 48MiB: the garbage collector works harder as it nears it (GOMEMLIMIT's meaning; off: none); unset: GOMEMLIMIT or none (SLUICE_MEMORY_LIMIT)")
	}
	return func() error {
		// source names where a setting's value came from: the flag when the
		// command line set it, else its variable.
		source := func(flagName, env string) string {
			set := false
			fs.Visit(func(f *flag.Flag) { set = set || f.Name == flagName })
			if set {
				return "--" + flagName
			}
			return env
		}
		// 0 means the default for both (20 tasks, 30s); a negative value is a mistake.
		if bound(settingTaskQuota) && s.taskQuota < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative (0 means the default, %d)", source("task-quota", "SLUICE_TASK_QUOTA"), s.taskQuota, config.DefaultQuota))
		}
		if bound(settingShutdownTimeout) && s.shutdownTimeout < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative (0 means the default, 30s)", source("shutdown-timeout", "SLUICE_SHUTDOWN_TIMEOUT"), s.shutdownTimeout))
		}
		if bound(settingMaxEventSize) && int64(s.maxEventSize) > config.MaxEventLimit {
			errs = append(errs, fmt.Errorf("%s %s: at most %s", source("max-event-size", "SLUICE_MAX_EVENT_SIZE"), s.maxEventSize, component.ByteSize(config.MaxEventLimit)))
		}
		if bound(settingMemoryLimit) {
			if _, err := parseMemoryLimitFrom(source("memory-limit", "SLUICE_MEMORY_LIMIT"), s.memoryLimit); err != nil {
				errs = append(errs, err)
			}
		}
		if bound(settingLogFormat) {
			switch s.logFormat {
			case "auto", "json", "console":
			default:
				errs = append(errs, fmt.Errorf("--log-format %q: want auto, json or console", s.logFormat))
			}
		}
		if bound(settingProgress) {
			switch s.progress {
			case "auto", "always", "never":
			default:
				errs = append(errs, fmt.Errorf("--progress %q: want auto, always or never", s.progress))
			}
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

// newFlagSet returns the flag set of a command; usage is its synopsis
// after "sluice " and the lines after it describe the command. The usage
// prints to the flag set's output: stderr, or stdout for -h/--help (see
// parseArgs).
func newFlagSet(name string, stderr io.Writer, usage string, about ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: sluice %s\n", usage)
		if len(about) > 0 {
			fmt.Fprintf(w, "\n%s\n", strings.Join(about, "\n"))
		}
		n := 0
		fs.VisitAll(func(*flag.Flag) { n++ })
		if n > 0 {
			fmt.Fprintln(w, "\nOptions:")
			fs.PrintDefaults()
		}
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
		if errors.Is(err, fs.ErrPermission) {
			// The usual cause: a 0600 file of root's, and the service of
			// `sluice install` running as a dynamic user.
			return fmt.Errorf("--admin-token-file: %w: the user sluice runs as may not read it; under the unit of `sluice install` (a dynamic user), hand it over with LoadCredential= rather than loosening its mode (docs/edge.md, \"Secrets the service reads from files\")", err)
		}
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

// errHelp is returned by parseArgs after printing a requested usage.
var errHelp = errors.New("help requested")

// parseArgs parses flags anywhere among the arguments (see
// parseInterleaved). -h or --help prints the usage to stdout and returns
// errHelp; a bad flag prints the error and the usage to stderr.
func parseArgs(fs *flag.FlagSet, args []string, stdout io.Writer) ([]string, error) {
	usage := fs.Usage
	fs.Usage = func() {} // the flag package calls it on -h and on errors: decide below
	pos, err := parseInterleaved(fs, args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		errOut := fs.Output()
		fs.SetOutput(stdout)
		usage()
		fs.SetOutput(errOut)
		return nil, errHelp
	case err != nil:
		usage()
		return nil, err
	}
	return pos, nil
}

// usageErr is the exit status after parseArgs failed.
func usageErr(err error) int {
	if errors.Is(err, errHelp) {
		return exitOK
	}
	return exitUsage
}

// wantArgs checks the number of positional arguments: between lo and hi
// (hi < 0: no upper bound). Otherwise it prints what is wrong and the usage
// to stderr.
func wantArgs(fs *flag.FlagSet, pos []string, lo, hi int, what string) bool {
	if len(pos) >= lo && (hi < 0 || len(pos) <= hi) {
		return true
	}
	switch {
	case len(pos) < lo:
		fmt.Fprintf(fs.Output(), "sluice %s: missing %s\n", fs.Name(), what)
	case hi == 0:
		fmt.Fprintf(fs.Output(), "sluice %s: unexpected argument %q: this command takes none\n", fs.Name(), pos[0])
	default:
		fmt.Fprintf(fs.Output(), "sluice %s: unexpected argument %q: want %s\n", fs.Name(), pos[hi], what)
	}
	fs.Usage()
	return false
}

// isHelp reports whether arg asks for help where a subcommand is expected.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// parseMemoryLimit reads --memory-limit: a size ("48MiB", "64MB",
// "50000000"), "off" for no limit, or "" for the Go runtime's own setting
// (GOMEMLIMIT, or none). It returns -1 for "" (leave the runtime alone).
func parseMemoryLimit(v string) (int64, error) { return parseMemoryLimitFrom("--memory-limit", v) }

// parseMemoryLimitFrom is parseMemoryLimit for a value from where (the flag
// or its variable), which its errors name.
func parseMemoryLimitFrom(where, v string) (int64, error) {
	switch strings.TrimSpace(v) {
	case "":
		return -1, nil
	case "off":
		return math.MaxInt64, nil
	}
	var b component.ByteSize
	if err := b.UnmarshalText([]byte(v)); err != nil {
		return 0, fmt.Errorf("%s: %w, or off", where, err)
	}
	if b < minMemoryLimit {
		return 0, fmt.Errorf("%s %s is below %s: the process itself needs that much (see docs/edge.md, \"Memory\")", where, v, minMemoryLimit)
	}
	return int64(b), nil
}

// minMemoryLimit refuses limits the process cannot live under: a task
// without WASM idles at ~20 MiB, most of it the binary's own pages; under
// its limit the collector would run without end.
const minMemoryLimit = component.ByteSize(16 << 20)

// applyMemoryLimit sets the soft memory limit from --memory-limit (as
// GOMEMLIMIT would) and returns the limit in force.
func applyMemoryLimit(v string) int64 {
	n, err := parseMemoryLimit(v)
	if err != nil || n < 0 {
		return debug.SetMemoryLimit(-1) // the runtime's own (GOMEMLIMIT)
	}
	debug.SetMemoryLimit(n)
	return n
}
