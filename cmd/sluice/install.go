package main

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/config"
)

// unitTemplate is the systemd unit `sluice install` writes; @BIN@ and
// @TASKS@ are replaced by the installed binary and the task folder.
//
//go:embed sluice.service
var unitTemplate string

// unitText returns the unit for bin running the tasks of tasks.
func unitText(bin, tasks string) string {
	return strings.NewReplacer("@BIN@", execWord(bin, true), "@TASKS@", execWord(tasks, false),
		"@TASKGLOB@", taskGlob(tasks), "@TASKDESC@", strings.ReplaceAll(tasks, "%", "%%")).Replace(unitTemplate)
}

// taskGlob is the value of the unit's ConditionPathExistsGlob=: the
// folder's *.toml files, as config.FolderTasks lists them (glob(3) skips
// names starting with "." too). systemd expands "%" specifiers in it and
// passes the rest to glob(3) with GLOB_BRACE, so "%" is doubled and the
// folder's own glob characters are escaped with a backslash: a folder
// named "tasks[edge]" is not a pattern.
func taskGlob(tasks string) string {
	var b strings.Builder
	for _, r := range strings.TrimSuffix(tasks, "/") {
		switch r {
		case '%':
			b.WriteString("%%")
			continue
		case '\\', '*', '?', '[', '{':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String() + "/*.toml"
}

// execWord writes one word of an ExecStart= line (systemd.syntax(7),
// systemd.service(5)): "%" starts a specifier, so it is doubled; "$"
// starts a variable in an argument (not in the executable's path), so it
// is doubled there; a word with whitespace, quotes or backslashes is put
// in double quotes, inside which backslashes and double quotes are
// escaped. checkUnitPath refuses what systemd does not accept at all.
func execWord(s string, exe bool) string {
	s = strings.ReplaceAll(s, "%", "%%")
	if !exe {
		s = strings.ReplaceAll(s, "$", "$$")
	}
	if !strings.ContainsAny(s, " \"'\\") {
		return s
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// checkUnitPath refuses a path the unit cannot name: control characters
// (a newline would start a new setting of its own) and bytes that are not
// UTF-8 anywhere; quotes and backslashes in the executable's path, which
// systemd refuses ("Executable name contains special characters").
func checkUnitPath(flag, p string) error {
	if !utf8.ValidString(p) {
		return fmt.Errorf("--%s %q is not UTF-8, which a systemd unit requires", flag, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("--%s %q holds a control character (a newline, a tab, ...), which a systemd unit cannot name", flag, p)
		}
	}
	if flag == "bin" && strings.ContainsAny(p, "\"'\\") {
		return fmt.Errorf("--bin %q holds a quote or a backslash, which systemd refuses in ExecStart's executable", p)
	}
	return nil
}

func installCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("install", stderr, "install [options]",
		"Installs sluice as a systemd service running every *.toml task of a folder:",
		"copies this binary to --bin, writes the unit (hardened: a dynamic user, only",
		"/var/lib/sluice writable, restarted on failure, logs to the journal) and creates",
		"the task folder, then enables the service and starts it if the folder holds tasks.",
		"Run it as root. --print shows the unit instead, for a system managed by hand.")
	root := fs.String("root", "/", "install under this folder (a system image being built); the service is then not enabled")
	bin := fs.String("bin", "/usr/local/bin/sluice", "where the binary goes")
	tasks := fs.String("tasks", "/etc/sluice/tasks", "the folder of task files the service runs")
	unit := fs.String("unit", "/etc/systemd/system/sluice.service", "where the unit goes")
	print := fs.Bool("print", false, "print the unit and do nothing else")
	noStart := fs.Bool("no-start", false, "write the files and enable the service, but do not start it")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 0, 0, "") {
		return exitUsage
	}
	for _, f := range []struct {
		name string
		p    *string
	}{{"bin", bin}, {"tasks", tasks}, {"unit", unit}} {
		if !filepath.IsAbs(*f.p) {
			fmt.Fprintf(stderr, "sluice install: %s is not an absolute path (systemd needs one)\n", *f.p)
			return exitUsage
		}
		if err := checkUnitPath(f.name, *f.p); err != nil {
			fmt.Fprintf(stderr, "sluice install: %v\n", err)
			return exitUsage
		}
		// The path on the target system: ".." cannot climb above its
		// root, so /../outside is /outside, and under --root it stays
		// under --root.
		*f.p = filepath.Clean("/" + *f.p)
	}
	text := unitText(*bin, *tasks)
	if *print {
		io.WriteString(stdout, text)
		return exitOK
	}
	if err := install(*root, *bin, *tasks, *unit, text, stdout); err != nil {
		fmt.Fprintf(stderr, "sluice install: %v\n", err)
		return exitFailed
	}
	if *root != "/" {
		fmt.Fprintf(stdout, "installed under %s; enable it on the target with: systemctl enable --now %s\n", *root, filepath.Base(*unit))
		return exitOK
	}
	name := filepath.Base(*unit)
	steps := [][]string{{"daemon-reload"}, {"enable", name}}
	have, _ := config.FolderTasks(*tasks) // what `sluice run` will run
	start := !*noStart && len(have) > 0
	if start {
		steps = append(steps, []string{"restart", name})
	}
	for _, s := range steps {
		cmd := exec.Command("systemctl", s...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(stderr, "sluice install: systemctl %s: %v (the files are in place; run it by hand)\n", strings.Join(s, " "), err)
			return exitFailed
		}
	}
	switch {
	case start:
		fmt.Fprintf(stdout, "%s is running %d task(s) from %s; logs: journalctl -u %s -f\n", name, len(have), *tasks, name)
	case len(have) == 0:
		fmt.Fprintf(stdout, "%s is enabled; put task files in %s (check them with: sluice validate %s), then: systemctl start %s\n", name, *tasks, *tasks, name)
	default:
		fmt.Fprintf(stdout, "%s is enabled; start it with: systemctl start %s\n", name, name)
	}
	return exitOK
}

// install copies the running binary to bin and writes the unit and the
// task folder, all under root.
func install(root, bin, tasks, unit, text string, stdout io.Writer) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this binary: %w", err)
	}
	dst := filepath.Join(root, bin)
	if err := copyExecutable(self, dst); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "binary: %s\n", dst)
	dir := filepath.Join(root, tasks)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create the task folder: %w", err)
	}
	fmt.Fprintf(stdout, "tasks:  %s\n", dir)
	path := filepath.Join(root, unit)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create the unit folder: %w", err)
	}
	if err := writeAtomic(path, []byte(text), 0o644); err != nil {
		return fmt.Errorf("write the unit: %w", err)
	}
	fmt.Fprintf(stdout, "unit:   %s\n", path)
	return nil
}

// copyExecutable copies src to dst through a temporary file renamed in
// place, so that a running copy of dst (an upgrade) is never half-written.
func copyExecutable(src, dst string) error {
	if a, err := os.Stat(src); err == nil {
		if b, err := os.Stat(dst); err == nil && os.SameFile(a, b) {
			return nil // already installed there
		}
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("read this binary: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create the binary's folder: %w", err)
	}
	if err := writeAtomic(dst, data, 0o755); err != nil {
		return fmt.Errorf("install the binary: %w", err)
	}
	return nil
}

// writeAtomic writes path through a temporary file in its folder, synced
// and renamed in place, then syncs the folder: a crash leaves the old file
// or the new one, never a part.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.new")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("sync %s: %w", dir, err)
		}
	}
	return nil
}
