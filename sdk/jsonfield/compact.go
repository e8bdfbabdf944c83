package jsonfield

// Compact appends v to dst without the whitespace between tokens, checking
// on the way that v is one valid JSON value (RFC 8259's grammar: strings
// without control characters and with valid escapes, numbers without
// leading zeros, nesting at most 1000 deep; like encoding/json, bytes that
// are not UTF-8 are let through). On invalid JSON it returns dst unchanged
// and ErrSyntax.
//
// Reading fields with Get and friends assumes valid input; Compact is the
// check for input that is not known to be valid (a config value, a
// lookup table), and it normalises values that are compared or spliced
// into events as bytes.
func Compact(dst, v []byte) ([]byte, error) {
	c := compactor{in: v, out: dst}
	n := len(dst)
	c.i = skipWS(v, 0)
	if !c.value(0) {
		return dst[:n], ErrSyntax
	}
	if skipWS(v, c.i) != len(v) {
		return dst[:n], ErrSyntax
	}
	return c.out, nil
}

// Valid reports whether v is one valid JSON value.
func Valid(v []byte) bool {
	var buf [0]byte
	c := compactor{in: v, out: buf[:0], discard: true}
	c.i = skipWS(v, 0)
	return c.value(0) && skipWS(v, c.i) == len(v)
}

type compactor struct {
	in      []byte
	i       int
	out     []byte
	discard bool // validate only
}

const maxDepth = 1000

func (c *compactor) emit(b []byte) {
	if !c.discard {
		c.out = append(c.out, b...)
	}
}

// value reads the value at c.i (no leading whitespace) and leaves c.i
// after it.
func (c *compactor) value(depth int) bool {
	if c.i >= len(c.in) || depth >= maxDepth {
		return false
	}
	switch b := c.in[c.i]; {
	case b == '{' || b == '[':
		return c.container(depth, b)
	case b == '"':
		return c.str()
	case b == 't':
		return c.literal("true")
	case b == 'f':
		return c.literal("false")
	case b == 'n':
		return c.literal("null")
	case b == '-' || (b >= '0' && b <= '9'):
		return c.number()
	}
	return false
}

func (c *compactor) container(depth int, open byte) bool {
	close := byte(']')
	if open == '{' {
		close = '}'
	}
	c.emit(c.in[c.i : c.i+1])
	c.i = skipWS(c.in, c.i+1)
	if c.i < len(c.in) && c.in[c.i] == close {
		c.emit(c.in[c.i : c.i+1])
		c.i++
		return true
	}
	for {
		if open == '{' {
			if c.i >= len(c.in) || c.in[c.i] != '"' || !c.str() {
				return false
			}
			c.i = skipWS(c.in, c.i)
			if c.i >= len(c.in) || c.in[c.i] != ':' {
				return false
			}
			c.emit(c.in[c.i : c.i+1])
			c.i = skipWS(c.in, c.i+1)
		}
		if !c.value(depth + 1) {
			return false
		}
		c.i = skipWS(c.in, c.i)
		if c.i >= len(c.in) {
			return false
		}
		switch c.in[c.i] {
		case ',':
			c.emit(c.in[c.i : c.i+1])
			c.i = skipWS(c.in, c.i+1)
		case close:
			c.emit(c.in[c.i : c.i+1])
			c.i++
			return true
		default:
			return false
		}
	}
}

func (c *compactor) str() bool {
	s := c.i
	i := s + 1
	for i < len(c.in) {
		switch b := c.in[i]; {
		case b == '"':
			c.emit(c.in[s : i+1])
			c.i = i + 1
			return true
		case b == '\\':
			if i+1 >= len(c.in) {
				return false
			}
			switch c.in[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if _, n := hex4(c.in, i+2); n < 0 {
					return false
				}
				i += 6
			default:
				return false
			}
		case b < 0x20:
			return false
		default:
			i++
		}
	}
	return false
}

func (c *compactor) literal(lit string) bool {
	if len(c.in)-c.i < len(lit) || string(c.in[c.i:c.i+len(lit)]) != lit {
		return false
	}
	c.emit(c.in[c.i : c.i+len(lit)])
	c.i += len(lit)
	return true
}

// number reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (c *compactor) number() bool {
	in, i := c.in, c.i
	s := i
	if in[i] == '-' {
		i++
	}
	digits := func() bool {
		d := i
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
		}
		return i > d
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case !digits():
		return false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	c.emit(in[s:i])
	c.i = i
	return true
}
