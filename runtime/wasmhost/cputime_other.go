//go:build !linux

package wasmhost

// threadCPU is not available here: budgets are wall-clock time.
func threadCPU() int64 { return -1 }
