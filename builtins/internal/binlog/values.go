package binlog

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
)

// valueLen returns the number of bytes the value of col takes at the start
// of b.
func valueLen(col *Column, b []byte) (int, error) {
	need := func(n int) (int, error) {
		if n > len(b) {
			return 0, malformed("%d-byte value, %d bytes left", n, len(b))
		}
		return n, nil
	}
	switch col.Type {
	case TypeNull:
		return 0, nil
	case TypeTiny, TypeYear:
		return need(1)
	case TypeShort:
		return need(2)
	case TypeInt24, TypeDate, TypeNewDate, TypeTime:
		return need(3)
	case TypeLong, TypeTimestamp:
		return need(4)
	case TypeLongLong, TypeDateTime:
		return need(8)
	case TypeFloat:
		if col.Meta == 8 {
			return need(8)
		}
		return need(4)
	case TypeDouble:
		return need(8)
	case TypeTimestamp2:
		return need(4 + fracLen(col.Meta))
	case TypeDateTime2:
		return need(5 + fracLen(col.Meta))
	case TypeTime2:
		return need(3 + fracLen(col.Meta))
	case TypeNewDecimal:
		n, err := decimalLen(int(col.Meta>>8), int(col.Meta&0xff))
		if err != nil {
			return 0, err
		}
		return need(n)
	case TypeVarchar, TypeVarString, TypeString:
		if col.Meta < 256 {
			if len(b) < 1 {
				return 0, malformed("string length missing")
			}
			return need(1 + int(b[0]))
		}
		if len(b) < 2 {
			return 0, malformed("string length missing")
		}
		return need(2 + int(binary.LittleEndian.Uint16(b)))
	case TypeEnum, TypeSet:
		if col.Meta < 1 || col.Meta > 8 {
			return 0, malformed("%s pack length %d", typeName(col.Type), col.Meta)
		}
		return need(int(col.Meta))
	case TypeBit:
		return need((col.Bits + 7) / 8)
	case TypeBlob, TypeTinyBlob, TypeMediumBlob, TypeLongBlob, TypeGeometry, TypeJSON:
		lb := int(col.Meta)
		if lb < 1 || lb > 4 {
			return 0, malformed("blob length size %d", lb)
		}
		if len(b) < lb {
			return 0, malformed("blob length missing")
		}
		var n uint64
		for i := range lb {
			n |= uint64(b[i]) << (8 * i)
		}
		if n > uint64(len(b)-lb) {
			return 0, malformed("%d-byte blob, %d bytes left", n, len(b)-lb)
		}
		return lb + int(n), nil
	}
	return 0, fmt.Errorf("column type %d (%s) is not supported", col.Type, typeName(col.Type))
}

func fracLen(fsp uint16) int { return int(fsp+1) / 2 }

func typeName(t ColumnType) string {
	switch t {
	case TypeDecimal:
		return "pre-5.0 DECIMAL"
	case TypeEnum:
		return "ENUM"
	case TypeSet:
		return "SET"
	}
	return "type " + strconv.Itoa(int(t))
}

