package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/component"
)

// Diagnostic is one problem found in a task file, located as precisely as
// the file allows.
type Diagnostic struct {
	File    string
	Line    int // 1-based; 0 when unknown
	Col     int // 1-based; 0 when unknown
	Path    string
	Msg     string
	Snippet string // the source line and a caret line under the culprit
}

// Error renders `FILE:LINE:COL: PATH: message`.
func (d Diagnostic) Error() string {
	var b strings.Builder
	b.WriteString(d.File)
	if d.Line > 0 {
		fmt.Fprintf(&b, ":%d", d.Line)
		if d.Col > 0 {
			fmt.Fprintf(&b, ":%d", d.Col)
		}
	}
	b.WriteString(": ")
	if d.Path != "" {
		b.WriteString(d.Path)
		b.WriteString(": ")
	}
	b.WriteString(d.Msg)
	return b.String()
}

// Diagnostics is every problem found while loading; it is an error.
type Diagnostics []Diagnostic

// Error renders one problem per line with its snippet.
func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Error())
		if d.Snippet != "" {
			b.WriteByte('\n')
			b.WriteString(d.Snippet)
		}
	}
	return b.String()
}

// diagnose locates a component.Problem in the file.
func (ix *index) diagnose(file string, pr component.Problem) Diagnostic {
	d := Diagnostic{File: file, Path: component.FormatPath(pr.Path), Msg: pr.Msg}
	if ix == nil {
		return d
	}
	l, ok, depth := ix.lookup(pr.Path)
	if !ok {
		return d
	}
	s := l.val
	if pr.AtKey || depth < len(pr.Path) || s.len == 0 {
		// An unknown or missing key, or a path below what the file spells
		// out (a key inside a value): point at the closest key.
		s = l.key
	}
	if pr.Offset >= 0 && !pr.AtKey && depth == len(pr.Path) && s.len > 0 {
		if off, ok := ix.offsetInString(s, pr.Offset); ok {
			s = span{off: off, len: 1}
		}
	}
	d.Line, d.Col = ix.lineCol(s.off)
	if !pr.Sensitive {
		d.Snippet = ix.snippet(s)
	}
	return d
}

// offsetInString maps a byte offset inside a decoded string value to a file
// offset. An offset inside the bytes an escape sequence decodes to points
// at the escape; a line-ending backslash (multi-line basic strings)
// decodes to nothing.
func (ix *index) offsetInString(s span, off int) (int, bool) {
	raw := ix.data[s.off : s.off+s.len]
	q := 0
	switch {
	case strings.HasPrefix(string(raw), `"""`), strings.HasPrefix(string(raw), `'''`):
		q = 3
		// A newline right after the opening delimiter is trimmed by TOML.
		if len(raw) > 3 && raw[3] == '\n' {
			q = 4
		} else if len(raw) > 4 && raw[3] == '\r' && raw[4] == '\n' {
			q = 5
		}
	case strings.HasPrefix(string(raw), `"`), strings.HasPrefix(string(raw), `'`):
		q = 1
	default:
		return 0, false
	}
	pos, end := s.off+q, s.off+s.len
	basic := raw[0] == '"'
	for i := 0; i < off && pos < end; {
		if !basic || ix.data[pos] != '\\' || pos+1 >= end {
			pos++
			i++
			continue
		}
		rawLen, decLen := escapeLen(ix.data[pos:end])
		if i+decLen > off {
			break // off is inside what this escape decodes to
		}
		pos += rawLen
		i += decLen
	}
	return min(pos, end), true
}

// escapeLen returns the length in the file of the escape sequence e starts
// with (e[0] is the backslash) and the number of bytes it decodes to, per
// TOML: \uXXXX and \UXXXXXXXX are a code point written in UTF-8 (1 to 4
// bytes; surrogates are not valid TOML, the parser rejects them), \xHH
// likewise (TOML 1.1), a line-ending backslash drops the whitespace and
// newlines after it, and the other escapes are one byte.
func escapeLen(e []byte) (rawLen, decLen int) {
	hex := func(n int) (int, int) {
		if len(e) < 2+n {
			return len(e), 1
		}
		v, err := strconv.ParseUint(string(e[2:2+n]), 16, 32)
		if err != nil || !utf8.ValidRune(rune(v)) {
			return 2 + n, 1
		}
		return 2 + n, utf8.RuneLen(rune(v))
	}
	switch e[1] {
	case 'x':
		return hex(2)
	case 'u':
		return hex(4)
	case 'U':
		return hex(8)
	case ' ', '\t', '\r', '\n':
		j := 1
		for j < len(e) && (e[j] == ' ' || e[j] == '\t' || e[j] == '\r' || e[j] == '\n') {
			j++
		}
		return j, 0
	}
	return 2, 1
}

// snippet renders the line holding s with a caret line under s.
func (ix *index) snippet(s span) string {
	line, _ := ix.lineCol(s.off)
	start := ix.lines[line-1]
	end := len(ix.data)
	if line < len(ix.lines) {
		end = ix.lines[line] - 1
	}
	text := strings.TrimRight(string(ix.data[start:end]), "\r")
	prefix := utf8.RuneCountInString(string(ix.data[start:s.off]))
	width := 1
	if e := s.off + s.len; e > s.off {
		if e > end {
			e = end
		}
		if e > s.off {
			width = utf8.RuneCountInString(string(ix.data[s.off:e]))
		}
	}
	num := fmt.Sprintf("%5d", line)
	pad := strings.Repeat(" ", len(num))
	// Tabs keep their width in the caret line so the caret lines up.
	lead := []rune(text)
	var caretPad strings.Builder
	for i := 0; i < prefix && i < len(lead); i++ {
		if lead[i] == '\t' {
			caretPad.WriteByte('\t')
		} else {
			caretPad.WriteByte(' ')
		}
	}
	return fmt.Sprintf("%s | %s\n%s | %s%s", num, text, pad, caretPad.String(), strings.Repeat("^", max(width, 1)))
}
