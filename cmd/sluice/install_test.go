package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// TestInstallPrintsAHardenedUnit: the unit runs the task folder with the
// installed binary, restarts on failure, and is hardened; systemd's own
// checker accepts it when it is installed here.
func TestInstallPrintsAHardenedUnit(t *testing.T) {
	r := sluice(t, "", "install", "--print", "--bin", sluiceBin, "--tasks", "/srv/tasks")
	if r.code != 0 {
		t.Fatalf("install --print: %+v", r)
	}
	for _, want := range []string{
		"ExecStart=" + sluiceBin + " run /srv/tasks\n",
		"Restart=on-failure\n", "RestartForceExitStatus=SIGHUP\n", "DynamicUser=yes\n", "StateDirectory=sluice\n", "ProtectSystem=strict\n",
		"NoNewPrivileges=yes\n", "Environment=SLUICE_STATE_DIR=%S/sluice\n", "Environment=SLUICE_LOG_FORMAT=json\n",
		"StartLimitIntervalSec=0\n", "WantedBy=multi-user.target\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`@[A-Z]+@`).FindString(r.stdout); m != "" {
		t.Errorf("placeholder %s left in the unit", m)
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the unit's syntax was not checked by systemd")
	}
	unit := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(unit, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestInstallUnitStartsOnlyWithTasks: the unit starts only when its folder
// holds a task file, as `sluice run` would list it. Before, an enabled
// service whose folder was empty (installed before its tasks, or emptied)
// failed at every boot and was restarted every 5 s, forever. systemd
// itself evaluates the unit's condition against a real folder whose name
// holds every character the condition must escape.
func TestInstallUnitStartsOnlyWithTasks(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: systemd did not evaluate the unit's condition")
	}
	tasks := filepath.Join(t.TempDir(), `tasks [edge]{a,b} 100%i *?\x`)
	if err := os.MkdirAll(tasks, 0o755); err != nil {
		t.Fatal(err)
	}
	r := sluice(t, "", "install", "--print", "--tasks", tasks)
	if r.code != 0 {
		t.Fatalf("install --print: %+v", r)
	}
	var cond string
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.HasPrefix(line, "ConditionPathExistsGlob=") {
			cond = line
		}
	}
	if cond == "" {
		t.Fatalf("the unit has no ConditionPathExistsGlob=:\n%s", r.stdout)
	}
	starts := func() bool {
		t.Helper()
		out, err := exec.Command(analyze, "condition", cond).CombinedOutput()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatalf("systemd-analyze condition: %v\n%s", err, out)
		}
		return err == nil
	}
	write := func(name string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(tasks, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if starts() {
		t.Errorf("%s: the service would start on an empty folder", cond)
	}
	// Neither a hidden file (an editor's lock, a deployment tool's copy) nor
	// a file of another kind is a task. Nor are the tasks of folders the
	// name would match as a pattern, with its glob characters (the first)
	// or its "%" (a specifier: %i is empty here) taken as they are.
	write(".#a.toml")
	write("notes.txt")
	for _, other := range []string{"tasks ea 100%i zzx", `tasks [edge]{a,b} 100 *?\x`} {
		if err := os.MkdirAll(filepath.Join(filepath.Dir(tasks), other), 0o755); err != nil {
			t.Fatal(err)
		}
		write(filepath.Join("..", other, "other.toml"))
	}
	if starts() {
		t.Errorf("%s: the service would start without a task file in its folder", cond)
	}
	write("a.toml")
	if !starts() {
		t.Errorf("%s: the service would not start with a.toml in its folder", cond)
	}
}

// TestInstallUnderRoot: --root writes the binary, the unit and the task
// folder into a system image, without touching systemd.
func TestInstallUnderRoot(t *testing.T) {
	root := t.TempDir()
	r := sluice(t, "", "install", "--root", root)
	if r.code != 0 {
		t.Fatalf("install --root: %+v", r)
	}
	bin := filepath.Join(root, "usr/local/bin/sluice")
	fi, err := os.Stat(bin)
	if err != nil || fi.Mode().Perm()&0o111 == 0 {
		t.Fatalf("installed binary: %v, %v", fi, err)
	}
	v := exec.Command(bin, "version")
	if out, err := v.Output(); err != nil || len(out) == 0 {
		t.Fatalf("the installed binary does not run: %v", err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/sluice.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStart=/usr/local/bin/sluice run /etc/sluice/tasks\n") {
		t.Fatalf("unit: %v\n%s", err, unit)
	}
	if st, err := os.Stat(filepath.Join(root, "etc/sluice/tasks")); err != nil || !st.IsDir() {
		t.Fatalf("task folder: %v", err)
	}
	// Again, over the first install (an upgrade): same result.
	if r := sluice(t, "", "install", "--root", root); r.code != 0 {
		t.Fatalf("second install: %+v", r)
	}
	if r := sluice(t, "", "install", "--bin", "relative/sluice", "--print"); r.code != exitUsage {
		t.Fatalf("a relative --bin: %+v", r)
	}
}

// TestE2ERunFolder: `sluice run DIR` runs every *.toml task of the folder
// (and nothing else in it), side by side.
func TestE2ERunFolder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a", "b"} {
		write(t, dir, name+".jsonl", fmt.Sprintf(`{"task":%q,"n":1}`+"\n"+`{"task":%q,"n":2}`+"\n", name, name))
		write(t, dir, name+".toml", fmt.Sprintf(`name = %q
[source]
type = "file"
path = "%s.jsonl"
[sink]
type = "file"
path = "out-%s.jsonl"
`, name, name, name))
	}
	write(t, dir, "notes.txt", "not a task")
	r := sluice(t, "", "run", dir)
	if r.code != 0 {
		t.Fatalf("run %s: %+v", dir, r)
	}
	for _, name := range []string{"a", "b"} {
		out, err := os.ReadFile(filepath.Join(dir, "out-"+name+".jsonl"))
		if err != nil || strings.Count(string(out), `"task":"`+name+`"`) != 2 {
			t.Fatalf("task %s wrote %q, %v", name, out, err)
		}
	}
	empty := t.TempDir()
	if r := sluice(t, "", "run", empty); r.code == 0 || !strings.Contains(r.stderr, "holds no *.toml files") {
		t.Fatalf("run on an empty folder: %+v", r)
	}
}

