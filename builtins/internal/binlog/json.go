package binlog

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"strconv"
)

// MySQL's binary JSON value types.
const (
	jsonSmallObject = 0x00
	jsonLargeObject = 0x01
	jsonSmallArray  = 0x02
	jsonLargeArray  = 0x03
	jsonLiteral     = 0x04
	jsonInt16       = 0x05
	jsonUint16      = 0x06
	jsonInt32       = 0x07
	jsonUint32      = 0x08
	jsonInt64       = 0x09
	jsonUint64      = 0x0a
	jsonDouble      = 0x0b
	jsonString      = 0x0c
	jsonOpaque      = 0x0f
)

// maxJSONDepth bounds nesting (MySQL allows 100).
const maxJSONDepth = 128

// AppendBinaryJSON appends MySQL's binary JSON value b as JSON text. An
// empty value is JSON null (MySQL stores NULL-like JSON that way).
func AppendBinaryJSON(dst, b []byte) ([]byte, error) {
	if len(b) == 0 {
		return append(dst, "null"...), nil
	}
	return appendJSONValue(dst, b[0], b[1:], 0)
}

// appendJSONValue appends the value of type t whose data starts at b (for
// containers, b is the container: offsets are relative to its start).
func appendJSONValue(dst []byte, t byte, b []byte, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return dst, malformed("json nested deeper than %d", maxJSONDepth)
	}
	switch t {
	case jsonSmallObject, jsonLargeObject, jsonSmallArray, jsonLargeArray:
		return appendJSONContainer(dst, t, b, depth)
	case jsonLiteral:
		if len(b) < 1 {
			return dst, malformed("json literal truncated")
		}
		switch b[0] {
		case 0:
			return append(dst, "null"...), nil
		case 1:
			return append(dst, "true"...), nil
		case 2:
			return append(dst, "false"...), nil
		}
		return dst, malformed("json literal %d", b[0])
	case jsonInt16, jsonUint16:
		if len(b) < 2 {
			return dst, malformed("json int16 truncated")
		}
		v := binary.LittleEndian.Uint16(b)
		if t == jsonInt16 {
			return strconv.AppendInt(dst, int64(int16(v)), 10), nil
		}
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case jsonInt32, jsonUint32:
		if len(b) < 4 {
			return dst, malformed("json int32 truncated")
		}
		v := binary.LittleEndian.Uint32(b)
		if t == jsonInt32 {
			return strconv.AppendInt(dst, int64(int32(v)), 10), nil
		}
		return strconv.AppendUint(dst, uint64(v), 10), nil
	case jsonInt64, jsonUint64:
		if len(b) < 8 {
			return dst, malformed("json int64 truncated")
		}
		v := binary.LittleEndian.Uint64(b)
		if t == jsonInt64 {
			return strconv.AppendInt(dst, int64(v), 10), nil
		}
		return strconv.AppendUint(dst, v, 10), nil
	case jsonDouble:
		if len(b) < 8 {
			return dst, malformed("json double truncated")
		}
		return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(b)), 64), nil
	case jsonString:
		n, k, err := jsonVarLen(b)
		if err != nil {
			return dst, err
		}
		return appendText(dst, b[k:k+n], false), nil
	case jsonOpaque:
		if len(b) < 1 {
			return dst, malformed("json opaque truncated")
		}
		ft := ColumnType(b[0])
		n, k, err := jsonVarLen(b[1:])
		if err != nil {
			return dst, err
		}
		return appendJSONOpaque(dst, ft, b[1+k:1+k+n]), nil
	}
	return dst, malformed("json value type %d", t)
}

// jsonVarLen reads the variable-length size of a string or opaque value:
// 7 bits a byte, low bits first. It returns the size and its own length,
// having checked that the data fits in b.
func jsonVarLen(b []byte) (n, k int, err error) {
	var v uint64
	for k = 0; k < 5; k++ {
		if k >= len(b) {
			return 0, 0, malformed("json length truncated")
		}
		v |= uint64(b[k]&0x7f) << (7 * k)
		if b[k]&0x80 == 0 {
			k++
			if v > uint64(len(b)-k) {
				return 0, 0, malformed("json %d-byte value, %d bytes left", v, len(b)-k)
			}
			return int(v), k, nil
		}
	}
	return 0, 0, malformed("json length too long")
}

