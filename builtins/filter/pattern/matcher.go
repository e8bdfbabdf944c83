package pattern

import (
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// opKind is what one matcher of a leaf array does.
type opKind uint8

const (
	mString opKind = iota // exact string literal
	mNumber               // number literal, compared by value
	mTrue
	mFalse
	mNull
	mPrefix
	mPrefixFold
	mSuffix
	mSuffixFold
	mContains
	mEqualFold
	mWildcard
	mAnythingBut
	mNumeric
	mCIDR
	mExists
	mNotExists
)

// matcher is one element of a leaf array, compiled.
type matcher struct {
	op    opKind
	s     string // string operand
	runes int    // rune count of s, for the case-folding prefix/suffix
	f     float64
	wc    wildcard
	num   []numCond
	cidr  netip.Prefix
	but   *exclusion
	canon string // identity, so equal leaf arrays compile to one leafSet
}

// Numeric comparison operators.
const (
	numEQ uint8 = iota
	numNE
	numLT
	numLE
	numGT
	numGE
)

var numOps = map[string]uint8{"=": numEQ, "!=": numNE, "<": numLT, "<=": numLE, ">": numGT, ">=": numGE}

type numCond struct {
	op uint8
	f  float64
}

func (c numCond) holds(f float64) bool {
	switch c.op {
	case numEQ:
		return f == c.f
	case numNE:
		return f != c.f
	case numLT:
		return f < c.f
	case numLE:
		return f <= c.f
	case numGT:
		return f > c.f
	default:
		return f >= c.f
	}
}

// exclusion is the operand of anything-but: either typed values, or one
// string-pattern form (prefix, suffix, equals-ignore-case, wildcard) with
// one or more operands.
type exclusion struct {
	form            opKind // mString for the value form, else mPrefix, mSuffix, mEqualFold, mWildcard
	strs            []string
	nums            []float64
	isTrue, isFalse bool
	isNull          bool
	wcs             []wildcard
}

// allows reports whether anything-but lets the leaf through.
func (x *exclusion) allows(sc *scalar, st *state) bool {
	switch sc.kind {
	case jsonscan.String:
		s, ok := sc.text(st)
		if !ok {
			return false
		}
		switch x.form {
		case mString:
			for _, e := range x.strs {
				if string(s) == e {
					return false
				}
			}
		case mPrefix:
			for _, e := range x.strs {
				if len(s) >= len(e) && string(s[:len(e)]) == e {
					return false
				}
			}
		case mSuffix:
			for _, e := range x.strs {
				if len(s) >= len(e) && string(s[len(s)-len(e):]) == e {
					return false
				}
			}
		case mEqualFold:
			for _, e := range x.strs {
				if strings.EqualFold(bstr(s), e) {
					return false
				}
			}
		case mWildcard:
			for i := range x.wcs {
				if x.wcs[i].match(bstr(s)) {
					return false
				}
			}
		}
		return true
	case jsonscan.Number:
		f, ok := sc.number()
		if !ok {
			return false
		}
		if x.form == mString {
			for _, e := range x.nums {
				if f == e {
					return false
				}
			}
		}
		return true
	case jsonscan.True:
		return !x.isTrue
	case jsonscan.False:
		return !x.isFalse
	case jsonscan.Null:
		return !x.isNull
	}
	return false
}

// wildcard is a compiled wildcard operand: the literal parts between the
// unescaped stars (len(parts) = stars + 1).
type wildcard struct {
	parts []string
}

func (w *wildcard) match(s string) bool {
	p := w.parts
	if len(p) == 1 {
		return s == p[0]
	}
	first, last := p[0], p[len(p)-1]
	if len(s) < len(first)+len(last) || s[:len(first)] != first || s[len(s)-len(last):] != last {
		return false
	}
	s = s[len(first) : len(s)-len(last)]
	for _, part := range p[1 : len(p)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return true
}

// parseWildcard compiles a wildcard operand; the error text explains the
// first syntax problem.
func parseWildcard(s string) (wildcard, string) {
	var parts []string
	var cur strings.Builder
	prevStar := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*':
			if prevStar {
				return wildcard{}, "consecutive '*' at byte " + strconv.Itoa(i) + " of " + strconv.Quote(s) + "; one '*' already matches any run of characters"
			}
			parts = append(parts, cur.String())
			cur.Reset()
			prevStar = true
			continue
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return wildcard{}, "backslash at byte " + strconv.Itoa(i) + " of " + strconv.Quote(s) + " must be followed by '*' or '\\'"
			}
			cur.WriteByte(s[i+1])
			i++
		default:
			cur.WriteByte(c)
		}
		prevStar = false
	}
	parts = append(parts, cur.String())
	return wildcard{parts: parts}, ""
}

// parseCIDR accepts an IPv4 or IPv6 block, or a bare address (a /32 or
// /128 block). Host bits after the prefix are ignored.
func parseCIDR(s string) (netip.Prefix, string) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, "an address zone is not allowed in " + strconv.Quote(s)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, strconv.Quote(s) + " is not an IPv4 or IPv6 block (a.b.c.d/n with n <= 32, or x:y::z/n with n <= 128)"
		}
		return p.Masked(), ""
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, strconv.Quote(s) + " is not an IPv4 or IPv6 address or block"
	}
	return netip.PrefixFrom(a, a.BitLen()), ""
}

