// Package statedir holds the permissions of what Sluice creates under its
// state directory: checkpoints, disk buffers, WASM key-value state and the
// compiled-WASM cache. All of it holds event data or positions that reveal
// it, so it is owner-only (docs/security.md, "Files on disk"). The umask can
// only narrow these modes further; folders that already exist keep theirs,
// so an operator who wants group access creates the folder with it.
package statedir

import "io/fs"

const (
	// DirMode is the mode of every folder Sluice creates in the state
	// directory (the state directory itself included).
	DirMode fs.FileMode = 0o700
	// FileMode is the mode of every file Sluice creates there.
	FileMode fs.FileMode = 0o600
)
