package wasmhost

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// cacheMaxAge is how long the cache keeps an entry that no process has
// used: a box that upgrades its plugins now and then would otherwise
// collect every version's compiled code (about 20 MB for a Go plugin).
const cacheMaxAge = 30 * 24 * time.Hour

// pruneCache removes from the cache folder dir the entries not used for
// cacheMaxAge: files of wazero's folders (wazero-VERSION-ARCH-OS) and of
// the host's own (sluice-*), those of earlier versions included, which
// nothing uses any more. The host touches its own files at each use
// (touch); wazero's count as used when read (their access time, where the
// file system keeps one: on one mounted noatime, an entry in use is
// removed a month after it was written, and compiled again at the next
// start). Another process sharing the folder (SLUICE_WASM_CACHE) loses
// nothing it has loaded: a removed file it maps stays until it unmaps it.
// Anything else in dir is left alone. It returns how many files it removed.
func pruneCache(dir string, now time.Time) int {
	subs, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, s := range subs {
		name := s.Name()
		if !s.IsDir() || !strings.HasPrefix(name, "wazero-") && !strings.HasPrefix(name, "sluice-") {
			continue
		}
		sub := filepath.Join(dir, name)
		files, err := os.ReadDir(sub)
		if err != nil {
			continue
		}
		for _, f := range files {
			if !f.Type().IsRegular() {
				continue
			}
			info, err := f.Info()
			if err != nil || now.Sub(lastUse(info)) <= cacheMaxAge {
				continue
			}
			if os.Remove(filepath.Join(sub, f.Name())) == nil {
				removed++
			}
		}
	}
	return removed
}

// touch marks a cache file used now (both times: the file system may not
// keep access times).
func touch(path string) {
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}

// lastUse is the later of a file's modification and access times (the
// latter where the platform reports it: atime.go).
func lastUse(info fs.FileInfo) time.Time {
	t := info.ModTime()
	if a, ok := accessTime(info); ok && a.After(t) {
		t = a
	}
	return t
}
