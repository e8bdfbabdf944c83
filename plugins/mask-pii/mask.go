package main

import (
	"errors"
	"strconv"
	"strings"
)

// Masker finds and masks PII in text. The zero value masks nothing.
type Masker struct {
	email, phone, card bool
	keep               int
	char               byte
}

// NewMasker checks the options and returns a Masker.
func NewMasker(types []string, keep int, char string) (Masker, error) {
	m := Masker{keep: keep}
	if len(types) == 0 {
		return m, errors.New("types: list at least one of email, phone, card")
	}
	for _, t := range types {
		switch t {
		case "email":
			m.email = true
		case "phone":
			m.phone = true
		case "card":
			m.card = true
		default:
			return m, errors.New("types: " + strconv.Quote(t) + " is not one of email, phone, card")
		}
	}
	if keep < 0 || keep > 8 {
		return m, errors.New("keep_last: " + strconv.Itoa(keep) + " is out of range 0..8")
	}
	if len(char) != 1 || char[0] < 0x21 || char[0] > 0x7e || char[0] == '"' || char[0] == '\\' {
		return m, errors.New("mask_char: " + strconv.Quote(char) + " must be one printable ASCII character other than a quote or backslash")
	}
	m.char = char[0]
	return m, nil
}

// Needed reports whether MaskJSON would change the raw JSON value v. It
// is a cheap pre-check so that records without PII pass without a copy.
func (m Masker) Needed(v []byte) bool {
	found := false
	m.eachString(v, func(s []byte) bool {
		found = m.maskText(s, false) > 0
		return !found
	})
	return found
}

// MaskJSON masks, in place, the PII found in the string literals of the
// raw JSON value v (a string, or an array or object whose strings are
// scanned; keys and escape sequences are left alone). Masking replaces
// only ASCII letters, digits and the characters . _ % + - of e-mail
// addresses, so v stays valid JSON of the same length. It returns the
// number of masked items.
func (m Masker) MaskJSON(v []byte) int {
	n := 0
	m.eachString(v, func(s []byte) bool {
		n += m.maskText(s, true)
		return true
	})
	return n
}

// MaskNumber returns an integer JSON number that is a phone or card number
// as a masked JSON string.
func (m Masker) MaskNumber(v []byte) ([]byte, bool) {
	for _, c := range v {
		if c < '0' || c > '9' {
			return nil, false
		}
	}
	q := make([]byte, 0, len(v)+2)
	q = append(append(append(q, '"'), v...), '"')
	if m.maskText(q[1:len(q)-1], true) == 0 {
		return nil, false
	}
	return q, true
}

