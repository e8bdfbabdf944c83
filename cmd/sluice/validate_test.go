package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// A missing file among the arguments is one problem among the others: the
// problems of the files that exist are reported with it.
func TestValidateMissingFileStillReportsTheOthers(t *testing.T) {
	dir := t.TempDir()
	bad := write(t, dir, "a.toml", "name = \"a\"\n[source]\ntype = \"stdin\"\nformt = \"json\"\n[sink]\ntype = \"stdout\"\n")
	missing := filepath.Join(dir, "missing.toml")
	var stdout, stderr bytes.Buffer
	if code := validateCmd([]string{bad, missing}, &stdout, &stderr); code != exitFailed {
		t.Fatalf("exit %d, want %d\n%s", code, exitFailed, stderr.String())
	}
	for _, want := range []string{
		bad + `:4:1: source.formt: unknown key "formt"`,
		missing + `: cannot read task file: no such file or directory`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("missing %q in:\n%s", want, stderr.String())
		}
	}
}
