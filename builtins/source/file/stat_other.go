//go:build !unix

package file

import "os"

// idOf has no inode to return on this platform: files are then told apart
// by their fingerprint only, and rotation by rename is not detected.
func idOf(os.FileInfo) fileID { return fileID{} }

// openFileLimit is unknown on this platform.
func openFileLimit() int { return 0 }
