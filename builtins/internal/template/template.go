// Package template compiles and renders the `${name}` templates of
// docs/transforms.md ("template"). The template transform uses it, and so do sinks for
// their `topic`, `key` and `headers` templates over the original event:
//
//	t, err := template.Compile("orders-${region}", map[string]string{"region": "$.data.region"})
//	if err != nil { /* report err.(template.Errors) at config load */ }
//	...
//	buf, err = t.Render(buf[:0], msg.Event) // per event: no allocation
//	if err != nil { /* fail the record: it cannot be rendered */ }
//
// Variables map a name to a JSONPath (a string starting with `$`, the definite
// subset of package jsonpath) or to a fixed text used as it is. A placeholder
// is `${name}`, `${jsonEscape(name)}` or `${htmlEscape(name)}`; substitution is
// single-pass (inserted text is never scanned for placeholders), and a
// placeholder whose name is not a variable stays in the output as it is
// written. A value found at a path is inserted as AppendValue renders it: a
// string as its characters, anything else as compact JSON; a path that finds
// nothing inserts nothing. A template with paths fails on an input that is
// not JSON: an empty render would pass for a result.
//
// A JSON template (its text, with the fixed values written in and the path
// placeholders taken as values, is a JSON object or array) renders JSON or
// fails: a value inside a JSON string
// is escaped for it, so no value can close the string and add members, and
// a placeholder outside a string must render exactly one JSON value.
//
// A render is bounded (OutputLimit, WithLimit): one that would pass the
// limit stops there and fails, so a template repeating a large value cannot
// take the process's memory.
//
// A compiled Template is immutable and safe for concurrent use.
package template

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
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
	// the length past which RenderReport flags an extracted value.
	MaxValueLen = 10240
)

// defaultMaxEvent is the event limit OutputLimit assumes when given none:
// the loader's default (config.DefaultMaxEvent).
const defaultMaxEvent = 1 << 20

// OutputLimit returns the largest render, in bytes, for a task whose events
// are at most maxEvent bytes (0: the default, 1 MiB): 4 × maxEvent + 64 KiB
// (docs/transforms.md, "Limits"). That leaves room for a template that
// writes its whole input twice, escaped, around its own text (at most
// 40 KiB), while one that repeats a value ("${a}" 2,560 times over a 1 MiB
// value would render 2.5 GiB for one event) fails its record instead.
func OutputLimit(maxEvent int) int {
	if maxEvent <= 0 {
		maxEvent = defaultMaxEvent
	}
	const slack = 64 << 10
	if maxEvent > (math.MaxInt-slack)/4 {
		return math.MaxInt
	}
	return 4*maxEvent + slack
}

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

// where says what surrounds a placeholder, which decides how its value is
// written.
type where uint8

const (
	inText   where = iota // a text template: the value's characters
	inString              // inside a string of a JSON template: escaped for it
	asValue               // a value of a JSON template: one JSON value
)

// part is literal text followed by one inserted value (slot >= 0) or by
// nothing (slot < 0, only the last part).
type part struct {
	lit   string
	slot  int
	esc   escape
	where where
	ph    string // the placeholder as written, for messages
}

// Template is a compiled template.
type Template struct {
	parts []part
	set   *jsonpath.Set
	json  bool
	first string // the first placeholder with a path, for messages
	limit int    // the largest render in bytes
}

// WithLimit returns a copy of t whose renders fail past limit bytes
// (OutputLimit of the task's max_event_size). Compile sets OutputLimit(0).
func (t *Template) WithLimit(limit int) *Template {
	c := *t
	c.limit = limit
	return &c
}

