package brokere2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

var tomlBlock = regexp.MustCompile("(?s)```toml\n(.*?)```")

// TestDocExamplesValidate: every whole task in the pages of these
// connectors, and their example pipelines, passes `sluice validate`.
func TestDocExamplesValidate(t *testing.T) {
	root := testkit.RepoRoot()
	var files []string
	for _, page := range []string{"rabbitmq.md", "mqtt.md", "function.md"} {
		doc, err := os.ReadFile(filepath.Join(root, "docs", "connectors", page))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, m := range tomlBlock.FindAllSubmatch(doc, -1) {
			if !strings.HasPrefix(string(m[1]), "name = ") {
				continue // a fragment
			}
			n++
			path := filepath.Join(t.TempDir(), strings.TrimSuffix(page, ".md")+".toml")
			if err := os.WriteFile(path, m[1], 0o644); err != nil {
				t.Fatal(err)
			}
			files = append(files, path)
		}
		if n == 0 {
			t.Fatalf("docs/connectors/%s has no whole task to check", page)
		}
	}
	for _, p := range []string{"rabbitmq.toml", "mqtt.toml", "function.toml"} {
		files = append(files, filepath.Join(root, "testdata", "pipelines", p))
	}
	bin := testkit.SluiceBin(t)
	for _, f := range files {
		out, err := testkit.Command(bin, "validate", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "is valid") {
			src, _ := os.ReadFile(f)
			t.Errorf("%s: %v\n%s\n%s", f, err, out, src)
		}
	}
}