// AppendJSON appends the JSON rendering of a value of col (raw as NextImage
// returned it):
//
//   - integers, FLOAT, DOUBLE, YEAR: numbers (UNSIGNED read as such);
//   - DECIMAL: a string with every digit (no float rounding);
//   - DATE "2006-01-02"; DATETIME and TIMESTAMP RFC 3339 in UTC with the
//     column's fractional digits (DATETIME has no zone: it is taken as
//     UTC); TIME "[-]HH:MM:SS[.ffffff]"; zero dates and timestamps: null;
//   - CHAR, VARCHAR, TEXT: strings (latin1 converted to UTF-8, invalid
//     UTF-8 replaced by U+FFFD); BINARY, VARBINARY, BLOB, GEOMETRY: base64;
//   - ENUM: the member's name, SET: the members joined by commas (their
//     numbers when the names are unknown);
//   - BIT(1): a boolean, BIT(n): an unsigned number;
//   - JSON (MySQL's binary JSON, or MariaDB's JSON text): embedded.
func AppendJSON(dst []byte, col *Column, raw []byte) ([]byte, error) {
	if n, err := valueLen(col, raw); err != nil {
		return dst, err
	} else if n != len(raw) {
		return dst, malformed("%d bytes for a %d-byte value", len(raw), n)
	}
	switch col.Type {
	case TypeNull:
		return append(dst, "null"...), nil
	case TypeTiny:
		if col.Unsigned {
			return strconv.AppendUint(dst, uint64(raw[0]), 10), nil
		}
		return strconv.AppendInt(dst, int64(int8(raw[0])), 10), nil
	case TypeShort:
		v := binary.LittleEndian.Uint16(raw)
		if col.Unsigned {
			return strconv.AppendUint(dst, uint64(v), 10), nil
		}
		return strconv.AppendInt(dst, int64(int16(v)), 10), nil
	case TypeInt24:
		v := uint32(raw[0]) | uint32(raw[1])<<8 | uint32(raw[2])<<16
		if col.Unsigned {
			return strconv.AppendUint(dst, uint64(v), 10), nil
		}
		return strconv.AppendInt(dst, int64(int32(v<<8)>>8), 10), nil
	case TypeLong:
		v := binary.LittleEndian.Uint32(raw)
		if col.Unsigned {
			return strconv.AppendUint(dst, uint64(v), 10), nil
		}
		return strconv.AppendInt(dst, int64(int32(v)), 10), nil
	case TypeLongLong:
		v := binary.LittleEndian.Uint64(raw)
		if col.Unsigned {
			return strconv.AppendUint(dst, v, 10), nil
		}
		return strconv.AppendInt(dst, int64(v), 10), nil
	case TypeFloat:
		if len(raw) == 8 {
			return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(raw)), 64), nil
		}
		return appendFloat(dst, float64(math.Float32frombits(binary.LittleEndian.Uint32(raw))), 32), nil
	case TypeDouble:
		return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(raw)), 64), nil
	case TypeYear:
		if raw[0] == 0 {
			return append(dst, '0'), nil
		}
		return strconv.AppendInt(dst, 1900+int64(raw[0]), 10), nil
	case TypeNewDecimal:
		dst = append(dst, '"')
		dst, err := AppendDecimal(dst, raw, int(col.Meta>>8), int(col.Meta&0xff))
		if err != nil {
			return dst, err
		}
		return append(dst, '"'), nil
	case TypeDate, TypeNewDate:
		v := uint32(raw[0]) | uint32(raw[1])<<8 | uint32(raw[2])<<16
		if v == 0 {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '"')
		dst = appendDate(dst, int(v>>9), int(v>>5&15), int(v&31))
		return append(dst, '"'), nil
	case TypeDateTime2:
		return appendDateTime2(dst, raw, int(col.Meta)), nil
	case TypeTimestamp2:
		sec := binary.BigEndian.Uint32(raw)
		frac := readFrac(raw[4:], int(col.Meta))
		if sec == 0 && frac == 0 {
			return append(dst, "null"...), nil
		}
		return appendUnix(dst, int64(sec), frac, int(col.Meta)), nil
	case TypeTimestamp:
		sec := binary.LittleEndian.Uint32(raw)
		if sec == 0 {
			return append(dst, "null"...), nil
		}
		return appendUnix(dst, int64(sec), 0, 0), nil
	case TypeDateTime:
		v := binary.LittleEndian.Uint64(raw)
		if v == 0 {
			return append(dst, "null"...), nil
		}
		d, t := v/1000000, v%1000000
		dst = append(dst, '"')
		dst = appendDate(dst, int(d/10000), int(d/100%100), int(d%100))
		dst = append(dst, 'T')
		dst = appendClock(dst, int(t/10000), int(t/100%100), int(t%100))
		return append(dst, 'Z', '"'), nil
	case TypeTime2:
		return appendTime2(dst, raw, int(col.Meta)), nil
	case TypeTime:
		v := int32(uint32(raw[0])|uint32(raw[1])<<8|uint32(raw[2])<<16) << 8 >> 8
		dst = append(dst, '"')
		if v < 0 {
			dst = append(dst, '-')
			v = -v
		}
		dst = appendClock(dst, int(v/10000), int(v/100%100), int(v%100))
		return append(dst, '"'), nil
	case TypeVarchar, TypeVarString, TypeString:
		n := 1
		if col.Meta >= 256 {
			n = 2
		}
		data := raw[n:]
		if col.Binary {
			if col.FixedLen > len(data) {
				padded := make([]byte, col.FixedLen)
				copy(padded, data)
				data = padded
			}
			return appendBase64(dst, data), nil
		}
		return appendText(dst, data, col.Latin1), nil
	case TypeBlob, TypeTinyBlob, TypeMediumBlob, TypeLongBlob, TypeGeometry:
		data := raw[col.Meta:]
		switch {
		case col.JSON:
			return cdc.AppendJSON(dst, data), nil
		case col.Binary || col.Type == TypeGeometry:
			return appendBase64(dst, data), nil
		}
		return appendText(dst, data, col.Latin1), nil
	case TypeJSON:
		return AppendBinaryJSON(dst, raw[col.Meta:])
	case TypeEnum:
		var idx uint64
		for i := range raw {
			idx |= uint64(raw[i]) << (8 * i)
		}
		switch {
		case idx == 0:
			return append(dst, `""`...), nil
		case col.Members != nil && idx <= uint64(len(col.Members)):
			return appendText(dst, []byte(col.Members[idx-1]), false), nil
		}
		return strconv.AppendUint(dst, idx, 10), nil
	case TypeSet:
		var bits uint64
		for i := range raw {
			bits |= uint64(raw[i]) << (8 * i)
		}
		if col.Members == nil {
			return strconv.AppendUint(dst, bits, 10), nil
		}
		dst = append(dst, '"')
		first := true
		for i, m := range col.Members {
			if i < 64 && bits&(1<<i) != 0 {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = appendEscaped(dst, []byte(m), false)
			}
		}
		return append(dst, '"'), nil
	case TypeBit:
		var v uint64
		for _, c := range raw {
			v = v<<8 | uint64(c)
		}
		if col.Bits == 1 {
			return strconv.AppendBool(dst, v != 0), nil
		}
		return strconv.AppendUint(dst, v, 10), nil
	}
	return dst, fmt.Errorf("column type %d (%s) is not supported", col.Type, typeName(col.Type))
}