// TestInstallRootKeepsPathsUnderRoot: --bin, --tasks and --unit are paths
// on the target system, where /../outside is /outside: under --root they
// land in ROOT/outside, never next to ROOT (filepath.Join(root, p) resolved
// the ".." against the root itself).
func TestInstallRootKeepsPathsUnderRoot(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "image")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	r := sluice(t, "", "install", "--root", root,
		"--bin", "/../outside/bin/sluice", "--tasks", "/x/../../outside/tasks", "--unit", "/../outside/sluice.service")
	if r.code != 0 {
		t.Fatalf("install: %+v", r)
	}
	for _, p := range []string{"outside/bin/sluice", "outside/tasks", "outside/sluice.service"} {
		if _, err := os.Stat(filepath.Join(base, p)); err == nil {
			t.Errorf("wrote %s, outside the root", filepath.Join(base, p))
		}
		if _, err := os.Stat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s is not under the root: %v", p, err)
		}
	}
	unit, _ := os.ReadFile(filepath.Join(root, "outside/sluice.service"))
	if !strings.Contains(string(unit), "ExecStart=/outside/bin/sluice run /outside/tasks\n") {
		t.Errorf("the unit names the paths otherwise than the target system sees them:\n%s", unit)
	}
}

// TestInstallEscapesExecStart: a --bin or --tasks with spaces, "%" or "$"
// (and quotes or backslashes in --tasks) is written in ExecStart= so that
// systemd reads the same path back (systemd.syntax(7)); a newline or
// another control character, which would start a setting of its own, is
// refused, and so are the quotes and backslashes systemd refuses in the
// executable's path.
func TestInstallEscapesExecStart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my sluice 100% $HOME")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := copySluice(t, dir)
	tasks := `/srv/tasks %i $HOME "q" \b`
	r := sluice(t, "", "install", "--print", "--bin", bin, "--tasks", tasks)
	if r.code != 0 {
		t.Fatalf("install --print: %+v", r)
	}
	want := `ExecStart="` + strings.ReplaceAll(bin, "%", "%%") + `" run "/srv/tasks %%i $$HOME \"q\" \\b"` + "\n"
	if !strings.Contains(r.stdout, want) {
		t.Errorf("the unit lacks %q:\n%s", want, r.stdout)
	}
	for _, c := range []struct{ flag, value string }{
		{"--bin", "/usr/bin/sluice\nExecStartPre=/bin/true"}, {"--tasks", "/srv/tasks\nExecStartPre=/bin/true"},
		{"--bin", "/usr/bin/slu\tice"}, {"--tasks", "/srv/\x7f"}, {"--unit", "/etc/systemd/system/a\nb.service"},
		{"--bin", `/opt/"sluice"`}, {"--bin", `/opt/slu\ice`},
	} {
		r := sluice(t, "", "install", "--print", c.flag, c.value)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.flag) {
			t.Errorf("%s %q: %+v, want exit %d naming the flag", c.flag, c.value, r, exitUsage)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: systemd did not read the unit back")
	}
	unit := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(unit, []byte(r.stdout), 0o644); err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's executable exists: the escaped path
	// must name the copy above.
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s\n%s", err, out, r.stdout)
	}
}

