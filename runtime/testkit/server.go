package testkit

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FreeAddr returns a TCP address of 127.0.0.1 with a port free a moment
// ago, for a throwaway server to listen on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// RunServer runs the server program name (from PATH, else /usr/sbin or
// /usr/local/sbin, where Debian installs daemons) with args until the end
// of the test, and returns once addr accepts connections. Its output is
// shown if it exits first (the test fails) or when the test failed. It
// skips the test when the program is not installed (fails with
// SLUICE_INTEGRATION=1).
func RunServer(t testing.TB, name, addr string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
				bin, err = filepath.Join(dir, name), nil
				break
			}
		}
	}
	if err != nil {
		if Integration() {
			t.Fatalf("%s is required (SLUICE_INTEGRATION=1) but not installed", name)
		}
		t.Skipf("%s is not installed; skipping a test that needs a server of its own", name)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	output := func() string { data, _ := os.ReadFile(logPath); return string(data) }
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("%s output:\n%s", name, output())
		}
	})
	WaitFor(t, name+" to listen on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("%s %s exited:\n%s", name, strings.Join(args, " "), output())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// Serve accepts connections on ln until the end of the test, each handled
// by handle on a goroutine of its own (which closes it), and returns ln's
// address: a throwaway server that speaks a protocol by hand (a bad
// status line, a RESP reply, a TLS handshake alone).
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(c)
		}
	}()
	return ln.Addr().String()
}
