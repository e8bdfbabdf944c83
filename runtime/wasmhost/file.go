package wasmhost

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxModuleSize caps the size of a module file. The largest real modules
// (a Go guest with its runtime, a Rust guest with its standard library)
// are a few MiB to a few tens of MiB; a larger file is almost certainly a
// mistake (a data file, a disk image), and reading it would cost memory
// and minutes of compilation before failing.
const MaxModuleSize = 256 << 20

// ReadModule reads the module file at path. It refuses anything but a
// regular file (a device such as /dev/zero, a FIFO, a socket or a folder
// could be read forever or block validation) and files over MaxModuleSize,
// with an error naming the file. The file is opened without blocking, so a
// FIFO with no writer cannot hang the caller, and read at most
// MaxModuleSize+1 bytes, so a file that grows while it is read cannot
// either.
func ReadModule(path string) ([]byte, error) {
	f, err := openModule(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// One buffer of the file's size (and a byte more, to notice growth):
	// io.ReadAll's doubling copied a Go module several times over freshly
	// faulted memory: 16 ms of CPU per read in a warm process on the loaded
	// bench machine, 1.3 ms now.
	b := make([]byte, 0, st.Size()+1)
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(b) > MaxModuleSize {
			break
		}
		if len(b) == cap(b) { // the file grew while it was read
			b = append(b, 0)[:len(b)]
		}
	}
	if len(b) > MaxModuleSize {
		return nil, &ModuleFileError{Path: path, Msg: fmt.Sprintf("grew past the %d MiB a module may have while it was read", MaxModuleSize>>20)}
	}
	return b, nil
}

// ModuleFile is a module file checked as ReadModule checks it and hashed,
// for Host.LoadFile, which reads its bytes only when it needs them.
type ModuleFile struct {
	path string
	sum  [sha256.Size]byte
	size int64
}

// OpenModule checks the module file at path as ReadModule does and hashes
// its content through a small buffer: a host that has the module rewritten
// in its cache never holds the original in memory (for a Go plugin, 2.3 MB
// of fresh heap, a page fault each 4 KiB, at every start).
func OpenModule(path string) (*ModuleFile, error) {
	f, err := openModule(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(f, MaxModuleSize+1), make([]byte, 64<<10))
	if err != nil {
		return nil, err
	}
	if n > MaxModuleSize {
		return nil, &ModuleFileError{Path: path, Msg: fmt.Sprintf("grew past the %d MiB a module may have while it was read", MaxModuleSize>>20)}
	}
	m := &ModuleFile{path: path, size: n}
	h.Sum(m.sum[:0])
	return m, nil
}

// Size is the module's size in bytes.
func (m *ModuleFile) Size() int64 { return m.size }

// errModuleChanged: the file's content is not what OpenModule hashed.
var errModuleChanged = errors.New("changed while it was loaded: load it again")

// read reads the module's bytes, which must still be those OpenModule
// hashed.
func (m *ModuleFile) read() ([]byte, error) {
	b, err := ReadModule(m.path)
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(b) != m.sum {
		return nil, &ModuleFileError{Path: m.path, Msg: errModuleChanged.Error(), err: errModuleChanged}
	}
	return b, nil
}

// openModule opens the module file at path without blocking and refuses
// anything but a regular file of at most MaxModuleSize bytes.
func openModule(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &ModuleFileError{Path: path, Msg: fmt.Sprintf("is not a regular file (%s): a module must be a .wasm file", fileKind(st.Mode()))}
	}
	if st.Size() > MaxModuleSize {
		f.Close()
		return nil, &ModuleFileError{Path: path, Msg: fmt.Sprintf("is %d bytes, more than the %d MiB a module may have", st.Size(), MaxModuleSize>>20)}
	}
	return f, nil
}

// ModuleReadError is a module file that LoadFile could not read (removed,
// changed since OpenModule hashed it): Err says why.
type ModuleReadError struct{ Err error }

func (e *ModuleReadError) Error() string { return e.Err.Error() }

func (e *ModuleReadError) Unwrap() error { return e.Err }

// ModuleFileError is a module path that names something other than a
// module file Sluice accepts.
type ModuleFileError struct {
	Path, Msg string
	err       error
}

func (e *ModuleFileError) Error() string { return e.Path + " " + e.Msg }

func (e *ModuleFileError) Unwrap() error { return e.err }

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "mode " + m.String()
}
