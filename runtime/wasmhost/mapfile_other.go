//go:build !(linux && (amd64 || arm64))

package wasmhost

import "os"

// mapFile reads the file at path: only Linux on 64 bits maps it (the
// interpreter, on 32-bit arm, may keep slices of a module's bytes).
func mapFile(path string) (b, mapped []byte, err error) {
	b, err = os.ReadFile(path)
	return b, nil, err
}

func unmapFile([]byte) {}
