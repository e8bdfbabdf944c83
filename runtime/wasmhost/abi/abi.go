// Package abi is the host side of the Sluice transform ABI, version 1: it
// writes a batch of records into guest memory and reads the guest's
// per-record outcomes back. docs/abi.md specifies the layout byte by byte;
// the constants below are its names.
//
// All integers are little-endian. Offsets inside a batch are relative to
// the batch's first byte; addresses inside a result are absolute addresses
// in the guest's linear memory.
package abi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// Version is the ABI version this package speaks. A module's
// sluice_abi_version export must return it.
const Version = 1

// Batch layout.
const (
	BatchHeaderSize = 16 // version, count, size, cursor
	RecordSize      = 64 // one record descriptor
	HeaderEntrySize = 16 // key off/len, value off/len

	// Offsets inside a record descriptor.
	RecPayloadOff  = 0
	RecPayloadLen  = 4
	RecKeyOff      = 8
	RecKeyLen      = 12
	RecHeadersOff  = 16
	RecHeadersN    = 20
	RecStreamOff   = 24
	RecStreamLen   = 28
	RecPartition   = 32
	RecFlags       = 36
	RecOffset      = 40
	RecTime        = 48
	RecEventOff    = 56
	RecEventLen    = 60
	FlagHasKey     = 1 << 0
	FlagHasTime    = 1 << 1
	FlagPayloadIsE = 1 << 2 // the payload is the source event itself

	// CursorNone is what the host writes in the cursor field before a call.
	CursorNone = 0xffffffff
)

// Result layout.
const (
	ResultHeaderSize = 16 // version, count, outputs address, outputs count
	OutcomeSize      = 16 // kind, a, b, c
	OutputSize       = 32 // payload, key, headers, flags, reserved

	OutcomePass  = 0
	OutcomeEmit  = 1
	OutcomeDrop  = 2
	OutcomeRetry = 3
	OutcomeFail  = 4

	OutSetKey     = 1 << 0
	OutSetHeaders = 1 << 1
)

// EncodedSize returns the bytes Encode needs for msgs (an upper bound:
// streams shared by neighbours are counted once per record).
func EncodedSize(msgs []message.Message) int {
	n := BatchHeaderSize
	for i := range msgs {
		n += RecordEncodedSize(&msgs[i])
	}
	return n
}

// RecordEncodedSize is the share of one record in EncodedSize.
func RecordEncodedSize(m *message.Message) int {
	n := RecordSize + len(m.Payload) + len(m.Key) + len(m.Pos.Stream)
	if !samePayload(m) {
		n += len(m.Event)
	}
	if len(m.Headers) > 0 {
		n += 3 + HeaderEntrySize*len(m.Headers)
		for j := range m.Headers {
			n += len(m.Headers[j].Key) + len(m.Headers[j].Value)
		}
	}
	return n
}

// samePayload reports whether the payload is the unchanged source event,
// which is then written once.
func samePayload(m *message.Message) bool {
	return len(m.Payload) == len(m.Event) && (len(m.Payload) == 0 || unsafe.SliceData(m.Payload) == unsafe.SliceData(m.Event))
}

var le = binary.LittleEndian

