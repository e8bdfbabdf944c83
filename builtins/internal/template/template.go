// Package template compiles and renders the `${name}` templates of
// docs/transforms.md ("template"). The template transform uses it, and so do sinks for
// their `topic`, `key` and `headers` templates over the original event:
//
//	t, err := template.Compile("orders-${region}", map[string]string{"region": "$.data.region"})
//	if err != nil { /* report err.(template.Errors) at config load */ }
//	...
//	buf = t.AppendRender(buf[:0], msg.Event) // per event: no allocation
//
// Variables map a name to a JSONPath (a string starting with `$`, the definite
// subset of package jsonpath) or to a fixed text used as it is. A placeholder
// is `${name}`, `${jsonEscape(name)}` or `${htmlEscape(name)}`; substitution is
// textual and single-pass (inserted text is never scanned for placeholders),
// and a placeholder whose name is not a variable stays in the output as it is
// written. A value found at a path is inserted as AppendValue renders it: a
// string as its characters, anything else as compact JSON; a path that finds
// nothing (or an input that is not JSON) inserts nothing.
//
// A compiled Template is immutable and safe for concurrent use.
package template

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sluicehq/sluice/builtins/internal/jsonpath"
	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Limits of docs/transforms.md ("Limits"), in Unicode code points.
const (
	// MaxTemplateLen is the longest template text.
	MaxTemplateLen = 10240
	// MaxValueLen is the longest variable value (path or fixed text), and
	// the length past which AppendRenderReport flags an extracted value.
	MaxValueLen = 10240
)

// Error codes Compile reports (docs/transforms.md, "Error codes").
const (
	CodeJSONPathInvalid = "JSONPATH_INVALID"
	CodeTooLong         = "TOO_LONG"
)

// Error is one problem Compile found.
type Error struct {
	// Code is CodeJSONPathInvalid or CodeTooLong.
	Code string
	// Var names the variable whose value is at fault; "" means the
	// template text.
	Var string
	// Offset is the byte offset of the offending character inside the
	// variable's value or the template text.
	Offset int
	// Msg says what is wrong and what is valid, without the code.
	Msg string
}

func (e *Error) Error() string {
	if e.Var != "" {
		return fmt.Sprintf("%s: variable %q: %s", e.Code, e.Var, e.Msg)
	}
	return fmt.Sprintf("%s: template: %s", e.Code, e.Msg)
}

// Errors is every problem Compile found, template text first, then the
// variables by name.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// escape is the function applied to an inserted value.
type escape uint8

const (
	escNone escape = iota
	escJSON
	escHTML
)

// part is literal text followed by one inserted value (slot >= 0) or by
// nothing (slot < 0, only the last part).
type part struct {
	lit  string
	slot int
	esc  escape
}

// Template is a compiled template.
type Template struct {
	parts []part
	set   *jsonpath.Set
}