// scalar is one event leaf (string, number, boolean, null) under test. Its
// decoded string is set up front by newScalar, its number parsed on first
// use.
type scalar struct {
	kind   jsonscan.Kind
	tok    []byte
	str    []byte // decoded content of a string leaf
	strOK  bool
	f      float64
	fState int8
}

func (sc *scalar) text(st *state) ([]byte, bool) {
	return sc.str, sc.strOK
}

// number parses the leaf as binary64; a number outside its range is
// unusable (matches nothing but exists).
func (sc *scalar) number() (float64, bool) {
	if sc.kind != jsonscan.Number {
		return 0, false
	}
	if sc.fState == 0 {
		f, ok := parseFloat(sc.tok)
		sc.f = f
		sc.fState = 1
		if !ok {
			sc.fState = -1
		}
	}
	return sc.f, sc.fState == 1
}

// bstr views b as a string without copying; the string must not outlive b.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// match reports whether the matcher accepts the leaf.
func (m *matcher) match(sc *scalar, st *state) bool {
	switch m.op {
	case mString:
		if sc.kind != jsonscan.String {
			return false
		}
		s, ok := sc.text(st)
		return ok && string(s) == m.s
	case mNumber:
		f, ok := sc.number()
		return ok && f == m.f
	case mTrue:
		return sc.kind == jsonscan.True
	case mFalse:
		return sc.kind == jsonscan.False
	case mNull:
		return sc.kind == jsonscan.Null
	case mExists:
		return true
	case mNotExists:
		return false
	case mAnythingBut:
		return m.but.allows(sc, st)
	case mNumeric:
		f, ok := sc.number()
		if !ok {
			return false
		}
		for _, c := range m.num {
			if !c.holds(f) {
				return false
			}
		}
		return true
	}
	s, ok := sc.text(st)
	if !ok {
		return false
	}
	switch m.op {
	case mPrefix:
		return len(s) >= len(m.s) && string(s[:len(m.s)]) == m.s
	case mSuffix:
		return len(s) >= len(m.s) && string(s[len(s)-len(m.s):]) == m.s
	case mPrefixFold:
		n := 0
		for r := 0; r < m.runes; r++ {
			if n >= len(s) {
				return false
			}
			_, w := utf8.DecodeRune(s[n:])
			n += w
		}
		return strings.EqualFold(bstr(s[:n]), m.s)
	case mSuffixFold:
		n := len(s)
		for r := 0; r < m.runes; r++ {
			if n <= 0 {
				return false
			}
			_, w := utf8.DecodeLastRune(s[:n])
			n -= w
		}
		return strings.EqualFold(bstr(s[n:]), m.s)
	case mContains:
		return strings.Contains(bstr(s), m.s)
	case mEqualFold:
		return strings.EqualFold(bstr(s), m.s)
	case mWildcard:
		return m.wc.match(bstr(s))
	case mCIDR:
		a, ok := parseAddr(s)
		return ok && m.cidr.Contains(a)
	}
	return false
}

// parseAddr parses an event string as an IP address. Dotted IPv4, the
// common case, is parsed here without allocating; anything else goes
// through netip (one copy of the string). A zone never matches a block.
func parseAddr(s []byte) (netip.Addr, bool) {
	var ip [4]byte
	n, octet, digits := 0, 0, 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if digits == 0 || n == 4 {
				return parseAddrSlow(s)
			}
			ip[n] = byte(octet)
			n, octet, digits = n+1, 0, 0
			continue
		}
		c := s[i]
		if c < '0' || c > '9' || (digits == 1 && octet == 0) {
			return parseAddrSlow(s)
		}
		octet = octet*10 + int(c-'0')
		digits++
		if octet > 255 {
			return parseAddrSlow(s)
		}
	}
	if n != 4 {
		return parseAddrSlow(s)
	}
	return netip.AddrFrom4(ip), true
}

func parseAddrSlow(s []byte) (netip.Addr, bool) {
	for _, c := range s {
		if c == '%' {
			return netip.Addr{}, false
		}
	}
	var a netip.Addr
	if a.UnmarshalText(s) != nil || !a.IsValid() {
		return netip.Addr{}, false
	}
	return a, true
}

// pow10 holds the powers of ten that binary64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// parseFloat parses a JSON number token. Plain integers and decimals of at
// most 15 significant digits, the usual event numbers, take the exact fast
// path (an exact integer divided by an exact power of ten rounds
// correctly); anything else goes to strconv.
func parseFloat(tok []byte) (float64, bool) {
	i, neg := 0, false
	if len(tok) > 0 && tok[0] == '-' {
		i, neg = 1, true
	}
	var mant uint64
	digits, frac := 0, -1
	for ; i < len(tok); i++ {
		c := tok[i]
		switch {
		case c >= '0' && c <= '9':
			if digits > 15 {
				return jsonscan.Float(tok)
			}
			mant = mant*10 + uint64(c-'0')
			if mant != 0 {
				digits++ // significant digits: leading zeros do not count
			}
			if frac >= 0 {
				frac++
			}
		case c == '.' && frac < 0:
			frac = 0
		default: // an exponent
			return jsonscan.Float(tok)
		}
	}
	if digits > 15 || frac > 22 {
		return jsonscan.Float(tok)
	}
	f := float64(mant)
	if frac > 0 {
		f /= pow10[frac]
	}
	if neg {
		f = -f
	}
	return f, true
}
