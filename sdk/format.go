package sdk

import (
	"strconv"
	"unicode/utf8"
)

// sprintf formats like fmt.Sprintf for what logs need, without fmt (fmt
// and the reflect it brings are a fifth of a Go plugin's WebAssembly).
// Verbs: %v %s %q %d %x %X %o %O %b %t %f %F %e %E %g %G %c %U %%, with
// the flags - + # 0 space, a width and a precision (a number or *).
// Values: strings, []byte, booleans, integers, floats, errors, values with
// a String() string method, and nil. A verb that does not fit its value
// prints %!verb(value) as fmt does; any other value (a struct, a slice, a
// pointer) prints %!v(unsupported).
func sprintf(format string, args ...any) string {
	var b []byte
	n := 0 // next argument
	for i := 0; i < len(format); {
		c := format[i]
		if c != '%' {
			j := i + 1
			for j < len(format) && format[j] != '%' {
				j++
			}
			b = append(b, format[i:j]...)
			i = j
			continue
		}
		i++
		var f fmtSpec
	flags:
		for ; i < len(format); i++ {
			switch format[i] {
			case '-':
				f.minus = true
			case '+':
				f.plus = true
			case '#':
				f.sharp = true
			case '0':
				f.zero = true
			case ' ':
				f.space = true
			default:
				break flags
			}
		}
		f.width, i, n = fmtNumber(format, i, args, n)
		if i < len(format) && format[i] == '.' {
			f.prec, i, n = fmtNumber(format, i+1, args, n)
			if f.prec < 0 {
				f.prec = 0
			}
		} else {
			f.prec = -1
		}
		if i >= len(format) {
			b = append(b, "%!(NOVERB)"...)
			break
		}
		verb, size := utf8.DecodeRuneInString(format[i:])
		i += size
		if verb == '%' {
			b = append(b, '%')
			continue
		}
		if n >= len(args) {
			b = append(append(append(b, "%!"...), string(verb)...), "(MISSING)"...)
			continue
		}
		b = f.format(b, verb, args[n])
		n++
	}
	if n < len(args) {
		b = append(b, "%!(EXTRA "...)
		for i, a := range args[n:] {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = typed(b, a)
		}
		b = append(b, ')')
	}
	return string(b)
}

// fmtNumber reads a width or precision at format[i:]: digits, or * taking
// the next argument.
func fmtNumber(format string, i int, args []any, n int) (v, next, nextArg int) {
	if i < len(format) && format[i] == '*' {
		if n < len(args) {
			if x, ok := args[n].(int); ok {
				return x, i + 1, n + 1
			}
		}
		return 0, i + 1, n + 1
	}
	v = -1
	for i < len(format) && format[i] >= '0' && format[i] <= '9' {
		if v < 0 {
			v = 0
		}
		if v < 1e6 {
			v = v*10 + int(format[i]-'0')
		}
		i++
	}
	if v < 0 {
		v = 0
	}
	return v, i, n
}

type fmtSpec struct {
	minus, plus, sharp, zero, space bool
	width, prec                     int
}

func (f *fmtSpec) format(b []byte, verb rune, arg any) []byte {
	start := len(b)
	b, numeric := f.value(b, verb, arg)
	if w := len(b) - start; f.width > w {
		pad := f.width - w
		switch {
		case f.minus:
			for range pad {
				b = append(b, ' ')
			}
		case f.zero && numeric:
			// zeros after the sign
			at := start
			if at < len(b) && (b[at] == '-' || b[at] == '+' || b[at] == ' ') {
				at++
			}
			b = insert(b, at, '0', pad)
		default:
			b = insert(b, start, ' ', pad)
		}
	}
	return b
}

func insert(b []byte, at int, c byte, n int) []byte {
	for range n {
		b = append(b, 0)
	}
	copy(b[at+n:], b[at:len(b)-n])
	for i := at; i < at+n; i++ {
		b[i] = c
	}
	return b
}

// value appends arg formatted by verb and reports whether it is a number
// (zero padding applies).
func (f *fmtSpec) value(b []byte, verb rune, arg any) ([]byte, bool) {
	n := len(b)
	out, numeric, ok := f.known(b, verb, arg)
	if ok {
		return out, numeric
	}
	return f.bad(out[:n], verb, arg), false
}

// known formats the values the formatter knows; ok is false for a verb
// that does not fit the value. A value it does not know is written as
// %!v(unsupported).
func (f *fmtSpec) known(b []byte, verb rune, arg any) (out []byte, numeric, ok bool) {
	switch x := arg.(type) {
	case nil:
		if verb == 'v' || verb == 's' {
			return append(b, "<nil>"...), false, true
		}
	case string:
		return f.str(b, verb, x)
	case []byte:
		return f.str(b, verb, string(x))
	case error:
		return f.str(b, verb, x.Error())
	case interface{ String() string }:
		return f.str(b, verb, x.String())
	case bool:
		if verb == 'v' || verb == 't' {
			return strconv.AppendBool(b, x), false, true
		}
	case int:
		return f.integer(b, verb, int64(x), false)
	case int8:
		return f.integer(b, verb, int64(x), false)
	case int16:
		return f.integer(b, verb, int64(x), false)
	case int32:
		return f.integer(b, verb, int64(x), false)
	case int64:
		return f.integer(b, verb, x, false)
	case uint:
		return f.integer(b, verb, int64(x), true)
	case uint8:
		return f.integer(b, verb, int64(x), true)
	case uint16:
		return f.integer(b, verb, int64(x), true)
	case uint32:
		return f.integer(b, verb, int64(x), true)
	case uint64:
		return f.integer(b, verb, int64(x), true)
	case uintptr:
		return f.integer(b, verb, int64(x), true)
	case float32:
		return f.float(b, verb, float64(x), 32)
	case float64:
		return f.float(b, verb, x, 64)
	default:
		return append(b, "%!v(unsupported)"...), false, true
	}
	return b, false, false
}