// Encode writes msgs as a version 1 batch into dst, which must hold at
// least EncodedSize(msgs) bytes, and returns the bytes written. It does not
// allocate.
func Encode(dst []byte, msgs []message.Message) int {
	h := dst[:BatchHeaderSize:BatchHeaderSize]
	le.PutUint32(h[0:], Version)
	le.PutUint32(h[4:], uint32(len(msgs)))
	le.PutUint32(h[12:], CursorNone)
	pos := BatchHeaderSize + RecordSize*len(msgs)
	var streamOff, streamLen uint32
	var stream string
	for i := range msgs {
		m := &msgs[i]
		at := BatchHeaderSize + RecordSize*i
		d := dst[at : at+RecordSize : at+RecordSize]
		var flags uint32

		po := uint32(pos)
		pos += copy(dst[pos:], m.Payload)
		pl := uint32(len(m.Payload))
		le.PutUint32(d[RecPayloadOff:], po)
		le.PutUint32(d[RecPayloadLen:], pl)
		if samePayload(m) {
			flags |= FlagPayloadIsE
			le.PutUint32(d[RecEventOff:], po)
			le.PutUint32(d[RecEventLen:], pl)
		} else {
			le.PutUint32(d[RecEventOff:], uint32(pos))
			le.PutUint32(d[RecEventLen:], uint32(len(m.Event)))
			pos += copy(dst[pos:], m.Event)
		}

		le.PutUint32(d[RecKeyOff:], uint32(pos))
		le.PutUint32(d[RecKeyLen:], uint32(len(m.Key)))
		if m.Key != nil {
			flags |= FlagHasKey
			pos += copy(dst[pos:], m.Key)
		}

		if i == 0 || m.Pos.Stream != stream {
			streamOff, streamLen, stream = uint32(pos), uint32(len(m.Pos.Stream)), m.Pos.Stream
			pos += copy(dst[pos:], m.Pos.Stream)
		}
		le.PutUint32(d[RecStreamOff:], streamOff)
		le.PutUint32(d[RecStreamLen:], streamLen)
		le.PutUint32(d[RecPartition:], uint32(m.Pos.Partition))
		le.PutUint64(d[RecOffset:], uint64(m.Pos.Offset))
		var ts int64
		if !m.Time.IsZero() {
			flags |= FlagHasTime
			ts = m.Time.UnixNano()
		}
		le.PutUint64(d[RecTime:], uint64(ts))

		if len(m.Headers) == 0 {
			le.PutUint32(d[RecHeadersOff:], uint32(pos))
			le.PutUint32(d[RecHeadersN:], 0)
		} else {
			pos = (pos + 3) &^ 3
			table := pos
			pos += HeaderEntrySize * len(m.Headers)
			for j := range m.Headers {
				hd := &m.Headers[j]
				e := dst[table+HeaderEntrySize*j : table+HeaderEntrySize*(j+1)]
				le.PutUint32(e[0:], uint32(pos))
				le.PutUint32(e[4:], uint32(len(hd.Key)))
				pos += copy(dst[pos:], hd.Key)
				le.PutUint32(e[8:], uint32(pos))
				le.PutUint32(e[12:], uint32(len(hd.Value)))
				pos += copy(dst[pos:], hd.Value)
			}
			le.PutUint32(d[RecHeadersOff:], uint32(table))
			le.PutUint32(d[RecHeadersN:], uint32(len(m.Headers)))
		}
		le.PutUint32(d[RecFlags:], flags)
	}
	le.PutUint32(h[8:], uint32(pos))
	return pos
}

// Cursor reads the cursor field of a batch written at batch (the index of
// the record the guest said it was working on), or -1.
func Cursor(batch []byte, n int) int {
	if len(batch) < BatchHeaderSize {
		return -1
	}
	c := le.Uint32(batch[12:])
	if c == CursorNone || int64(c) >= int64(n) {
		return -1
	}
	return int(c)
}

// ResultError is a malformed result: the guest broke the ABI. The batch
// fails as a whole and the instance is discarded.
type ResultError struct{ Msg string }

func (e *ResultError) Error() string { return "module broke the ABI: " + e.Msg }

// ErrOutputTooLarge reports outputs larger than the configured cap.
var ErrOutputTooLarge = errors.New("output exceeds max_output")

// ErrTooManyOutputs reports more outputs than the configured cap: each
// output costs the host a message (about 170 bytes) even when it is empty,
// so the byte cap alone does not bound a call's memory.
var ErrTooManyOutputs = errors.New("outputs exceed max_outputs")

// RecordError is the failure a guest reported for one record: a retry or a
// fail outcome, with the guest's code and message.
type RecordError struct {
	// Module is the module file's name; when set, the reason starts with
	// "wasm module NAME: " as trap, timeout and ABI reasons do.
	Module string
	Retry  bool
	Code   uint32
	Msg    string // valid UTF-8, at most MaxMessage bytes
}

func (e *RecordError) Error() string {
	verb := "failed"
	if e.Retry {
		verb = "asked to retry"
	}
	prefix := ""
	if e.Module != "" {
		prefix = "wasm module " + e.Module + ": "
	}
	if e.Msg == "" {
		return fmt.Sprintf("%smodule %s the record (code %d)", prefix, verb, e.Code)
	}
	return fmt.Sprintf("%smodule %s the record (code %d): %s", prefix, verb, e.Code, e.Msg)
}