func appendJSONContainer(dst []byte, t byte, b []byte, depth int) ([]byte, error) {
	large := t == jsonLargeObject || t == jsonLargeArray
	object := t == jsonSmallObject || t == jsonLargeObject
	w := 2
	if large {
		w = 4
	}
	// word reads a count, size or offset as an int64: a large container's
	// are uint32s, negative as ints past 2^31 on 32-bit platforms.
	word := func(off int) (int64, bool) {
		if off < 0 || off+w > len(b) {
			return 0, false
		}
		if large {
			return int64(binary.LittleEndian.Uint32(b[off:])), true
		}
		return int64(binary.LittleEndian.Uint16(b[off:])), true
	}
	count, ok1 := word(0)
	size, ok2 := word(w)
	if !ok1 || !ok2 || size > int64(len(b)) {
		return dst, malformed("json container header")
	}
	b = b[:size]
	keyEntry := w + 2
	valEntry := 1 + w
	hdr := int64(2 * w)
	if object {
		hdr += count * int64(keyEntry)
	}
	if count > int64(len(b)) || hdr+count*int64(valEntry) > int64(len(b)) {
		return dst, malformed("json container of %d entries in %d bytes", count, len(b))
	}
	if object {
		dst = append(dst, '{')
	} else {
		dst = append(dst, '[')
	}
	for i := range int(count) {
		if i > 0 {
			dst = append(dst, ',')
		}
		if object {
			ko, _ := word(2*w + i*keyEntry)
			kl := int64(binary.LittleEndian.Uint16(b[2*w+i*keyEntry+w:]))
			if ko+kl > int64(len(b)) {
				return dst, malformed("json key out of range")
			}
			dst = appendText(dst, b[ko:ko+kl], false)
			dst = append(dst, ':')
		}
		e := int(hdr) + i*valEntry
		vt := b[e]
		var err error
		switch {
		case vt == jsonLiteral || vt == jsonInt16 || vt == jsonUint16 ||
			(large && (vt == jsonInt32 || vt == jsonUint32)):
			dst, err = appendJSONValue(dst, vt, b[e+1:e+1+w], depth+1) // inlined
		default:
			off, _ := word(e + 1)
			if off >= int64(len(b)) {
				return dst, malformed("json value offset %d out of %d", off, len(b))
			}
			dst, err = appendJSONValue(dst, vt, b[off:], depth+1)
		}
		if err != nil {
			return dst, err
		}
	}
	if object {
		return append(dst, '}'), nil
	}
	return append(dst, ']'), nil
}

// appendJSONOpaque renders an opaque JSON value: decimals and temporal
// values as MySQL prints them, anything else as "base64:typeN:...".
func appendJSONOpaque(dst []byte, ft ColumnType, data []byte) []byte {
	switch ft {
	case TypeNewDecimal:
		if len(data) >= 2 {
			start := len(dst)
			out, err := AppendDecimal(dst, data[2:], int(data[0]), int(data[1]))
			if err == nil {
				return out
			}
			dst = dst[:start]
		}
	case TypeDate, TypeDateTime, TypeTimestamp, TypeDateTime2, TypeTimestamp2, TypeTime, TypeTime2:
		if len(data) >= 8 {
			return appendPackedTemporal(dst, ft, int64(binary.LittleEndian.Uint64(data)))
		}
	}
	dst = append(dst, `"base64:type`...)
	dst = strconv.AppendInt(dst, int64(ft), 10)
	dst = append(dst, ':')
	dst = base64.StdEncoding.AppendEncode(dst, data)
	return append(dst, '"')
}

// appendPackedTemporal renders MySQL's in-memory packed temporal value
// (as stored in JSON) as a string.
func appendPackedTemporal(dst []byte, ft ColumnType, v int64) []byte {
	dst = append(dst, '"')
	neg := v < 0
	if neg {
		v = -v
	}
	micro := v % (1 << 24)
	ipart := v >> 24
	fsp := 0
	if micro != 0 {
		fsp = 6
	}
	if ft == TypeTime || ft == TypeTime2 {
		if neg {
			dst = append(dst, '-')
		}
		dst = appendClock(dst, int(ipart>>12%(1<<10)), int(ipart>>6%(1<<6)), int(ipart%(1<<6)))
		dst = appendFrac(dst, micro, fsp)
		return append(dst, '"')
	}
	ymd := ipart >> 17
	ym := ymd >> 5
	hms := ipart % (1 << 17)
	dst = appendDate(dst, int(ym/13), int(ym%13), int(ymd%(1<<5)))
	if ft != TypeDate {
		dst = append(dst, 'T')
		dst = appendClock(dst, int(hms>>12), int(hms>>6%(1<<6)), int(hms%(1<<6)))
		dst = appendFrac(dst, micro, fsp)
		dst = append(dst, 'Z')
	}
	return append(dst, '"')
}