// appendFloat writes floats as every change event does (cdc.AppendFloat).
func appendFloat(dst []byte, f float64, bits int) []byte {
	return cdc.AppendFloat(dst, f, bits)
}

var dig2bytes = [10]int{0, 1, 1, 2, 2, 3, 3, 4, 4, 4}

func decimalLen(prec, scale int) (int, error) {
	if prec < 1 || prec > 65 || scale > 38 || scale > prec {
		return 0, malformed("DECIMAL(%d,%d)", prec, scale)
	}
	intg := prec - scale
	return intg/9*4 + dig2bytes[intg%9] + scale/9*4 + dig2bytes[scale%9], nil
}

// AppendDecimal appends the digits of a binary DECIMAL(prec, scale) value.
func AppendDecimal(dst, raw []byte, prec, scale int) ([]byte, error) {
	size, err := decimalLen(prec, scale)
	if err != nil {
		return dst, err
	}
	if len(raw) < size {
		return dst, malformed("DECIMAL(%d,%d) needs %d bytes, got %d", prec, scale, size, len(raw))
	}
	var mask byte
	if raw[0]&0x80 == 0 {
		mask = 0xff // negative: every byte is inverted
		dst = append(dst, '-')
	}
	pos := 0
	read := func(n int) uint32 {
		var v uint32
		for i := range n {
			b := raw[pos+i] ^ mask
			if pos+i == 0 {
				b ^= 0x80
			}
			v = v<<8 | uint32(b)
		}
		pos += n
		return v
	}
	intg := prec - scale
	start := len(dst)
	leading := true // no nonzero integer digit written yet
	appendGroup := func(v uint32, digits int) {
		var buf [10]byte
		s := strconv.AppendUint(buf[:0], uint64(v), 10)
		if leading {
			if v == 0 {
				return
			}
			dst = append(dst, s...)
			leading = false
			return
		}
		for range digits - len(s) {
			dst = append(dst, '0')
		}
		dst = append(dst, s...)
	}
	if n := intg % 9; n > 0 {
		appendGroup(read(dig2bytes[n]), n)
	}
	for range intg / 9 {
		appendGroup(read(4), 9)
	}
	if len(dst) == start {
		dst = append(dst, '0')
	}
	if scale > 0 {
		dst = append(dst, '.')
		for range scale / 9 {
			v := read(4)
			var buf [10]byte
			s := strconv.AppendUint(buf[:0], uint64(v), 10)
			for range 9 - len(s) {
				dst = append(dst, '0')
			}
			dst = append(dst, s...)
		}
		if n := scale % 9; n > 0 {
			v := read(dig2bytes[n])
			var buf [10]byte
			s := strconv.AppendUint(buf[:0], uint64(v), 10)
			for range n - len(s) {
				dst = append(dst, '0')
			}
			dst = append(dst, s...)
		}
	}
	return dst, nil
}

