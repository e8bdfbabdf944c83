package sdk

import "encoding/binary"

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

var le = binary.LittleEndian