// JSON reports whether t is a JSON template: its text, with the
// placeholders taken as values, is a JSON object or array.
func (t *Template) JSON() bool { return t.json }

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
	// The placeholders and what surrounds them: whether each sits inside a
	// JSON string of the text decides, for a JSON template, how its value
	// is written. The lexer reads what will be written: the literal text
	// and the fixed values (escaped for a string they sit in, as a JSON
	// template writes them). A fixed value written outside a string may
	// open or close one ('"p' in `{${f}": ${x}}`): were it skipped, a path
	// placeholder after it would be taken for a value inside a string, or
	// the reverse, and only escaped where it had to be one JSON value.
	type item struct {
		lit      string // literal text before the placeholder
		ph       string // the placeholder as written; "" for the tail
		name     string
		esc      escape
		isPath   bool
		inString bool
	}
	var items []item
	var lit strings.Builder
	var lx lexer
	midEscape := false // a placeholder splits an escape sequence of a string
	for _, ph := range placeholders(text) {
		lit.WriteString(text[ph.litStart:ph.start])
		lx.feed(text[ph.litStart:ph.start])
		if ph.start == ph.end { // the tail
			break
		}
		name, esc, ok := lookup(text[ph.start+2:ph.end-1], vars)
		if !ok {
			lit.WriteString(text[ph.start:ph.end])
			lx.feed(text[ph.start:ph.end])
			continue
		}
		_, isPath := paths[name]
		items = append(items, item{lit: lit.String(), ph: text[ph.start:ph.end], name: name, esc: esc, isPath: isPath, inString: lx.inString})
		midEscape = midEscape || lx.pending > 0
		lit.Reset()
		if !isPath {
			lx.feed(string(appendFixed(nil, vars[name], esc, lx.inString)))
		}
	}
	items = append(items, item{lit: lit.String()})

	// A JSON template is one whose skeleton (paths inside strings as
	// nothing; fixed values as they will be written) is a JSON object or
	// array whatever one JSON value stands for each path outside strings:
	// a number, an object, a string. Such a placeholder then sits between
	// delimiters, and a value rendered there cannot merge with its
	// neighbours ("-${x}" or "1${x}" would).
	isJSON := !midEscape
	for _, stand := range []string{"0", "{}", `""`} {
		if !isJSON {
			break
		}
		var skel []byte
		for _, it := range items {
			skel = append(skel, it.lit...)
			switch {
			case it.ph == "" || it.isPath && it.inString:
			case it.isPath:
				skel = append(skel, stand...)
			default:
				skel = appendFixed(skel, vars[it.name], it.esc, it.inString)
			}
		}
		start := jsonscan.SkipSpace(skel, 0)
		isJSON = start < len(skel) && (skel[start] == '{' || skel[start] == '[') && jsonscan.Valid(skel)
	}

	t := &Template{set: jsonpath.NewSet(), json: isJSON, limit: OutputLimit(0)}
	lit.Reset()
	for _, it := range items {
		lit.WriteString(it.lit)
		if it.ph == "" {
			break
		}
		if !it.isPath {
			lit.Write(appendFixed(nil, vars[it.name], it.esc, isJSON && it.inString))
			continue
		}
		w := inText
		if isJSON {
			w = asValue
			if it.inString {
				w = inString
			}
		}
		if t.first == "" {
			t.first = it.ph
		}
		t.parts = append(t.parts, part{lit: lit.String(), slot: t.set.Add(paths[it.name]), esc: it.esc, where: w, ph: it.ph})
		lit.Reset()
	}
	t.parts = append(t.parts, part{lit: lit.String(), slot: -1})
	return t, nil
}

// appendFixed appends a fixed value with its escape applied, and escaped
// for a JSON string when it sits in one.
func appendFixed(dst []byte, v string, esc escape, inJSONString bool) []byte {
	if !inJSONString {
		return escapeText(dst, []byte(v), esc)
	}
	if esc == escHTML {
		return jsonscan.AppendEscaped(dst, appendHTMLEscaped(nil, []byte(v)))
	}
	return jsonscan.AppendEscaped(dst, []byte(v))
}

// lexer follows the text of a template (its literal text and fixed values)
// to know whether the next placeholder sits inside a JSON string, and
// whether it would split an escape sequence there ("\\${x}", "\\u00${x}").
type lexer struct {
	inString bool
	slash    bool // a backslash began an escape sequence
	pending  int  // characters still due in the current escape sequence
}

func (l *lexer) feed(s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case !l.inString:
			l.inString = c == '"'
		case l.slash:
			l.slash, l.pending = false, 0
			if c == 'u' {
				l.pending = 4
			}
		case l.pending > 0:
			l.pending--
		case c == '\\':
			l.slash, l.pending = true, 1
		case c == '"':
			l.inString = false
		}
	}
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

// Render appends the template rendered against input (a JSON document,
// normally an event) to dst and returns the extended slice. It does not
// allocate beyond growing dst and reads input once whatever the number of
// variables. It fails, returning dst unchanged, when the template has paths
// and input is not JSON, when a JSON template would not render JSON (a
// placeholder outside a string whose value is not one JSON value), and when
// the render passes the limit (WithLimit): it stops at the first value past
// it, so dst grows by at most the limit and one value.
func (t *Template) Render(dst, input []byte) ([]byte, error) {
	dst, _, err := t.render(dst, input, false)
	return dst, err
}

// RenderReport is Render that also reports whether a value taken from
// input was longer than MaxValueLen code points. Nothing is truncated
// (docs/transforms.md, "Decisions"); callers log a warning.
func (t *Template) RenderReport(dst, input []byte) (out []byte, oversize bool, err error) {
	return t.render(dst, input, true)
}

