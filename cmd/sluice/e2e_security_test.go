package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestE2EStateDirIsOwnerOnly: everything Sluice writes under its state
// directory (checkpoints, disk buffer segments, cursors, locks) holds event
// data or positions, so it is created readable by its owner only, whatever
// the umask lets through.
func TestE2EStateDirIsOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state") // created by sluice
	in := write(t, dir, "in.jsonl", "{\"n\":1}\n{\"n\":2}\n")
	task := write(t, dir, "task.toml", `name = "perm"
[source]
type = "file"
path = "`+in+`"
[sink]
type = "file"
path = "`+filepath.Join(dir, "out.jsonl")+`"
buffer = { type = "disk", max_size = "64MiB" }
`)
	r := sluiceIn(t, dir, nil, "run", "--state-dir", state, task)
	if r.code != 0 {
		t.Fatalf("run: %+v", r)
	}
	if out, _ := os.ReadFile(filepath.Join(dir, "out.jsonl")); strings.Count(string(out), "\n") != 2 {
		t.Fatalf("output: %q", out)
	}
	var seen []string
	err := filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		seen = append(seen, rel)
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v: want owner-only (0700 folders, 0600 files)", rel, fi.Mode())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var files int
	for _, s := range seen {
		if strings.Contains(s, "buffers") && strings.HasSuffix(s, ".seg") || strings.HasSuffix(s, ".lock") {
			files++
		}
	}
	if files < 2 {
		t.Fatalf("expected buffer segments and checkpoint locks under the state dir, found %q", seen)
	}
}
