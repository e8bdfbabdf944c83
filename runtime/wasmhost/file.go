package wasmhost

import (
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
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &ModuleFileError{Path: path, Msg: fmt.Sprintf("is not a regular file (%s): a module must be a .wasm file", fileKind(st.Mode()))}
	}
	if st.Size() > MaxModuleSize {
		return nil, &ModuleFileError{Path: path, Msg: fmt.Sprintf("is %d bytes, more than the %d MiB a module may have", st.Size(), MaxModuleSize>>20)}
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

// ModuleFileError is a module path that names something other than a
// module file Sluice accepts.
type ModuleFileError struct{ Path, Msg string }

func (e *ModuleFileError) Error() string { return e.Path + " " + e.Msg }

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
