package main

import (
	"bytes"
	"strings"
	"testing"
)

func runMain(args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Main(args, &out, &errb)
	return out.String(), errb.String(), code
}

// helpTargets are every command and subcommand, as `sluice help` names them.
var helpTargets = [][]string{
	{"run"}, {"validate"}, {"test"}, {"dlq"}, {"dlq", "show"}, {"dlq", "replay"},
	{"dev"}, {"dev", "kafka"}, {"plugin"}, {"plugin", "new"}, {"plugin", "build"}, {"plugin", "inspect"},
	{"list"}, {"bench"}, {"install"}, {"docs"}, {"version"}, {"top"}, {"tap"},
}

// TestHelpEveryCommand: --help and -h print the usage to stdout and exit 0,
// and `sluice help CMD [SUB]` prints the same.
func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		found := false
		for _, h := range helpTargets {
			found = found || h[0] == c.name
		}
		if !found {
			t.Errorf("command %s has no help check here", c.name)
		}
	}
	for _, target := range helpTargets {
		name := strings.Join(target, " ")
		t.Run(name, func(t *testing.T) {
			var first string
			for _, flag := range []string{"--help", "-h"} {
				out, errOut, code := runMain(append(append([]string(nil), target...), flag)...)
				if code != exitOK || errOut != "" || !strings.HasPrefix(out, "Usage: sluice "+name) {
					t.Fatalf("sluice %s %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, flag, code, out, errOut)
				}
				first = out
			}
			out, errOut, code := runMain(append([]string{"help"}, target...)...)
			if code != exitOK || errOut != "" || out != first {
				t.Fatalf("sluice help %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant the --help output:\n%s", name, code, out, errOut, first)
			}
		})
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		out, errOut, code := runMain(args...)
		if code != exitOK || errOut != "" || !strings.Contains(out, "Commands:") {
			t.Fatalf("sluice %v: exit %d, %q, %q", args, code, out, errOut)
		}
	}
	if _, errOut, code := runMain("help", "nope"); code != exitUsage || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Fatalf("sluice help nope: %d %q", code, errOut)
	}
	if _, _, code := runMain(); code != exitUsage {
		t.Fatalf("sluice without a command: exit %d", code)
	}
}

// TestEachCommandListsItsOwnFlags: a command's usage lists the flags it
// uses and none of another command's.
func TestEachCommandListsItsOwnFlags(t *testing.T) {
	for _, c := range []struct {
		cmd       []string
		want, not []string
	}{
		{[]string{"run"}, []string{"-state-dir", "-shutdown-timeout", "-task-quota", "-max-event-size", "-admin-addr", "-log-level", "-log-format", "-progress", "-cpuprofile", "-memory-limit"}, nil},
		{[]string{"validate"}, []string{"-state-dir", "-task-quota", "-max-event-size"}, []string{"-shutdown-timeout", "-admin-addr", "-progress", "-log-format", "-cpuprofile", "-input", "-memory-limit"}},
		{[]string{"test"}, []string{"-input", "-expect", "-raw", "-time", "-state-dir", "-max-event-size"}, []string{"-shutdown-timeout", "-admin-addr", "-progress", "-task-quota", "-log-level"}},
		{[]string{"dlq", "replay"}, []string{"-from", "-stage", "-failed", "-skip-transforms", "-shutdown-timeout"}, []string{"-admin-addr", "-progress", "-task-quota", "-input"}},
		{[]string{"list"}, []string{"-kind", "-fields"}, []string{"-state-dir", "-input"}},
		{[]string{"top"}, []string{"-once", "-admin-addr", "-admin-token", "-admin-token-file"}, []string{"-state-dir", "-limit"}},
		{[]string{"tap"}, []string{"-limit", "-admin-addr", "-admin-token"}, []string{"-state-dir", "-once"}},
		{[]string{"docs"}, []string{"-check", "-out"}, []string{"-state-dir"}},
		{[]string{"bench"}, []string{"-events", "-cores", "-preset"}, []string{"-admin-addr", "-state-dir"}},
		{[]string{"plugin", "build"}, []string{"-o"}, []string{"-state-dir", "-json"}},
		{[]string{"plugin", "inspect"}, []string{"-json"}, []string{"-state-dir", "-dir"}},
		{[]string{"plugin", "new"}, []string{"-dir", "-module"}, []string{"-state-dir", "-json"}},
		{[]string{"dev", "kafka"}, []string{"-addr", "-brokers", "-partitions", "-topics"}, []string{"-state-dir"}},
	} {
		out, _, _ := runMain(append(c.cmd, "--help")...)
		for _, f := range c.want {
			if !strings.Contains(out, "  "+f+" ") && !strings.Contains(out, "  "+f+"\n") {
				t.Errorf("sluice %s --help does not list %s:\n%s", strings.Join(c.cmd, " "), f, out)
			}
		}
		for _, f := range c.not {
			if strings.Contains(out, "  "+f+" ") || strings.Contains(out, "  "+f+"\n") {
				t.Errorf("sluice %s --help lists %s, which it does not use:\n%s", strings.Join(c.cmd, " "), f, out)
			}
		}
	}
}

// TestExtraArgumentsAreErrors: a command given more arguments than it takes
// fails with a usage error naming the argument.
func TestExtraArgumentsAreErrors(t *testing.T) {
	for _, args := range [][]string{
		{"list", "sinks"},
		{"docs", "extra"},
		{"version", "2"},
		{"dev", "kafka", "now"},
		{"plugin", "new", "a", "b"},
		{"plugin", "build", "a", "b"},
		{"plugin", "inspect", "a.wasm", "b.wasm"},
		{"bench", "a.toml", "b.toml"},
		{"test", "a.toml", "b.toml", "--input", "x.jsonl"},
		{"dlq", "replay", "a.toml", "b.toml", "--from", "x.jsonl"},
		{"top", "orders"},
		{"tap", "orders", "sink", "more"},
	} {
		_, errOut, code := runMain(args...)
		if code != exitUsage || !strings.Contains(errOut, "unexpected argument") || !strings.Contains(errOut, "Usage: sluice") {
			t.Errorf("sluice %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, errOut)
		}
	}
	// A missing argument is a usage error too.
	for _, args := range [][]string{{"run"}, {"validate"}, {"plugin", "build"}, {"dlq", "show"}, {"tap"}} {
		if _, errOut, code := runMain(args...); code != exitUsage || !strings.Contains(errOut, "missing") {
			t.Errorf("sluice %s: exit %d, stderr:\n%s", strings.Join(args, " "), code, errOut)
		}
	}
	// A bad flag prints the error and the usage to stderr.
	if _, errOut, code := runMain("list", "--nope"); code != exitUsage || !strings.Contains(errOut, "flag provided but not defined: -nope") || !strings.Contains(errOut, "Usage: sluice list") {
		t.Errorf("sluice list --nope: exit %d, stderr:\n%s", code, errOut)
	}
}
