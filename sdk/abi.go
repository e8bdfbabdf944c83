package sdk

// ABIVersion is the version of the Sluice transform ABI this SDK speaks.
const ABIVersion = 1

// Layout constants of ABI version 1 (docs/abi.md).
const (
	batchHeaderSize = 16
	recordSize      = 64
	headerEntrySize = 16

	flagHasKey       = 1 << 0
	flagHasTime      = 1 << 1
	flagPayloadEvent = 1 << 2

	resultHeaderSize = 16
	outcomeSize      = 16
	outputSize       = 32

	outcomePass  = 0
	outcomeEmit  = 1
	outcomeDrop  = 2
	outcomeRetry = 3
	outcomeFail  = 4

	outSetKey     = 1 << 0
	outSetHeaders = 1 << 1
)

// le reads and writes the ABI's little-endian fields. It is
// encoding/binary.LittleEndian's code without the package, which imports
// reflect (kept out of the SDK's dependencies, deps_test.go).
var le littleEndian

type littleEndian struct{}

func (littleEndian) Uint32(b []byte) uint32 {
	_ = b[3] // one bounds check
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func (littleEndian) Uint64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func (littleEndian) PutUint32(b []byte, v uint32) {
	_ = b[3]
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}
