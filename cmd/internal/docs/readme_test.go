package docs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestREADMEExample runs the README's example as written: its task is the
// file it names (same text), its command runs from the repository's root,
// and its output is what the README shows.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	task := regexp.MustCompile("(?s)```toml\n(.*?)```").FindSubmatch(readme)
	if task == nil {
		t.Fatal("README has no toml block")
	}
	m := regexp.MustCompile("(?s)```\n\\$ bin/sluice (run [^\n<]+) < ([^\n]+)\n(.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README has no `$ bin/sluice run TASK < INPUT` block")
	}
	args, input, want := strings.Fields(string(m[1])), string(m[2]), string(m[3])
	file, err := os.ReadFile(filepath.Join(root, args[len(args)-1]))
	if err != nil {
		t.Fatalf("the README's task file: %v", err)
	}
	if !bytes.Equal(file, task[1]) {
		t.Fatalf("%s differs from the README's toml block:\n%s", args[len(args)-1], file)
	}
	in, err := os.Open(filepath.Join(root, input))
	if err != nil {
		t.Fatalf("the README's input: %v", err)
	}
	defer in.Close()
	cmd := exec.Command(testkit.SluiceBin(t), args...)
	cmd.Dir = root
	cmd.Stdin = in
	cmd.Env = append(os.Environ(), "SLUICE_STATE_DIR="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	if out.String() != want {
		t.Fatalf("the README shows:\n%s\nthe command prints:\n%s", want, out.String())
	}
}