func (t *Template) render(dst, input []byte, check bool) ([]byte, bool, error) {
	n := t.set.Slots()
	if n == 0 {
		// Fixed values are merged into the text: one part.
		for i := range t.parts {
			if len(t.parts[i].lit) > t.limit {
				return dst, false, t.tooLarge(len(t.parts[i].lit), "with its fixed text alone")
			}
			dst = append(dst, t.parts[i].lit...)
		}
		return dst, false, nil
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
	if !t.set.Resolve(input, spans) {
		return dst, false, t.notJSON(input)
	}
	start := len(dst)
	oversize := false
	for i := range t.parts {
		p := &t.parts[i]
		// Checked before each part's text, so after each value: the last
		// part has no value and is always there.
		if size := len(dst) - start + len(p.lit); size > t.limit {
			where := "with its fixed text"
			if i > 0 {
				where = "after " + t.parts[i-1].ph
			}
			return dst[:start], false, t.tooLarge(size, where)
		}
		dst = append(dst, p.lit...)
		if p.slot < 0 {
			continue
		}
		sp := spans[p.slot]
		if !sp.Found() {
			if p.where == asValue {
				return dst[:start], false, fmt.Errorf("%w: %s found nothing, and a JSON template needs one JSON value there (quote it, \"%s\", for an empty string)", ErrRender, p.ph, p.ph)
			}
			continue
		}
		tok := input[sp.Start:sp.End]
		switch p.where {
		case inText:
			dst = appendEscapedValue(dst, tok, p.esc)
		case inString:
			dst = appendInString(dst, tok, p.esc)
		case asValue:
			mark := len(dst)
			dst = appendEscapedValue(dst, tok, p.esc)
			// A number, literal, object or array of the input is one JSON
			// value as it is; a string's characters, or an escaped value,
			// must be checked.
			if (tok[0] == '"' || p.esc != escNone) && !jsonscan.Valid(dst[mark:]) {
				return dst[:start], false, fmt.Errorf("%w: %s is %s, which is not one JSON value, so the JSON template would break (quote the placeholder, \"%s\", to insert it as a string)", ErrRender, p.ph, quoteShort(dst[mark:]), p.ph)
			}
			if tok[0] == '"' || tok[0] == '{' || tok[0] == '[' {
				dst = repairUTF8(dst, mark)
			}
		}
		// Rendering never makes a value longer than its JSON text, so
		// only long tokens need counting.
		if check && len(tok) > MaxValueLen && !oversize {
			oversize = renderedLen(tok) > MaxValueLen
		}
	}
	return dst, oversize, nil
}

// repairUTF8 replaces the bytes of dst[mark:] that are not valid UTF-8
// with U+FFFD (they can only sit inside strings of a valid JSON value), so
// a JSON template renders valid JSON whatever the previous stage wrote.
func repairUTF8(dst []byte, mark int) []byte {
	if utf8.Valid(dst[mark:]) {
		return dst
	}
	fixed := jsonscan.AppendValidUTF8(nil, dst[mark:])
	return append(dst[:mark], fixed...)
}

// ErrRender is wrapped by every error of Render and RenderReport.
var ErrRender = errors.New("template")

func (t *Template) tooLarge(size int, where string) error {
	return fmt.Errorf("%w: the output reached %d bytes %s, over the limit of %d bytes for a rendered template (4 x max_event_size + 64 KiB), and rendering stopped there: a placeholder repeats a large value, or values are larger than expected (raise max_event_size if outputs this large are intended)", ErrRender, size, where, t.limit)
}

func (t *Template) notJSON(input []byte) error {
	return fmt.Errorf("%w: the input is not JSON (%d bytes: %s), so %s has nothing to read: the previous stage emitted text or invalid JSON", ErrRender, len(input), quoteShort(input), t.first)
}

// quoteShort quotes at most 64 bytes of b for a message.
func quoteShort(b []byte) string {
	if len(b) > 64 {
		return strconv.Quote(string(b[:64])) + "…"
	}
	return strconv.Quote(string(b))
}

// appendInString appends the value tok escaped for the inside of a JSON
// string, after the escape function esc: the value can neither close the
// string nor hold bytes JSON forbids.
func appendInString(dst, tok []byte, esc escape) []byte {
	if tok[0] == '"' && esc != escHTML {
		// A string without escapes, in valid UTF-8, is already written
		// as a JSON string's inside.
		if c, ok := jsonscan.StringContent(tok); ok && utf8.Valid(c) {
			return append(dst, c...)
		}
	} else if tok[0] != '"' && tok[0] != '{' && tok[0] != '[' {
		return append(dst, tok...) // numbers and literals hold nothing to escape
	}
	start := len(dst)
	dst = AppendValue(dst, tok)
	if esc == escHTML {
		dst = escapeTail(dst, start, escHTML)
	}
	return escapeTail(dst, start, escJSON)
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
		if c, ok := jsonscan.StringContent(tok); ok && utf8.Valid(c) {
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
	if esc == escJSON && !utf8.Valid(v) {
		// Bytes that are not UTF-8 become \ufffd: escape from the start.
		i = 0
	}
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
