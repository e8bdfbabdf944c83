//go:build !(linux && (amd64 || arm64))

package wasmhost

import "errors"

// mapCodeFile is Linux's: elsewhere, and on 32-bit arm where wazero
// interprets, code stays in anonymous memory.
func mapCodeFile(string, []byte) error { return errors.ErrUnsupported }

func releasePages([]byte) {}
