package filecache

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"

	"github.com/tetratelabs/wazero/internal/platform"
)

// New returns a new Cache implemented by fileCache.
func New(dir string) Cache {
	return newFileCache(dir)
}

func newFileCache(dir string) *fileCache {
	return &fileCache{dirPath: dir}
}

// fileCache persists compiled functions into dirPath.
//
// Note: this can be expanded to do binary signing/verification, set TTL on each entry, etc.
type fileCache struct {
	dirPath string
}

func (fc *fileCache) path(key Key) string {
	return path.Join(fc.dirPath, hex.EncodeToString(key[:]))
}

func (fc *fileCache) Get(key Key) (content io.ReadCloser, ok bool, err error) {
	f, err := os.Open(fc.path(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	} else {
		// Sluice: the reader reads 8 bytes per function offset (thousands
		// for a Go module): buffered, a cache hit makes a few read calls,
		// not one per function.
		return bufferedFile{bufio.NewReaderSize(f, 64<<10), f}, true, nil
	}
}

// bufferedFile reads through its buffer and closes the file.
type bufferedFile struct {
	*bufio.Reader
	f *os.File
}

func (b bufferedFile) Close() error { return b.f.Close() }

// Size is the size of the entry's file (Sluice: counts read from the entry
// are bounded by it before anything is allocated for them), or the
// largest int64 when unknown.
func (b bufferedFile) Size() int64 {
	st, err := b.f.Stat()
	if err != nil {
		return math.MaxInt64
	}
	return st.Size()
}

// ReadAt reads the entry's file at off, wherever the reader is (Sluice:
// the checksum of code mapped by MapCode).
func (b bufferedFile) ReadAt(p []byte, off int64) (int, error) { return b.f.ReadAt(p, off) }

// CodeMapper is offered by an entry read from a file (Sluice): MapCode maps
// n bytes of the entry from offset off, a multiple of the page size,
// read-only, executable and private, and moves the reader to off+n. The
// mapping is released with platform.MunmapCodeFile. It fails where
// mapping is not supported (platform.MapCodeFile), the file is shorter
// than off+n (touching a page past its end would kill the process), or the
// system refuses it.
type CodeMapper interface {
	MapCode(off int64, n int) ([]byte, error)
}

func (b bufferedFile) MapCode(off int64, n int) ([]byte, error) {
	if st, err := b.f.Stat(); err != nil {
		return nil, err
	} else if st.Size() < off+int64(n) {
		return nil, fmt.Errorf("cache entry of %d bytes cut short: its code ends at %d", st.Size(), off+int64(n))
	}
	code, err := platform.MapCodeFile(b.f, off, n)
	if err != nil {
		return nil, err
	}
	if _, err := b.f.Seek(off+int64(n), io.SeekStart); err != nil {
		_ = platform.MunmapCodeFile(code)
		return nil, err
	}
	b.Reader.Reset(b.f)
	return code, nil
}

func (fc *fileCache) Add(key Key, content io.Reader) (err error) {
	path := fc.path(key)
	dirPath, fileName := filepath.Split(path)

	file, err := os.CreateTemp(dirPath, fileName+".*.tmp")
	if err != nil {
		return
	}
	defer func() {
		file.Close()
		if err != nil {
			_ = os.Remove(file.Name())
		}
	}()
	if _, err = io.Copy(file, content); err != nil {
		return
	}
	if err = file.Sync(); err != nil {
		return
	}
	if err = file.Close(); err != nil {
		return
	}
	err = os.Rename(file.Name(), path)
	return
}

func (fc *fileCache) Delete(key Key) (err error) {
	err = os.Remove(fc.path(key))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return
}
