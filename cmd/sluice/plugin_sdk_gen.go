//go:build ignore

// plugin_sdk_gen packs ../../sdk (Go sources and go.mod, no tests) into
// plugin_sdk.tgz, which `sluice plugin new` writes beside scaffolds. Run
// `go generate ./cmd/sluice` after changing the SDK (a test checks it).
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	root := filepath.Join("..", "..", "sdk")
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && ((strings.HasSuffix(p, ".go") && !strings.HasSuffix(p, "_test.go")) || d.Name() == "go.mod") {
			rel, _ := filepath.Rel(root, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	tw := tar.NewWriter(zw)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(n)))
		if err != nil {
			log.Fatal(err)
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			log.Fatal(err)
		}
		tw.Write(b)
	}
	if err := tw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile("plugin_sdk.tgz", buf.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