// bad writes fmt's %!verb(type=value) for a verb that does not fit its
// value.
func (f *fmtSpec) bad(b []byte, verb rune, arg any) []byte {
	b = append(append(append(b, "%!"...), string(verb)...), '(')
	b = typed(b, arg)
	return append(b, ')')
}

// typed writes type=value as fmt does in its complaints; the type is
// named for basic types only (naming others needs reflect).
func typed(b []byte, arg any) []byte {
	name := ""
	switch arg.(type) {
	case string:
		name = "string"
	case []byte:
		name = "[]uint8"
	case bool:
		name = "bool"
	case int:
		name = "int"
	case int8:
		name = "int8"
	case int16:
		name = "int16"
	case int32:
		name = "int32"
	case int64:
		name = "int64"
	case uint:
		name = "uint"
	case uint8:
		name = "uint8"
	case uint16:
		name = "uint16"
	case uint32:
		name = "uint32"
	case uint64:
		name = "uint64"
	case uintptr:
		name = "uintptr"
	case float32:
		name = "float32"
	case float64:
		name = "float64"
	}
	if name != "" {
		b = append(append(b, name...), '=')
	}
	b, _ = (&fmtSpec{prec: -1}).value(b, 'v', arg)
	return b
}

func (f *fmtSpec) str(b []byte, verb rune, s string) ([]byte, bool, bool) {
	if f.prec >= 0 && verb != 'x' && verb != 'X' {
		// precision truncates to runes
		n := 0
		for i := range s {
			if n == f.prec {
				s = s[:i]
				break
			}
			n++
		}
	}
	switch verb {
	case 'v', 's':
		return append(b, s...), false, true
	case 'q':
		if f.sharp && strconv.CanBackquote(s) {
			return append(append(append(b, '`'), s...), '`'), false, true
		}
		if f.plus {
			return strconv.AppendQuoteToASCII(b, s), false, true
		}
		return strconv.AppendQuote(b, s), false, true
	case 'x', 'X':
		const lower, upper = "0123456789abcdef", "0123456789ABCDEF"
		digits := lower
		if verb == 'X' {
			digits = upper
		}
		for i := 0; i < len(s); i++ {
			if f.space && i > 0 {
				b = append(b, ' ')
			}
			b = append(b, digits[s[i]>>4], digits[s[i]&0xf])
		}
		return b, false, true
	}
	return b, false, false
}

func (f *fmtSpec) integer(b []byte, verb rune, v int64, unsigned bool) ([]byte, bool, bool) {
	base := 10
	switch verb {
	case 'v', 'd':
	case 'x', 'X':
		base = 16
	case 'o', 'O':
		base = 8
	case 'b':
		base = 2
	case 'c':
		return utf8.AppendRune(b, rune(v)), false, true
	case 'q':
		return strconv.AppendQuoteRune(b, rune(v)), false, true
	case 'U':
		s := strconv.FormatUint(uint64(v), 16)
		for len(s) < 4 {
			s = "0" + s
		}
		return append(append(b, "U+"...), upperHex(s)...), false, true
	case 'e', 'E', 'f', 'F', 'g', 'G':
		if unsigned {
			return f.float(b, verb, float64(uint64(v)), 64)
		}
		return f.float(b, verb, float64(v), 64)
	default:
		if unsigned {
			return b, false, false
		}
		return b, false, false
	}
	neg := !unsigned && v < 0
	var digits string
	if unsigned {
		digits = strconv.FormatUint(uint64(v), base)
	} else if neg {
		digits = strconv.FormatUint(uint64(-v), base) // -MinInt64 wraps to itself, which FormatUint reads right
	} else {
		digits = strconv.FormatInt(v, base)
	}
	if verb == 'X' {
		digits = upperHex(digits)
	}
	for f.prec > len(digits) {
		digits = "0" + digits
	}
	switch {
	case neg:
		b = append(b, '-')
	case f.plus:
		b = append(b, '+')
	case f.space:
		b = append(b, ' ')
	}
	if f.sharp {
		switch verb {
		case 'x':
			b = append(b, "0x"...)
		case 'X':
			b = append(b, "0X"...)
		case 'o':
			b = append(b, '0')
		case 'b':
			b = append(b, "0b"...)
		}
	}
	if verb == 'O' {
		b = append(b, "0o"...)
	}
	return append(b, digits...), true, true
}

func upperHex(s string) string {
	u := []byte(s)
	for i, c := range u {
		if c >= 'a' && c <= 'f' {
			u[i] = c - 'a' + 'A'
		}
	}
	return string(u)
}

func (f *fmtSpec) float(b []byte, verb rune, v float64, bits int) ([]byte, bool, bool) {
	prec := f.prec
	switch verb {
	case 'v':
		verb = 'g'
	case 'F':
		verb = 'f'
	case 'e', 'E', 'f', 'g', 'G':
	default:
		return b, false, false
	}
	if prec < 0 && (verb == 'e' || verb == 'E' || verb == 'f') {
		prec = 6
	}
	if f.plus && v >= 0 {
		b = append(b, '+')
	} else if f.space && v >= 0 {
		b = append(b, ' ')
	}
	return strconv.AppendFloat(b, v, byte(verb), prec, bits), true, true
}
