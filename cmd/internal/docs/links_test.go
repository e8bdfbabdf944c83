package docs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

const root = "../../.."

// trackedFiles lists the repository's files (git ls-files), relative to
// the root, falling back to a walk outside a git checkout.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err == nil {
		return strings.Fields(string(out))
	}
	var files []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin" || d.Name() == ".cache") {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	return files
}

// markdownDocs are the documents users read: README.md and docs/**.
func markdownDocs(t *testing.T) []string {
	var out []string
	for _, f := range trackedFiles(t) {
		if f == "README.md" || strings.HasPrefix(f, "docs/") && strings.HasSuffix(f, ".md") {
			out = append(out, f)
		}
	}
	if len(out) < 5 {
		t.Fatalf("found only %v", out)
	}
	return out
}

var (
	fence      = regexp.MustCompile("(?ms)^ {0,3}(```|~~~).*?^ {0,3}(```|~~~)[^\n]*$")
	inlineCode = regexp.MustCompile("`[^`\n]*`")
	inlineLink = regexp.MustCompile(`\]\(([^()\s]+)(?:\s+"[^"]*")?\)`)
	refLink    = regexp.MustCompile(`(?m)^\s*\[[^\]]+\]:\s*(\S+)`)
	heading    = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)
)

// stripCode removes fenced blocks and inline code, where a link is text.
func stripCode(s string) string {
	s = fence.ReplaceAllStringFunc(s, func(m string) string { return strings.Repeat("\n", strings.Count(m, "\n")) })
	return inlineCode.ReplaceAllString(s, "")
}

// slug is GitHub's anchor of a heading.
func slug(h string) string {
	h = strings.ToLower(strings.NewReplacer("`", "", "*", "", "_", "_").Replace(h))
	// Links in headings keep their text.
	h = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`).ReplaceAllString(h, "$1")
	var b strings.Builder
	for _, r := range h {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

func anchors(t *testing.T, path string) map[string]bool {
	data, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(stripCodeKeepHeadings(string(data)), -1) {
		s := slug(m[1])
		for i := 1; out[s]; i++ {
			if !out[s+"-"+itoa(i)] {
				s += "-" + itoa(i)
				break
			}
		}
		out[s] = true
	}
	return out
}

func stripCodeKeepHeadings(s string) string {
	return fence.ReplaceAllStringFunc(s, func(m string) string { return strings.Repeat("\n", strings.Count(m, "\n")) })
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestRelativeLinksResolve checks every relative link of README.md and
// docs/: the file (or folder) exists in the repository and, for a link with
// #anchor into Markdown, the heading does.
func TestRelativeLinksResolve(t *testing.T) {
	cache := map[string]map[string]bool{}
	checked := 0
	for _, doc := range markdownDocs(t) {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		text := stripCode(string(data))
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, m := range refLink.FindAllStringSubmatch(text, -1) {
			targets = append(targets, m[1])
		}
		for _, target := range targets {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			path, anchor, _ := strings.Cut(target, "#")
			file := doc
			if path != "" {
				file = filepath.ToSlash(filepath.Join(filepath.Dir(doc), path))
				if strings.HasPrefix(file, "../") {
					t.Errorf("%s: link %q leaves the repository", doc, target)
					continue
				}
				if _, err := os.Stat(filepath.Join(root, file)); err != nil {
					t.Errorf("%s: link %q: %s does not exist", doc, target, file)
					continue
				}
			}
			if anchor == "" || !strings.HasSuffix(file, ".md") {
				continue
			}
			if cache[file] == nil {
				cache[file] = anchors(t, file)
			}
			if !cache[file][anchor] {
				t.Errorf("%s: link %q: %s has no heading with anchor #%s", doc, target, file, anchor)
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d links checked", checked)
	}
}

// mdMention is a Markdown file named in prose or a comment.
var mdMention = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)

// TestMentionedDocumentsExist checks that every Markdown file the Go code
// and the docs name exists in the repository (relative to the naming file,
// the repository's root or docs/): a reader is never sent to a document
// that is not there, such as a design note kept outside the repository.
func TestMentionedDocumentsExist(t *testing.T) {
	n := 0
	baseNames := map[string]bool{}
	for _, f := range trackedFiles(t) {
		if strings.HasSuffix(f, ".md") && exists(f) {
			baseNames[filepath.Base(f)] = true
		}
	}
	for _, f := range trackedFiles(t) {
		if !strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, ".md") && !strings.HasSuffix(f, ".toml") {
			continue
		}
		if upstreamCopy(f) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			continue // deleted in the work tree
		}
		for i, line := range bytes.Split(data, []byte("\n")) {
			for _, m := range mdMention.FindAll(line, -1) {
				name := strings.TrimPrefix(string(m), "./")
				if strings.HasPrefix(name, "http") || strings.Contains(string(line), "://"+name) {
					continue
				}
				n++
				if exists(filepath.Join(filepath.Dir(f), name)) || exists(name) || exists(filepath.Join("docs", name)) {
					continue
				}
				// A bare name (a link's text, say) may be any document of
				// the repository with that name.
				if !strings.Contains(name, "/") && baseNames[name] {
					continue
				}
				t.Errorf("%s:%d names %s, which is not in the repository", f, i+1, m)
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d mentions found", n)
	}
}

// upstreamCopy reports whether f is upstream's code in a fork kept in the
// repository, whose comments name upstream's documents; the fork's own
// SLUICE.md is checked.
func upstreamCopy(f string) bool {
	return strings.HasPrefix(f, "runtime/wasmhost/wazerofork/") && filepath.Base(f) != "SLUICE.md"
}

func exists(rel string) bool {
	_, err := os.Stat(filepath.Join(root, rel))
	return err == nil
}