// MaxMessage is the most bytes of a RETRY or FAIL message kept.
const MaxMessage = 4096

// MessageText is a message of the guest as a reason's text: its first
// MaxMessage bytes, cut between characters, as valid UTF-8 (reasonText).
func MessageText(b []byte) string { return reasonText(b) }

// reasonText turns the guest's RETRY or FAIL message into the reason's text:
// cut to MaxMessage bytes without splitting a character, and valid UTF-8
// (each run of bytes that is not becomes U+FFFD), since the reason ends up
// in dead-letter records and logs, which are UTF-8.
func reasonText(b []byte) string {
	if len(b) > MaxMessage {
		b = cutRunes(b[:MaxMessage])
	}
	if utf8.Valid(b) {
		return string(b)
	}
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if len(s) > MaxMessage { // each replacement may be longer than what it replaced
		s = string(cutRunes([]byte(s[:MaxMessage])))
	}
	return s
}

// cutRunes drops the incomplete character that cutting may have left at
// the end of b (its first bytes, valid so far); other invalid bytes stay.
func cutRunes(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if r, _ := utf8.DecodeRune(b[i:]); r == utf8.RuneError && !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}

// Limits bound what Decode accepts.
type Limits struct {
	// MaxOutput caps the bytes copied out of the guest for one call
	// (payloads, keys, headers); 0 means no cap.
	MaxOutput int
	// MaxOutputs caps the outputs of one call, empty ones included; 0
	// means no cap.
	MaxOutputs int
	// Module names the module in the reasons of RETRY and FAIL outcomes
	// (RecordError.Module).
	Module string
}

// Decode reads the result the guest returned (packed as address<<32 |
// length) from its memory mem, for the inputs in, and appends outputs and
// per-record failures to out. On error out is restored to its length at
// entry, so a failed call leaves no partial outputs.
func Decode(mem []byte, packed uint64, in []message.Message, out *component.Output, lim Limits) error {
	nMsgs, nFail, nBuf := len(out.Messages), len(out.Failures), len(out.Buf)
	err := decode(mem, packed, in, out, lim)
	if err != nil {
		clear(out.Messages[nMsgs:])
		out.Messages, out.Failures, out.Buf = out.Messages[:nMsgs], out.Failures[:nFail], out.Buf[:nBuf]
	}
	return err
}

func span(mem []byte, addr, n uint32) ([]byte, bool) {
	end := uint64(addr) + uint64(n)
	if end > uint64(len(mem)) {
		return nil, false
	}
	return mem[addr:end:end], true
}

