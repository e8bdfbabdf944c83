package main

import (
	_ "embed"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// unitTemplate is the systemd unit `sluice install` writes; @BIN@ and
// @TASKS@ are replaced by the installed binary and the task folder.
//
//go:embed sluice.service
var unitTemplate string

// unitText returns the unit for bin running the tasks of tasks.
func unitText(bin, tasks string) string {
	return strings.NewReplacer("@BIN@", bin, "@TASKS@", tasks).Replace(unitTemplate)
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
	for _, p := range []*string{bin, tasks, unit} {
		if !filepath.IsAbs(*p) {
			fmt.Fprintf(stderr, "sluice install: %s is not an absolute path (systemd needs one)\n", *p)
			return exitUsage
		}
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
	have, _ := filepath.Glob(filepath.Join(*tasks, "*.toml"))
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

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // WriteFile keeps an existing file's mode
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
