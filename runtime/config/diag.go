package config

import (
	"fmt"
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
// offset. Escapes in basic strings make the mapping approximate; literal
// strings map exactly.
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
	pos := s.off + q
	basic := raw[0] == '"'
	for i := 0; i < off && pos < s.off+s.len; i++ {
		if basic && ix.data[pos] == '\\' && pos+1 < len(ix.data) {
			// One escape sequence decodes to fewer bytes; step over it.
			switch ix.data[pos+1] {
			case 'u':
				pos += 6
				i += 2
			case 'U':
				pos += 10
				i += 3
			default:
				pos += 2
			}
			continue
		}
		pos++
	}
	return pos, true
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
