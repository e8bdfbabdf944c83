package buffer

import "errors"

// ErrClosed is returned by every call made after Close, and by a Read or an
// Append that was waiting when Close was called.
var ErrClosed = errors.New("disk buffer is closed")

// ErrLocked is wrapped by the error Open returns when another Buffer (in
// this process or another) has the directory open.
var ErrLocked = errors.New("disk buffer directory is in use by another buffer")

// ErrTooLarge is wrapped by the error Append returns for a batch that could
// never fit: larger than MaxSize, or holding a record over MaxRecordSize.
var ErrTooLarge = errors.New("batch too large for the disk buffer")
