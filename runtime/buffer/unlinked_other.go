//go:build !unix

package buffer

import "os"

// unlinked reports whether f's file was deleted; Windows refuses to delete
// an open file, so it never is.
func unlinked(*os.File) bool { return false }