func decode(mem []byte, packed uint64, in []message.Message, out *component.Output, lim Limits) error {
	addr, size := uint32(packed>>32), uint32(packed)
	res, ok := span(mem, addr, size)
	if !ok || size < ResultHeaderSize {
		return &ResultError{fmt.Sprintf("result at %d (%d bytes) is outside memory or shorter than its header", addr, size)}
	}
	if v := le.Uint32(res[0:]); v != Version {
		return &ResultError{fmt.Sprintf("result version %d, want %d", v, Version)}
	}
	if n := le.Uint32(res[4:]); int64(n) != int64(len(in)) {
		return &ResultError{fmt.Sprintf("result has %d outcomes for %d records", n, len(in))}
	}
	if uint64(ResultHeaderSize)+uint64(OutcomeSize)*uint64(len(in)) > uint64(size) {
		return &ResultError{"result is shorter than its outcomes"}
	}
	outAddr, outN := le.Uint32(res[8:]), le.Uint32(res[12:])
	if uint64(outN)*OutputSize > math.MaxUint32 {
		return &ResultError{"output table too large"}
	}
	outs, ok := span(mem, outAddr, outN*OutputSize)
	if !ok {
		return &ResultError{fmt.Sprintf("output table at %d (%d entries) is outside memory", outAddr, outN)}
	}
	budget := lim.MaxOutput
	if budget <= 0 {
		budget = math.MaxInt
	}
	count := lim.MaxOutputs
	if count <= 0 {
		count = math.MaxInt
	}
	outcomes := res[ResultHeaderSize : ResultHeaderSize+OutcomeSize*len(in)]
	for i := 0; i < len(in); i++ {
		o := outcomes[OutcomeSize*i : OutcomeSize*(i+1) : OutcomeSize*(i+1)]
		kind := le.Uint32(o[0:])
		src := &in[i]
		if kind == OutcomePass {
			// Append a run of passed records at once: one bulk copy
			// instead of one per record.
			j := i + 1
			for j < len(in) && le.Uint32(outcomes[OutcomeSize*j:]) == OutcomePass {
				j++
			}
			out.Messages = append(out.Messages, in[i:j]...)
			i = j - 1
			continue
		}
		a, b, c := le.Uint32(o[4:]), le.Uint32(o[8:]), le.Uint32(o[12:])
		switch kind {
		case OutcomeDrop:
		case OutcomeEmit:
			if uint64(a)+uint64(b) > uint64(outN) {
				return &ResultError{fmt.Sprintf("record %d emits outputs %d..%d of %d", i, a, uint64(a)+uint64(b), outN)}
			}
			// Checked before any output is copied: a call over the cap
			// costs nothing but this comparison.
			if count -= int(b); count < 0 {
				return fmt.Errorf("record %d: %w", i, ErrTooManyOutputs)
			}
			for j := a; j < a+b; j++ {
				if err := emit(mem, outs[OutputSize*j:], src, out, &budget); err != nil {
					return fmt.Errorf("record %d output %d: %w", i, j-a, err)
				}
			}
		case OutcomeRetry, OutcomeFail:
			msg, ok := span(mem, b, c)
			if !ok {
				return &ResultError{fmt.Sprintf("record %d: error message outside memory", i)}
			}
			rerr := &RecordError{Module: lim.Module, Retry: kind == OutcomeRetry, Code: a, Msg: reasonText(msg)}
			if rerr.Retry {
				out.Fail(src, component.Retryable(rerr, 0))
			} else {
				out.Fail(src, component.EventPermanent(rerr))
			}
		default:
			return &ResultError{fmt.Sprintf("record %d has unknown outcome kind %d", i, kind)}
		}
	}
	return nil
}

func emit(mem, d []byte, src *message.Message, out *component.Output, budget *int) error {
	take := func(addr, n uint32) ([]byte, error) {
		b, ok := span(mem, addr, n)
		if !ok {
			return nil, &ResultError{fmt.Sprintf("bytes at %d (%d) are outside memory", addr, n)}
		}
		if *budget -= len(b); *budget < 0 {
			return nil, ErrOutputTooLarge
		}
		return b, nil
	}
	payload, err := take(le.Uint32(d[0:]), le.Uint32(d[4:]))
	if err != nil {
		return err
	}
	flags := le.Uint32(d[24:])
	m := *src
	start := len(out.Buf)
	out.Buf = append(out.Buf, payload...)
	m.Payload = out.Buf[start:len(out.Buf):len(out.Buf)]
	if flags&OutSetKey != 0 {
		key, err := take(le.Uint32(d[8:]), le.Uint32(d[12:]))
		if err != nil {
			return err
		}
		if len(key) == 0 {
			m.Key = nil
		} else {
			start := len(out.Buf)
			out.Buf = append(out.Buf, key...)
			m.Key = out.Buf[start:len(out.Buf):len(out.Buf)]
		}
	}
	if flags&OutSetHeaders != 0 {
		addr, n := le.Uint32(d[16:]), le.Uint32(d[20:])
		if uint64(n)*HeaderEntrySize > math.MaxUint32 {
			return &ResultError{"header table too large"}
		}
		table, err := take(addr, n*HeaderEntrySize)
		if err != nil {
			return err
		}
		m.Headers = nil
		if n > 0 {
			m.Headers = make([]message.Header, n)
		}
		for k := range m.Headers {
			e := table[HeaderEntrySize*k:]
			key, err := take(le.Uint32(e[0:]), le.Uint32(e[4:]))
			if err != nil {
				return err
			}
			val, err := take(le.Uint32(e[8:]), le.Uint32(e[12:]))
			if err != nil {
				return err
			}
			start := len(out.Buf)
			out.Buf = append(out.Buf, val...)
			m.Headers[k] = message.Header{Key: string(key), Value: out.Buf[start:len(out.Buf):len(out.Buf)]}
		}
	}
	out.Messages = append(out.Messages, m)
	return nil
}
