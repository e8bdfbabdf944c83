//go:build unix

package testkit

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// Environment of a test binary started by StartSluice only to lower its
// open-file limit and become the sluice binary (ProcOptions.MaxOpenFiles).
const (
	execNoFileEnv = "SLUICE_TESTKIT_NOFILE"
	execArgvEnv   = "SLUICE_TESTKIT_ARGV" // a JSON array
)

// init runs before any test: in a test binary started as such a launcher it
// lowers RLIMIT_NOFILE, soft and hard (a Go program raises its soft limit to
// the hard one as it starts, so the hard one must go too), and execs the
// command in its place.
func init() {
	v := os.Getenv(execNoFileEnv)
	if v == "" {
		return
	}
	n, err := strconv.ParseUint(v, 10, 64)
	var argv []string
	jerr := json.Unmarshal([]byte(os.Getenv(execArgvEnv)), &argv)
	if err != nil || jerr != nil || len(argv) == 0 || argv[0] == "" {
		fmt.Fprintf(os.Stderr, "testkit launcher: bad %s=%q or %s\n", execNoFileEnv, v, execArgvEnv)
		os.Exit(2)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		fmt.Fprintf(os.Stderr, "testkit launcher: setrlimit: %v\n", err)
		os.Exit(2)
	}
	env := make([]string, 0, len(os.Environ()))
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, execNoFileEnv+"=") && !strings.HasPrefix(e, execArgvEnv+"=") {
			env = append(env, e)
		}
	}
	if !strings.Contains(argv[0], "/") {
		// An emulator named by SLUICE_TEST_EXEC (TargetArgv), found on PATH.
		if p, err := exec.LookPath(argv[0]); err == nil {
			argv[0] = p
		}
	}
	err = syscall.Exec(argv[0], argv, env)
	fmt.Fprintf(os.Stderr, "testkit launcher: exec %s: %v\n", argv[0], err)
	os.Exit(2)
}

// launcher returns the command that runs bin with args under an open-file
// limit of n: this test binary, asked by its environment to become bin.
func launcher(n uint64, bin string, args []string) (exe string, argv, env []string) {
	exe, err := os.Executable()
	if err != nil {
		exe = os.Args[0]
	}
	all, _ := json.Marshal(TargetArgv(bin, args...))
	return exe, nil, []string{execNoFileEnv + "=" + strconv.FormatUint(n, 10), execArgvEnv + "=" + string(all)}
}
