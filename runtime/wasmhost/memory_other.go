//go:build !(unix && (amd64 || arm64 || riscv64 || ppc64le || s390x || loong64))

package wasmhost

// newGuestMemory is nil here (32-bit or not unix): wazero's default, a Go
// []byte, backs guest memory.
var newGuestMemory func(cap, max uint64) guestMemory