// eachString calls fn with the contents of every string literal of v that
// is not an object key, split at escape sequences (which masking must
// not touch), until fn returns false.
func (m Masker) eachString(v []byte, fn func(s []byte) bool) {
	for i := 0; i < len(v); i++ {
		if v[i] != '"' {
			continue
		}
		j := i + 1
		seg := j
		for j < len(v) && v[j] != '"' {
			if v[j] == '\\' {
				if seg < j && !fn(v[seg:j]) {
					return
				}
				if j+1 < len(v) && v[j+1] == 'u' {
					j += 6
				} else {
					j += 2
				}
				seg = j
				continue
			}
			j++
		}
		if j > len(v) {
			return
		}
		end := j
		// A key is followed by a colon.
		k := j + 1
		for k < len(v) && (v[k] == ' ' || v[k] == '\n' || v[k] == '\t' || v[k] == '\r') {
			k++
		}
		isKey := k < len(v) && v[k] == ':'
		if !isKey && seg < end && !fn(v[seg:end]) {
			return
		}
		i = j
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return isDigit(c) || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

func isLocal(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomain(c byte) bool { return isAlnum(c) || c == '.' || c == '-' }

func isSep(c byte) bool { return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' }

// maskText finds PII in s and, when write is set, masks it in place. It
// returns the number of items found.
func (m Masker) maskText(s []byte, write bool) int {
	n := 0
	var emails [8][2]int
	ne := 0
	if m.email {
		for i := 0; i < len(s); i++ {
			if s[i] != '@' {
				continue
			}
			l := i
			for l > 0 && isLocal(s[l-1]) {
				l--
			}
			d := i + 1
			for d < len(s) && isDomain(s[d]) {
				d++
			}
			for d > i+1 && (s[d-1] == '.' || s[d-1] == '-') {
				d--
			}
			dom := s[i+1 : d]
			dot := strings.LastIndexByte(string(dom), '.')
			if l == i || dot <= 0 || dot == len(dom)-1 {
				continue
			}
			n++
			if write {
				// Keep the first character of the local part (unless it is
				// all there is) and the domain.
				from := l + 1
				if i-l == 1 {
					from = l
				}
				for k := from; k < i; k++ {
					s[k] = m.char
				}
			}
			if ne < len(emails) {
				emails[ne] = [2]int{l, d}
				ne++
			}
			i = d - 1
		}
	}
	if !m.phone && !m.card {
		return n
	}
	inEmail := func(i int) int {
		for _, e := range emails[:ne] {
			if i >= e[0] && i < e[1] {
				return e[1]
			}
		}
		return -1
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		start := isDigit(c) || ((c == '+' || c == '(') && i+1 < len(s) && isDigit(s[i+1]))
		if !start || (i > 0 && (isAlnum(s[i-1]) || s[i-1] == '+')) {
			continue
		}
		if e := inEmail(i); e >= 0 {
			i = e - 1
			continue
		}
		// The group: digits and single or double separators, ending on a
		// digit. A card or phone number may be followed in it by other
		// digits (an expiry date, a count, a second number): each digit
		// run that ends the group's first 19 digits ends a candidate, and
		// the longest candidate that is a card or phone number is masked.
		// Without one, the search starts again at the group's next run.
		var cands [20][2]int // index after a digit run, digits up to it
		nc, digits, seps, firstEnd := 0, 0, 0, -1
		j := i
		for ; j < len(s); j++ {
			if isDigit(s[j]) {
				digits++
				seps = 0
				if j+1 < len(s) && isDigit(s[j+1]) {
					continue
				}
				if firstEnd < 0 {
					firstEnd = j + 1
				}
				if digits > 19 {
					break // no card or phone is longer
				}
				cands[nc] = [2]int{j + 1, digits}
				nc++
				continue
			}
			if j == i || (isSep(s[j]) && seps < 2) {
				if j != i {
					seps++
				}
				continue
			}
			break
		}
		if firstEnd < 0 {
			continue // a '+' or '(' followed by a digit always has a run
		}
		end, nd, kind := 0, 0, ""
		for c := nc - 1; c >= 0 && kind == ""; c-- {
			end, nd = cands[c][0], cands[c][1]
			if end < len(s) && isAlnum(s[end]) {
				continue // part of a longer word
			}
			g := s[i:end]
			switch {
			case m.card && nd >= 13 && nd <= 19 && luhn(g):
				kind = "card"
			case m.phone && nd >= 7 && nd <= 15 && !dateLike(g):
				kind = "phone"
			}
		}
		if kind == "" {
			if dateLike(s[i:j]) {
				i += 9 // past the date
			} else {
				i = firstEnd - 1 // the next run
			}
			continue
		}
		n++
		if write {
			toMask := nd - m.keep
			for k := i; k < end && toMask > 0; k++ {
				if isDigit(s[k]) {
					s[k] = m.char
					toMask--
				}
			}
		}
		i = end - 1
	}
	return n
}

// luhn checks the digits of g with the Luhn algorithm of card numbers.
func luhn(g []byte) bool {
	sum, double := 0, false
	for k := len(g) - 1; k >= 0; k-- {
		if !isDigit(g[k]) {
			continue
		}
		d := int(g[k] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// dateLike reports a group that starts as a date, 2026-01-31 or
// 2026.01.31, which is not a phone number.
func dateLike(g []byte) bool {
	if len(g) < 10 {
		return false
	}
	for _, k := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if !isDigit(g[k]) {
			return false
		}
	}
	return (g[4] == '-' || g[4] == '.' || g[4] == '/') && g[7] == g[4]
}