// Compile parses text against vars. Every variable is checked, used or not:
// a value starting with `$` must be a valid definite JSONPath, and values
// and text are limited to MaxValueLen and MaxTemplateLen code points. An
// empty text is allowed (it renders nothing); callers that require a
// template check that themselves. The error, if any, is an Errors listing
// every problem.
func Compile(text string, vars map[string]string) (*Template, error) {
	var errs Errors
	if n := utf8.RuneCountInString(text); n > MaxTemplateLen {
		errs = append(errs, &Error{Code: CodeTooLong, Offset: RuneOffset(text, MaxTemplateLen),
			Msg: fmt.Sprintf("the template is %d characters long; at most %d are allowed", n, MaxTemplateLen)})
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	paths := map[string][]jsonscan.Seg{}
	for _, name := range names {
		v := vars[name]
		if n := utf8.RuneCountInString(v); n > MaxValueLen {
			errs = append(errs, &Error{Code: CodeTooLong, Var: name, Offset: RuneOffset(v, MaxValueLen),
				Msg: fmt.Sprintf("the value is %d characters long; at most %d are allowed", n, MaxValueLen)})
			continue
		}
		if !strings.HasPrefix(v, "$") {
			continue
		}
		segs, err := jsonpath.Parse(v)
		if err != nil {
			pe := err.(*jsonpath.Error)
			errs = append(errs, &Error{Code: CodeJSONPathInvalid, Var: name, Offset: pe.Offset, Msg: pe.Error()})
			continue
		}
		paths[name] = segs
	}
	if errs != nil {
		return nil, errs
	}
	t := &Template{set: jsonpath.NewSet()}
	var lit strings.Builder
	for _, ph := range placeholders(text) {
		lit.WriteString(text[ph.litStart:ph.start])
		if ph.start == ph.end { // the tail
			break
		}
		name, esc, ok := lookup(text[ph.start+2:ph.end-1], vars)
		if !ok {
			lit.WriteString(text[ph.start:ph.end])
			continue
		}
		segs, isPath := paths[name]
		if !isPath {
			lit.Write(escapeText(nil, []byte(vars[name]), esc))
			continue
		}
		t.parts = append(t.parts, part{lit: lit.String(), slot: t.set.Add(segs), esc: esc})
		lit.Reset()
	}
	t.parts = append(t.parts, part{lit: lit.String(), slot: -1})
	return t, nil
}

// placeholder spans text[start:end] = "${...}" after the literal text
// text[litStart:start]. The last element has start == end == len(text).
type placeholder struct {
	litStart, start, end int
}

// placeholders finds the `${...}` of text. The inner text runs to the first
// '}'; when another "${" opens before it, the earlier "${" is literal text
// (so "${a${b}}" holds the placeholder "${b}").
func placeholders(text string) []placeholder {
	var out []placeholder
	lit, i := 0, 0
	for {
		j := strings.Index(text[i:], "${")
		if j < 0 {
			break
		}
		start := i + j
		q := start + 2
		for q < len(text) && text[q] != '}' && !(text[q] == '$' && q+1 < len(text) && text[q+1] == '{') {
			q++
		}
		if q >= len(text) {
			break
		}
		if text[q] != '}' { // a nested "${": restart there
			i = q
			continue
		}
		out = append(out, placeholder{litStart: lit, start: start, end: q + 1})
		lit, i = q+1, q+1
	}
	return append(out, placeholder{litStart: lit, start: len(text), end: len(text)})
}

// lookup resolves the inside of a placeholder: a variable name, or
// jsonEscape(name) / htmlEscape(name). A variable literally named
// "jsonEscape(x)" wins over the function form.
func lookup(inner string, vars map[string]string) (string, escape, bool) {
	if _, ok := vars[inner]; ok {
		return inner, escNone, true
	}
	for _, f := range [...]struct {
		prefix string
		esc    escape
	}{{"jsonEscape(", escJSON}, {"htmlEscape(", escHTML}} {
		if strings.HasPrefix(inner, f.prefix) && strings.HasSuffix(inner, ")") && len(inner) > len(f.prefix) {
			name := inner[len(f.prefix) : len(inner)-1]
			if _, ok := vars[name]; ok {
				return name, f.esc, true
			}
		}
	}
	return "", escNone, false
}

// RuneOffset returns the byte offset of the code point with index n in s
// (len(s) when s is shorter), for pointing at the first character past a
// limit.
func RuneOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// stackSlots is how many distinct paths a render resolves without touching
// the pool: the spans then live on the stack.
const stackSlots = 16

var spanPool = sync.Pool{New: func() any { return new([]jsonpath.Span) }}

// AppendRender appends the template rendered against input (a JSON
// document, normally an event) to dst and returns the extended slice. It
// does not allocate beyond growing dst, reads input once whatever the
// number of variables, and never fails: an input that is not JSON makes
// every path find nothing.
func (t *Template) AppendRender(dst, input []byte) []byte {
	dst, _ = t.render(dst, input, false)
	return dst
}

// AppendRenderReport is AppendRender that also reports whether a value
// taken from input was longer than MaxValueLen code points. Nothing is
// truncated (docs/transforms.md, "Decisions"); callers log a warning.
func (t *Template) AppendRenderReport(dst, input []byte) (out []byte, oversize bool) {
	return t.render(dst, input, true)
}

func (t *Template) render(dst, input []byte, check bool) ([]byte, bool) {
	n := t.set.Slots()
	if n == 0 {
		for i := range t.parts {
			dst = append(dst, t.parts[i].lit...)
		}
		return dst, false
	}
	var stack [stackSlots]jsonpath.Span
	var spans []jsonpath.Span
	if n <= stackSlots {
		spans = stack[:n]
	} else {
		p := spanPool.Get().(*[]jsonpath.Span)
		if cap(*p) < n {
			*p = make([]jsonpath.Span, n)
		}
		spans = (*p)[:n]
		defer spanPool.Put(p)
	}
	t.set.Resolve(input, spans)
	oversize := false
	for i := range t.parts {
		p := &t.parts[i]
		dst = append(dst, p.lit...)
		if p.slot < 0 {
			continue
		}
		sp := spans[p.slot]
		if !sp.Found() {
			continue
		}
		tok := input[sp.Start:sp.End]
		dst = appendEscapedValue(dst, tok, p.esc)
		// Rendering never makes a value longer than its JSON text, so
		// only long tokens need counting.
		if check && len(tok) > MaxValueLen && !oversize {
			oversize = renderedLen(tok) > MaxValueLen
		}
	}
	return dst, oversize
}

// renderedLen counts the code points of tok rendered by AppendValue. It
// allocates; it runs only for tokens longer than MaxValueLen bytes.
func renderedLen(tok []byte) int {
	return utf8.RuneCount(AppendValue(nil, tok))
}

// AppendValue appends the JSON value tok (valid JSON, no surrounding
// whitespace) as a template or the partial transform inserts it: a string
// as its decoded characters without quotes, a number as its JSON text, true
// / false / null as such, an object or array as compact JSON in its own key
// order.
func AppendValue(dst, tok []byte) []byte {
	switch tok[0] {
	case '"':
		dst, _ = jsonscan.AppendString(dst, tok)
		return dst
	case '{', '[':
		if jsonscan.IsCompact(tok) {
			return append(dst, tok...)
		}
		return jsonscan.AppendCompact(dst, tok)
	}
	return append(dst, tok...)
}

// appendEscapedValue is AppendValue followed by the escape function esc.
func appendEscapedValue(dst, tok []byte, esc escape) []byte {
	switch {
	case esc == escNone:
		return AppendValue(dst, tok)
	case tok[0] != '"' && tok[0] != '{' && tok[0] != '[':
		// Numbers, true, false and null hold nothing either function escapes.
		return append(dst, tok...)
	case esc == escJSON && tok[0] == '"':
		// A JSON string without backslashes cannot hold a quote or a
		// control character: its content is already escaped.
		if c, ok := jsonscan.StringContent(tok); ok {
			return append(dst, c...)
		}
	}
	start := len(dst)
	dst = AppendValue(dst, tok)
	return escapeTail(dst, start, esc)
}

// escapeTail applies esc to dst[start:] in place.
func escapeTail(dst []byte, start int, esc escape) []byte {
	v := dst[start:]
	i := firstEscaped(v, esc)
	if i < 0 {
		return dst
	}
	end := len(dst)
	// Escape onto the end of dst, then move the result down. v keeps
	// pointing at the unescaped text even if append reallocates.
	dst = escapeText(dst, v[i:], esc)
	n := copy(dst[start+i:], dst[end:])
	return dst[:start+i+n]
}

// needs marks the bytes each escape function rewrites.
var needs = func() (t [3][256]bool) {
	for c := 0; c < 0x20; c++ {
		t[escJSON][c] = true
	}
	t[escJSON]['"'], t[escJSON]['\\'] = true, true
	for _, c := range `&<>"` {
		t[escHTML][c] = true
	}
	return
}()

func firstEscaped(v []byte, esc escape) int {
	tab := &needs[esc]
	for i, c := range v {
		if tab[c] {
			return i
		}
	}
	return -1
}

// escapeText appends s with esc applied.
func escapeText(dst, s []byte, esc escape) []byte {
	switch esc {
	case escJSON:
		return jsonscan.AppendEscaped(dst, s)
	case escHTML:
		return appendHTMLEscaped(dst, s)
	}
	return append(dst, s...)
}

// appendHTMLEscaped replaces & < > " with entities; apostrophes stay.
func appendHTMLEscaped(dst, s []byte) []byte {
	start := 0
	for i, c := range s {
		var rep string
		switch c {
		case '&':
			rep = "&amp;"
		case '<':
			rep = "&lt;"
		case '>':
			rep = "&gt;"
		case '"':
			rep = "&quot;"
		default:
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, rep...)
		start = i + 1
	}
	return append(dst, s[start:]...)
}
