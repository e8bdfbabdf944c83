//go:build wasip1

package sdk

import (
	"unsafe"
)

// The exports of ABI version 1. The host calls them from one thread, one
// at a time.

//go:wasmexport sluice_abi_version
//lint:ignore U1000 called by the host through go:wasmexport, which staticcheck does not see
func exportVersion() uint32 { return ABIVersion }

// inbuf is the buffer the host writes batches and config into.
var inbuf []byte

//go:wasmexport sluice_alloc
//lint:ignore U1000 called by the host through go:wasmexport, which staticcheck does not see
func exportAlloc(size uint32) uint32 {
	if int(size) > cap(inbuf) {
		inbuf = make([]byte, size)
	}
	inbuf = inbuf[:cap(inbuf)]
	return addr(inbuf)
}

var keep []byte // keeps returned bytes alive until the next call

//go:wasmexport sluice_init
//lint:ignore U1000 called by the host through go:wasmexport, which staticcheck does not see
func exportInit(ptr, n uint32) uint64 {
	if err := initPlugin(mem(ptr, n)); err != nil {
		keep = []byte(err.Error())
		if len(keep) == 0 {
			// An empty message packs to 0, which the host reads as
			// "accept": the rejected config would be taken.
			keep = []byte(emptyInitError)
		}
		return pack(keep)
	}
	return 0
}

//go:wasmexport sluice_describe
//lint:ignore U1000 called by the host through go:wasmexport, which staticcheck does not see
func exportDescribe() uint64 {
	keep = describeJSON()
	return pack(keep)
}

//go:wasmexport sluice_close
//lint:ignore U1000 called by the host through go:wasmexport, which staticcheck does not see
func exportClose() { closePlugin() }

// result is the encoded result of the last batch.
var result []byte

//go:wasmexport sluice_process
//lint:ignore U1000 called by the host through go:wasmexport, which staticcheck does not see
func exportProcess(ptr, n uint32) uint64 {
	batch := mem(ptr, n)
	state.process(batch)
	return encodeResult()
}

// encodeResult writes state's outcomes and outputs in the ABI's result
// layout, with absolute addresses.
func encodeResult() uint64 {
	nOut := len(state.outcomes)
	nHeaders := 0
	for i := range state.outs {
		if state.outs[i].SetHeaders {
			nHeaders += len(state.outs[i].Headers)
		}
	}
	outsAt := resultHeaderSize + outcomeSize*nOut
	headersAt := outsAt + outputSize*len(state.outs)
	size := headersAt + headerEntrySize*nHeaders
	if cap(result) < size {
		result = make([]byte, size, size+size/2)
	}
	result = result[:size]
	base := addr(result)
	le.PutUint32(result[0:], ABIVersion)
	le.PutUint32(result[4:], uint32(nOut))
	le.PutUint32(result[8:], base+uint32(outsAt))
	le.PutUint32(result[12:], uint32(len(state.outs)))
	for i := range state.outcomes {
		oc := &state.outcomes[i]
		e := result[resultHeaderSize+outcomeSize*i:]
		le.PutUint32(e[0:], oc.kind)
		switch oc.kind {
		case outcomeEmit:
			le.PutUint32(e[4:], uint32(oc.first))
			le.PutUint32(e[8:], uint32(oc.n))
			le.PutUint32(e[12:], 0)
		case outcomeRetry, outcomeFail:
			le.PutUint32(e[4:], oc.code)
			le.PutUint32(e[8:], uint32(uintptr(unsafe.Pointer(unsafe.StringData(oc.msg)))))
			le.PutUint32(e[12:], uint32(len(oc.msg)))
		default:
			le.PutUint32(e[4:], 0)
			le.PutUint32(e[8:], 0)
			le.PutUint32(e[12:], 0)
		}
	}
	h := headersAt
	for i := range state.outs {
		o := &state.outs[i]
		e := result[outsAt+outputSize*i:]
		le.PutUint32(e[0:], addr(o.Payload))
		le.PutUint32(e[4:], uint32(len(o.Payload)))
		var flags uint32
		le.PutUint32(e[8:], 0)
		le.PutUint32(e[12:], 0)
		if o.SetKey {
			flags |= outSetKey
			le.PutUint32(e[8:], addr(o.Key))
			le.PutUint32(e[12:], uint32(len(o.Key)))
		}
		le.PutUint32(e[16:], 0)
		le.PutUint32(e[20:], 0)
		if o.SetHeaders {
			flags |= outSetHeaders
			le.PutUint32(e[16:], base+uint32(h))
			le.PutUint32(e[20:], uint32(len(o.Headers)))
			for _, hd := range o.Headers {
				he := result[h:]
				le.PutUint32(he[0:], addr(hd.Key))
				le.PutUint32(he[4:], uint32(len(hd.Key)))
				le.PutUint32(he[8:], addr(hd.Value))
				le.PutUint32(he[12:], uint32(len(hd.Value)))
				h += headerEntrySize
			}
		}
		le.PutUint32(e[24:], flags)
		le.PutUint32(e[28:], 0)
	}
	return uint64(base)<<32 | uint64(size)
}

// addr is the linear-memory address of b's first byte (0 for empty).
func addr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

func mem(ptr, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(nil), uintptr(ptr))), n)
}

func pack(b []byte) uint64 { return uint64(addr(b))<<32 | uint64(len(b)) }

//go:wasmimport sluice log
func importLog(level uint32, ptr unsafe.Pointer, n uint32)

//go:wasmimport sluice metric
func importMetric(kind uint32, ptr unsafe.Pointer, n uint32, v float64)

//go:wasmimport sluice kv_get
func importKVGet(kp unsafe.Pointer, kn uint32, bp unsafe.Pointer, bn uint32) int32

//go:wasmimport sluice kv_put
func importKVPut(kp unsafe.Pointer, kn uint32, vp unsafe.Pointer, vn uint32, ttlMillis int64) int32

//go:wasmimport sluice kv_add
func importKVAdd(kp unsafe.Pointer, kn uint32, vp unsafe.Pointer, vn uint32, ttlMillis int64) int32

//go:wasmimport sluice kv_delete
func importKVDelete(kp unsafe.Pointer, kn uint32) int32

func hostLog(level uint32, msg string) {
	importLog(level, unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

func hostMetric(kind uint32, name string, v float64) {
	importMetric(kind, unsafe.Pointer(unsafe.StringData(name)), uint32(len(name)), v)
}

func hostKVGet(key, buf []byte) int {
	return int(importKVGet(unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key)), unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf))))
}

func hostKVPut(key, val []byte, ttlMillis int64) int {
	return int(importKVPut(unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key)), unsafe.Pointer(unsafe.SliceData(val)), uint32(len(val)), ttlMillis))
}

func hostKVAdd(key, val []byte, ttlMillis int64) int {
	return int(importKVAdd(unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key)), unsafe.Pointer(unsafe.SliceData(val)), uint32(len(val)), ttlMillis))
}

func hostKVDelete(key []byte) {
	importKVDelete(unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key)))
}