// TestE2ERunFolderSkipsHiddenFiles: `sluice run DIR` runs the folder's
// task files, and only them. Files whose name starts with "." are not
// tasks: Emacs locks a file it edits with a link ".#a.toml" pointing
// nowhere, and Ansible (like other tools that replace a file atomically)
// writes ".ansible_tmpXXXXa.toml" next to it first. Loading them made the
// start (and every reload) fail: "cannot read task file", or the task's
// name used twice. A folder whose own name holds glob characters
// ("tasks[edge]") held "no *.toml files", a folder named "x.toml"
// inside it was loaded as a file, and a named pipe "x.toml" hung the start.
func TestE2ERunFolderSkipsHiddenFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tasks[edge]")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "a.jsonl", `{"n":1}`+"\n")
	task := `name = "a"
[source]
type = "file"
path = "a.jsonl"
[sink]
type = "file"
path = "out.jsonl"
`
	write(t, dir, "a.toml", task)
	write(t, dir, ".ansible_tmp8r3kq0a.toml", task[:len(task)/2]) // half copied
	if err := os.Symlink("root@gateway.4242:1765000000", filepath.Join(dir, ".#a.toml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "old.toml"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Nothing writes to a named pipe: reading it as a task waited for ever.
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.toml"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sluice(t, "", "run", "--log-format", "json", dir)
	if r.code != 0 {
		t.Fatalf("run %s: exit %d\n%s", dir, r.code, r.stderr)
	}
	if out, err := os.ReadFile(filepath.Join(dir, "out.jsonl")); err != nil || !strings.Contains(string(out), `"n":1`) {
		t.Fatalf("task a wrote %q, %v", out, err)
	}
}

// TestE2ERunJSONLogsWhenTasksAreInvalid: with JSON logs (the unit's
// SLUICE_LOG_FORMAT=json, or stderr not a terminal) every line sluice run
// writes is a JSON object, also when it cannot start: the task files'
// problems were printed as plain text with excerpts of the file, which
// the journal then held among the JSON lines, and `journalctl -u sluice
// -o cat | jq .` stopped at the first of them.
func TestE2ERunJSONLogsWhenTasksAreInvalid(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.toml", "name = \"a\"\n[source]\ntype = \"file\"\npath =\n")
	write(t, dir, "b.toml", "name = \"b\"\n[source]\ntype = \"nope\"\n[sink]\ntype = \"stdout\"\n")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"invalid files", []string{dir}, []string{"a.toml:4:", "b.toml:3:", "unknown"}},
		{"no such folder", []string{filepath.Join(dir, "missing")}, []string{"missing"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sluice(t, "", append([]string{"run", "--log-format", "json"}, c.args...)...)
			if r.code != exitFailed {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, exitFailed, r.stderr)
			}
			for i, line := range strings.Split(strings.TrimRight(r.stderr, "\n"), "\n") {
				var obj map[string]any
				if err := json.Unmarshal([]byte(line), &obj); err != nil {
					t.Fatalf("stderr line %d is not a JSON object (%v): %q\nstderr:\n%s", i+1, err, line, r.stderr)
				}
			}
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

// TestInstallUnitReloads: `systemctl reload sluice` reloads the task files
// (SIGHUP, docs/operations.md "Reload"). The unit had no ExecReload=, so
// systemd answered "Job type reload is not applicable for unit
// sluice.service" and the operator's only way left was a restart, which
// drains and restarts every task rather than the changed ones.
func TestInstallUnitReloads(t *testing.T) {
	r := sluice(t, "", "install", "--print")
	if r.code != 0 {
		t.Fatalf("install --print: %+v", r)
	}
	if !strings.Contains(r.stdout, "\nExecReload=/bin/kill -HUP $MAINPID\n") {
		t.Fatalf("the unit has no ExecReload= sending SIGHUP to sluice:\n%s", r.stdout)
	}
}

// TestServiceSecretsDropIn: what docs/edge.md tells an operator to add to
// the unit for secrets (LoadCredential=, %d) is a drop-in systemd accepts,
// and a token file the service's user may not read fails the start with
// an error that says how to hand it over. It runs sluice as nobody, as the
// unit's dynamic user would be, against a 0600 file of root's.
func TestServiceSecretsDropIn(t *testing.T) {
	doc, err := os.ReadFile("../../docs/edge.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```ini\n(\\[Service\\]\nLoadCredential=.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/edge.md has no ini block with LoadCredential=")
	}
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot run sluice as another user")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // t.TempDir's folders are 0700
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := copySluice(t, dir)
	token := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(token, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	task := write(t, dir, "a.toml", "name = \"a\"\n[source]\ntype = \"stdin\"\n[sink]\ntype = \"stdout\"\n")
	cmd := exec.Command(bin, "run", "--admin-token-file", token, task)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Env = append(os.Environ(), "SLUICE_STATE_DIR="+filepath.Join(dir, "state"))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") || !strings.Contains(string(out), "LoadCredential=") {
		t.Errorf("sluice run as nobody with a 0600 token file of root's: %v\n%s\nwant a failure that names LoadCredential=", err, out)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: systemd did not read the drop-in")
	}
	r := sluice(t, "", "install", "--print", "--bin", bin, "--tasks", "/srv/tasks")
	if r.code != 0 {
		t.Fatalf("install --print: %+v", r)
	}
	dropIn := strings.TrimPrefix(string(m[1]), "[Service]\n")
	unitText := strings.Replace(r.stdout, "[Service]\n", "[Service]\n"+dropIn, 1)
	unit := filepath.Join(t.TempDir(), "sluice.service")
	if err := os.WriteFile(unit, []byte(unitText), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", unit).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify of the unit with the drop-in of docs/edge.md: %v\n%s\n%s", err, out, unitText)
	}
}

// copySluice copies the CLI under test into dir, executable by anyone.
func copySluice(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "sluice")
	data, err := os.ReadFile(sluiceBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestInstallUnitNamesItsTaskFolder: with --tasks, the unit's
// Description= (what systemctl status shows) and its header still name
// /etc/sluice/tasks: sluice.service hard-coded the folder there.
func TestInstallUnitNamesItsTaskFolder(t *testing.T) {
	out, errOut, code := runMain("install", "--print", "--tasks", "/srv/edge/tasks")
	if code != exitOK {
		t.Fatalf("install --print: exit %d, %s", code, errOut)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "/etc/sluice/tasks") {
			t.Errorf("the unit for --tasks /srv/edge/tasks names another folder: %q", line)
		}
	}
}
