package natsredise2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// tomlBlocks returns the ```toml blocks of a Markdown file.
func tomlBlocks(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	parts := strings.Split(string(data), "```toml\n")
	for _, p := range parts[1:] {
		end := strings.Index(p, "```")
		if end < 0 {
			t.Fatalf("%s: unterminated toml block", path)
		}
		out = append(out, p[:end])
	}
	return out
}

// TestDocExamplesLoad checks that every TOML example of the NATS and Redis
// pages loads with `sluice validate`: whole tasks as they are, [source] and
// [sink] snippets completed with stdin and stdout. Fragments of keys are
// skipped. The pages' pipeline examples must be the files of
// testdata/pipelines that the end-to-end tests run.
func TestDocExamplesLoad(t *testing.T) {
	docs := filepath.Join(testkit.RepoRoot(), "docs", "connectors")
	dir := t.TempDir()
	n := 0
	for _, page := range []string{"nats.md", "redis.md"} {
		for i, b := range tomlBlocks(t, filepath.Join(docs, page)) {
			var task string
			switch {
			case strings.Contains(b, "\nname = ") || strings.HasPrefix(b, "name = "):
				task = b
			case strings.HasPrefix(b, "[source]"):
				task = "name = \"doc\"\n" + b + "\n[sink]\ntype = \"stdout\"\n"
			case strings.HasPrefix(b, "[sink]"):
				task = "name = \"doc\"\n[source]\ntype = \"stdin\"\n" + b
			default:
				continue // a fragment of keys
			}
			path := filepath.Join(dir, fmt.Sprintf("%s-%d.toml", page, i))
			if err := os.WriteFile(path, []byte(task), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := testkit.Command(testkit.SluiceBin(t), "validate", path).CombinedOutput()
			if err != nil {
				t.Errorf("%s example %d does not load: %v\n%s\n%s", page, i, err, out, task)
			}
			n++
		}
	}
	if n < 8 {
		t.Fatalf("only %d examples checked", n)
	}
	for page, file := range map[string]string{"nats.md": "nats-to-redis.toml", "redis.md": "redis-to-nats.toml"} {
		want, err := os.ReadFile(example(file))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, b := range tomlBlocks(t, filepath.Join(docs, page)) {
			found = found || b == string(want)
		}
		if !found {
			t.Errorf("docs/connectors/%s does not show testdata/pipelines/%s as it is", page, file)
		}
	}
}
