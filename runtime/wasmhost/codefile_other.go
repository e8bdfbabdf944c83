//go:build !(linux && (amd64 || arm64))

package wasmhost

// releasePages is Linux's: elsewhere, and on 32-bit arm where wazero
// interprets, the code stays in anonymous memory (the fork maps it from
// its cache file only on Linux).
func releasePages([]byte) {}
