package testkit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// SluiceBin builds cmd/sluice once per test binary and returns its path (in
// a folder removed when the process exits only if the test binary's
// TestMain calls Cleanup; otherwise the OS's temp cleanup takes it).
// SLUICE_TEST_BIN names a prebuilt binary instead (an arm build run through
// qemu, say).
func SluiceBin(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("SLUICE_TEST_BIN"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-test-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sluice")
		cmd.Dir = RepoRoot()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// ExecEnv names the command that runs the programs tests start that are
// built for the target: the sluice binary and the test binary itself. Set
// to an emulator (SLUICE_TEST_EXEC=qemu-aarch64), tests of an arm build run
// on another machine with no binfmt set up (make test-arm): go test -exec
// runs the test binary through it, and Command runs what the test starts.
const ExecEnv = "SLUICE_TEST_EXEC"

// TargetArgv returns the command line that runs the target program name
// with args: SLUICE_TEST_EXEC's words first when it is set.
func TargetArgv(name string, args ...string) []string {
	argv := strings.Fields(os.Getenv(ExecEnv))
	return append(append(argv, name), args...)
}

// Command is exec.Command for a program built for the target (the sluice
// binary, os.Args[0]): through SLUICE_TEST_EXEC when it is set.
func Command(name string, args ...string) *exec.Cmd {
	argv := TargetArgv(name, args...)
	return exec.Command(argv[0], argv[1:]...)
}

// Cleanup removes what SluiceBin built; call it from TestMain after m.Run.
func Cleanup() {
	if binPath != "" && os.Getenv("SLUICE_TEST_BIN") == "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
}

// RepoRoot returns the repository's root folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Proc is one running `sluice` process whose output goes to a log file of
// the test.
type Proc struct {
	Name string
	Cmd  *exec.Cmd
	Log  string
	done chan struct{}
	err  error
}

// ProcOptions tune StartSluice.
type ProcOptions struct {
	Name  string   // for messages; default "sluice"
	Env   []string // added to the test's environment
	Dir   string   // working directory; default a temp dir
	Stdin []byte   // default: no input (an empty, closed stdin)
	// MaxOpenFiles, when set, starts the process with RLIMIT_NOFILE (soft
	// and hard) lowered to it (Unix only): the test binary re-executes
	// itself, lowers its limit and becomes sluice.
	MaxOpenFiles uint64
	// StdinFrom, when set, is the process's standard input instead of
	// Stdin: the read end of an os.Pipe keeps it open for as long as the
	// test holds the write end.
	StdinFrom io.Reader
}

// StartSluice runs the sluice binary with args, its stdout and stderr going
// to a log file. The process is killed at the end of the test if it still
// runs, and its last log lines are shown when the test failed.
func StartSluice(t testing.TB, o ProcOptions, args ...string) *Proc {
	t.Helper()
	if o.Name == "" {
		o.Name = "sluice"
	}
	dir := t.TempDir()
	p := &Proc{Name: o.Name, Log: filepath.Join(dir, "sluice.log"), done: make(chan struct{})}
	logf, err := os.Create(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd = Command(SluiceBin(t), args...)
	p.Cmd.Env = append(os.Environ(), o.Env...)
	if o.MaxOpenFiles > 0 {
		exe, argv, env := launcher(o.MaxOpenFiles, SluiceBin(t), args)
		p.Cmd = Command(exe, argv...)
		p.Cmd.Env = append(append(os.Environ(), o.Env...), env...)
	}
	p.Cmd.Stdout, p.Cmd.Stderr = logf, logf
	p.Cmd.Dir = o.Dir
	if p.Cmd.Dir == "" {
		p.Cmd.Dir = dir
	}
	if o.Stdin != nil {
		p.Cmd.Stdin = bytes.NewReader(o.Stdin)
	}
	if o.StdinFrom != nil {
		p.Cmd.Stdin = o.StdinFrom
	}
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.Cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.Exited() {
			p.Cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.DumpLog(t)
		}
	})
	return p
}

// Exited reports whether the process ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error once it ended (nil: exit status 0).
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Done is closed when the process ends.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Kill ends the process with SIGKILL, as a crash would, and waits for it.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM once the log shows every task running (the signal
// handler is installed by then) and waits for the process to end; it fails
// the test if the exit status is not 0.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	WaitFor(t, p.Name+" to run its tasks", func() bool { return p.Exited() || p.LogHas(`task running`) })
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(Scale(DefaultWait)):
		p.Cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not stop within %s of SIGTERM", p.Name, Scale(DefaultWait))
	}
	if p.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM, want status 0", p.Name, p.err)
	}
}

// LogHas reports whether the process logged s so far.
func (p *Proc) LogHas(s string) bool {
	data, _ := os.ReadFile(p.Log)
	return bytes.Contains(data, []byte(s))
}

// WaitLog waits until the process logged s; it fails the test if the
// process ends first.
func (p *Proc) WaitLog(t testing.TB, s string) {
	t.Helper()
	WaitFor(t, fmt.Sprintf("%s to log %q", p.Name, s), func() bool {
		if p.LogHas(s) {
			return true
		}
		if p.Exited() {
			t.Fatalf("%s exited (%v) before logging %q", p.Name, p.err, s)
		}
		return false
	})
}

// DumpLog shows the last 40 lines of the process's log in the test output.
func (p *Proc) DumpLog(t testing.TB) {
	data, _ := os.ReadFile(p.Log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	t.Logf("last log lines of %s:\n%s", p.Name, strings.Join(lines, "\n"))
}

// Memory returns the process's resident set size and its peak so far
// (VmRSS and VmHWM of /proc/PID/status), in bytes. It works on Linux only;
// elsewhere it returns an error (tests skip then).
func (p *Proc) Memory() (rss, peak int64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
			return 0, 0, fmt.Errorf("%s: %q: %w", k, v, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			peak = kb << 10
		}
	}
	if rss == 0 || peak == 0 {
		return 0, 0, fmt.Errorf("no VmRSS/VmHWM in /proc/%d/status", p.Cmd.Process.Pid)
	}
	return rss, peak, nil
}