func appendPadded(dst []byte, v, width int) []byte {
	if v < 0 {
		v = 0
	}
	switch {
	case width == 2 && v < 100:
		return append(dst, byte('0'+v/10), byte('0'+v%10))
	case width == 4 && v < 10000:
		return append(dst, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
	}
	var buf [20]byte
	s := strconv.AppendInt(buf[:0], int64(v), 10)
	for range width - len(s) {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

func appendDate(dst []byte, y, m, d int) []byte {
	dst = appendPadded(dst, y, 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, '-')
	return appendPadded(dst, d, 2)
}

func appendClock(dst []byte, h, m, s int) []byte {
	dst = appendPadded(dst, h, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, m, 2)
	dst = append(dst, ':')
	return appendPadded(dst, s, 2)
}

// appendFrac appends "." and fsp digits of micro (microseconds).
func appendFrac(dst []byte, micro int64, fsp int) []byte {
	if fsp <= 0 {
		return dst
	}
	fsp = min(fsp, 6)
	var buf [8]byte
	s := appendPadded(buf[:0], int(micro%1000000), 6)
	dst = append(dst, '.')
	return append(dst, s[:fsp]...)
}

// readFrac reads the fractional seconds of a TIME2, DATETIME2 or
// TIMESTAMP2 value as microseconds.
func readFrac(b []byte, fsp int) int64 {
	switch fracLen(uint16(fsp)) {
	case 1:
		return int64(b[0]) * 10000
	case 2:
		return int64(binary.BigEndian.Uint16(b)) * 100
	case 3:
		return int64(b[0])<<16 | int64(b[1])<<8 | int64(b[2])
	}
	return 0
}

func appendDateTime2(dst []byte, raw []byte, fsp int) []byte {
	v := int64(raw[0])<<32 | int64(raw[1])<<24 | int64(raw[2])<<16 | int64(raw[3])<<8 | int64(raw[4])
	v -= 0x8000000000
	frac := readFrac(raw[5:], fsp)
	if v == 0 && frac == 0 {
		return append(dst, "null"...)
	}
	if v < 0 {
		v = -v
	}
	ymd := v >> 17
	ym := ymd >> 5
	hms := v & (1<<17 - 1)
	dst = append(dst, '"')
	dst = appendDate(dst, int(ym/13), int(ym%13), int(ymd&31))
	dst = append(dst, 'T')
	dst = appendClock(dst, int(hms>>12), int(hms>>6&63), int(hms&63))
	dst = appendFrac(dst, frac, fsp)
	return append(dst, 'Z', '"')
}

func appendUnix(dst []byte, sec, micro int64, fsp int) []byte {
	days := sec / 86400
	rem := sec % 86400
	y, m, d := civil(days)
	dst = append(dst, '"')
	dst = appendDate(dst, y, m, d)
	dst = append(dst, 'T')
	dst = appendClock(dst, int(rem/3600), int(rem/60%60), int(rem%60))
	dst = appendFrac(dst, micro, fsp)
	return append(dst, 'Z', '"')
}

// civil converts days since 1970-01-01 to a date (proleptic Gregorian).
func civil(days int64) (y, m, d int) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	yy := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	dd := doy - (153*mp+2)/5 + 1
	mm := mp + 3
	if mp >= 10 {
		mm = mp - 9
	}
	if mm <= 2 {
		yy++
	}
	return int(yy), int(mm), int(dd)
}

func appendTime2(dst []byte, raw []byte, fsp int) []byte {
	intpart := int64(raw[0])<<16 | int64(raw[1])<<8 | int64(raw[2])
	intpart -= 0x800000
	var packed int64
	switch fracLen(uint16(fsp)) {
	case 0:
		packed = intpart << 24
	case 1:
		frac := int64(raw[3])
		if intpart < 0 && frac != 0 {
			intpart++
			frac -= 0x100
		}
		packed = intpart<<24 + frac*10000
	case 2:
		frac := int64(binary.BigEndian.Uint16(raw[3:]))
		if intpart < 0 && frac != 0 {
			intpart++
			frac -= 0x10000
		}
		packed = intpart<<24 + frac*100
	default:
		v := int64(raw[0])<<40 | int64(raw[1])<<32 | int64(raw[2])<<24 | int64(raw[3])<<16 | int64(raw[4])<<8 | int64(raw[5])
		packed = v - 0x800000000000
	}
	dst = append(dst, '"')
	if packed < 0 {
		dst = append(dst, '-')
		packed = -packed
	}
	hms := packed >> 24
	micro := packed % (1 << 24)
	dst = appendClock(dst, int(hms>>12%(1<<10)), int(hms>>6%(1<<6)), int(hms%(1<<6)))
	dst = appendFrac(dst, micro, fsp)
	return append(dst, '"')
}

func appendBase64(dst, data []byte) []byte {
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, data)
	return append(dst, '"')
}

func appendText(dst, data []byte, latin1 bool) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, data, latin1)
	return append(dst, '"')
}

// cp1252 maps the bytes 0x80-0x9f of MySQL's latin1 (Windows-1252) to
// runes; the others are Unicode's Latin-1 block.
var cp1252 = [32]rune{
	0x20ac, 0x81, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x8d, 0x017d, 0x8f,
	0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x9d, 0x017e, 0x0178,
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends data as the inside of a JSON string.
func appendEscaped(dst, data []byte, latin1 bool) []byte {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c >= 0x20:
				dst = append(dst, c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			continue
		}
		if latin1 {
			r := rune(c)
			if c < 0xa0 {
				r = cp1252[c-0x80]
			}
			dst = utf8.AppendRune(dst, r)
			i++
			continue
		}
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, data[i:i+n]...)
		}
		i += n
	}
	return dst
}
