package file

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"

	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
)

// fileID identifies a file whatever its name.
type fileID struct{ dev, ino uint64 }

// fpMax is how many leading bytes of a file its fingerprint covers. It tells
// a file from another that reused its inode.
const fpMax = 1024

// fingerprint hashes the first n bytes of a file.
type fingerprint struct {
	n   int
	sum uint64
}

// fingerprintOf hashes the first min(size, fpMax) bytes of f.
func fingerprintOf(f *os.File, size int64) (fingerprint, error) {
	n := int(min(size, fpMax))
	var buf [fpMax]byte
	got, err := f.ReadAt(buf[:n], 0)
	if err != nil && !(errors.Is(err, io.EOF) && got == n) {
		if !errors.Is(err, io.EOF) {
			return fingerprint{}, err
		}
		n = got
	}
	h := fnv.New64a()
	h.Write(buf[:n])
	return fingerprint{n: n, sum: h.Sum64()}, nil
}

// state is the checkpoint document of the file source.
type state struct {
	// Mode is the mode that wrote the checkpoint; the other mode ignores it.
	Mode    string        `json:"mode"`
	Streams []streamState `json:"streams"`
}

// streamState is one path the source follows.
type streamState struct {
	// Path is the absolute path: the lane, and the stream of positions.
	Path string `json:"path"`
	// NextGen is the generation the next file at Path gets.
	NextGen int32 `json:"next_gen"`
	// Files are the files still being read for Path, oldest first: rotated
	// ones being drained, then the one at Path.
	Files []fileState `json:"files"`
}

// fileState is the position in one file.
type fileState struct {
	Dev            uint64 `json:"dev"`
	Ino            uint64 `json:"ino"`
	Gen            int32  `json:"gen"`
	Offset         int64  `json:"offset"` // start of the first line not yet handled
	Fingerprint    string `json:"fingerprint"`
	FingerprintLen int    `json:"fingerprint_len"`
	Name           string `json:"name"` // last known name, a hint to find a rotated file
}

func (f fileState) id() fileID { return fileID{f.Dev, f.Ino} }

func (f fileState) fp() fingerprint {
	b, _ := hex.DecodeString(f.Fingerprint)
	var sum uint64
	for _, c := range b {
		sum = sum<<8 | uint64(c)
	}
	return fingerprint{n: f.FingerprintLen, sum: sum}
}

func fpString(fp fingerprint) string {
	var b [8]byte
	for i := range b {
		b[i] = byte(fp.sum >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

// decodeState reads and checks a checkpoint document.
func decodeState(data []byte) (*state, error) {
	var st state
	if err := checkpoint.Decode(data, &st); err != nil {
		return nil, err
	}
	if err := st.validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", checkpoint.ErrDecode, err)
	}
	return &st, nil
}

func (st *state) validate() error {
	if st.Mode != "read" && st.Mode != "tail" {
		return fmt.Errorf("mode: %q is neither \"read\" nor \"tail\"", st.Mode)
	}
	seen := map[string]bool{}
	for i, s := range st.Streams {
		at := fmt.Sprintf("streams[%d]", i)
		if s.Path == "" || !filepath.IsAbs(s.Path) {
			return fmt.Errorf("%s.path: %q is not an absolute path", at, s.Path)
		}
		if seen[s.Path] {
			return fmt.Errorf("%s.path: %q appears twice", at, s.Path)
		}
		seen[s.Path] = true
		if s.NextGen < 0 {
			return fmt.Errorf("%s.next_gen: %d is negative", at, s.NextGen)
		}
		gens := map[int32]bool{}
		for j, f := range s.Files {
			at := fmt.Sprintf("%s.files[%d]", at, j)
			switch {
			case f.Gen < 0 || f.Gen >= s.NextGen:
				return fmt.Errorf("%s.gen: %d is outside 0..next_gen-1 (%d)", at, f.Gen, s.NextGen-1)
			case gens[f.Gen]:
				return fmt.Errorf("%s.gen: %d appears twice", at, f.Gen)
			case f.Offset < 0:
				return fmt.Errorf("%s.offset: %d is negative", at, f.Offset)
			case f.FingerprintLen < 0 || f.FingerprintLen > fpMax:
				return fmt.Errorf("%s.fingerprint_len: %d is outside 0..%d", at, f.FingerprintLen, fpMax)
			}
			if b, err := hex.DecodeString(f.Fingerprint); err != nil || len(b) != 8 {
				return fmt.Errorf("%s.fingerprint: %q is not 16 hexadecimal digits", at, f.Fingerprint)
			}
			gens[f.Gen] = true
		}
	}
	return nil
}

var newline = []byte{'\n'}

// countNewlines counts the '\n' bytes of f in [from, to).
func countNewlines(f *os.File, from, to int64) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for from < to {
		k := int(min(int64(len(buf)), to-from))
		got, err := f.ReadAt(buf[:k], from)
		n += int64(bytes.Count(buf[:got], newline))
		from += int64(got)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
	}
	return n, nil
}
