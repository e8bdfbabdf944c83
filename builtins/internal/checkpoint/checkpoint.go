// Package checkpoint keeps a source's position durably in the process state
// directory, so that a restart resumes where the last run stopped.
//
// A Store holds one JSON document per component of a task, at
// <state>/<task>/<name>.json. Save replaces it atomically (write a temporary
// file, fsync it, rename it over the old one, fsync the directory), so a
// crash at any moment leaves either the old or the new document, never a
// torn one. While a Store is open it holds an exclusive lock on
// <name>.lock, so two processes running the same task on the same state
// directory fail loudly instead of overwriting each other's positions.
//
// The document wraps the component's own data in a small versioned
// envelope:
//
//	{"format":"sluice-checkpoint","version":1,"saved":"2026-11-25T15:00:00Z","data":{...}}
//
// Decode reads it strictly: unknown fields, trailing bytes and wrong types are
// errors, so a corrupted or hand-edited file is reported rather than
// silently misread.
package checkpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"github.com/sluicehq/sluice/runtime/statedir"
)

// DefaultDirName is the state directory used next to the task file when the
// process has none configured.
const DefaultDirName = ".sluice-state"

// MaxSize is the largest checkpoint document Load accepts.
const MaxSize = 64 << 20

const (
	formatName = "sluice-checkpoint"
	version    = 1
)

// ErrLocked is wrapped by the error Open returns when another process holds
// the checkpoint.
var ErrLocked = errors.New("checkpoint is locked by another process")

// ErrDecode is wrapped by every error Decode returns.
var ErrDecode = errors.New("invalid checkpoint")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Dir returns the folder holding a task's checkpoints: <stateDir>/<task>, or
// <taskDir>/.sluice-state/<task> when stateDir is empty.
func Dir(stateDir, taskDir, task string) string {
	if stateDir == "" {
		stateDir = filepath.Join(taskDir, DefaultDirName)
	}
	return filepath.Join(stateDir, task)
}

// Store is one component's checkpoint file. Its methods are safe for
// concurrent use.
type Store struct {
	dir, name string
	mu        sync.Mutex
	lock      *os.File
	buf       bytes.Buffer
}

// Open creates dir if needed, locks the checkpoint name in it and returns
// the store. name is a file name stem such as "source.file".
func Open(dir, name string) (*Store, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("checkpoint: invalid name %q", name)
	}
	if err := os.MkdirAll(dir, statedir.DirMode); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w (set the state directory with --state-dir or SLUICE_STATE_DIR)", dir, err)
	}
	s := &Store{dir: dir, name: name}
	lp := filepath.Join(dir, name+".lock")
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, statedir.FileMode)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint lock %s: %w", lp, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("%w: %s (is the same task running in another sluice process with this state directory?)", ErrLocked, lp)
		}
		return nil, fmt.Errorf("lock checkpoint %s: %w", lp, err)
	}
	s.lock = f
	return s, nil
}

// Path returns the checkpoint file's path.
func (s *Store) Path() string { return filepath.Join(s.dir, s.name+".json") }

// Load decodes the checkpoint into v. It returns false, nil when there is
// none yet.
func (s *Store) Load(v any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.Open(s.Path())
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return false, fmt.Errorf("read checkpoint %s: %w", s.Path(), err)
	}
	if len(data) > MaxSize {
		return false, fmt.Errorf("checkpoint %s: %w: larger than %d bytes", s.Path(), ErrDecode, MaxSize)
	}
	if err := Decode(data, v); err != nil {
		return false, fmt.Errorf("checkpoint %s: %w (move the file away to start over)", s.Path(), err)
	}
	return true, nil
}

// Save replaces the checkpoint with v, durably: when Save returns nil, the
// new document survives a crash or power loss.
func (s *Store) Save(v any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if err := Encode(&s.buf, v, time.Now()); err != nil {
		return err
	}
	tmp := s.Path() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, statedir.FileMode)
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	_, err = f.Write(s.buf.Bytes())
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.Path())
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save checkpoint %s: %w", s.Path(), err)
	}
	return nil
}

// Remove deletes the checkpoint, so the next run starts afresh.
func (s *Store) Remove() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Remove(s.Path()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove checkpoint: %w", err)
	}
	return syncDir(s.dir)
}

// Close releases the lock. The store must not be used afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	unlockFile(s.lock)
	err := s.lock.Close()
	s.lock = nil
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

type envelope struct {
	Format  string          `json:"format"`
	Version int             `json:"version"`
	Saved   time.Time       `json:"saved"`
	Data    json.RawMessage `json:"data"`
}

// Encode writes v in its envelope to w.
func Encode(w io.Writer, v any, saved time.Time) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	env := envelope{Format: formatName, Version: version, Saved: saved.UTC().Truncate(time.Millisecond), Data: data}
	out, err := json.MarshalIndent(env, "", " ")
	if err != nil {
		return fmt.Errorf("encode checkpoint: %w", err)
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// Decode reads a checkpoint document into v, strictly. Every error wraps
// ErrDecode and says what is wrong.
func Decode(data []byte, v any) error {
	var env envelope
	if err := strictUnmarshal(data, &env); err != nil {
		return fmt.Errorf("%w: %v", ErrDecode, err)
	}
	if env.Format != formatName {
		return fmt.Errorf("%w: not a sluice checkpoint (format %q, want %q)", ErrDecode, env.Format, formatName)
	}
	if env.Version != version {
		return fmt.Errorf("%w: unsupported version %d (this sluice reads version %d)", ErrDecode, env.Version, version)
	}
	if len(env.Data) == 0 || string(env.Data) == "null" {
		return fmt.Errorf("%w: no data", ErrDecode)
	}
	if err := strictUnmarshal(env.Data, v); err != nil {
		return fmt.Errorf("%w: data: %v", ErrDecode, err)
	}
	return nil
}

// strictUnmarshal decodes exactly one JSON value, rejecting unknown fields
// and trailing data.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty document")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the document")
	}
	return nil
}
