package component

import (
	"fmt"
	"strconv"
	"strings"
)

// Problem is one configuration error found while loading a task.
type Problem struct {
	// Path locates the offending key from the task root: key names, and
	// array indexes as "[N]" elements.
	Path []string
	// AtKey points the position at the key instead of its value (unknown
	// keys, missing sub-keys).
	AtKey bool
	// Offset, when >= 0, is a byte offset inside the string value (a column
	// inside an expression or template).
	Offset int
	// Msg is the message, lowercase, saying what is wrong and what is valid.
	Msg string
	// Sensitive marks a value that may hold a secret (a URL with a key in
	// its query): the diagnostic then quotes no excerpt of the file.
	Sensitive bool
}

// PathString renders Path as `transform[1].variables.order`.
func (p Problem) PathString() string { return FormatPath(p.Path) }

// FormatPath renders a path: keys joined with '.', indexes as "[N]", keys
// that are not bare TOML keys quoted.
func FormatPath(path []string) string {
	var b strings.Builder
	for i, el := range path {
		if strings.HasPrefix(el, "[") && strings.HasSuffix(el, "]") {
			b.WriteString(el)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		if isBareKey(el) {
			b.WriteString(el)
		} else {
			b.WriteString(strconv.Quote(el))
		}
	}
	return b.String()
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Index returns the path element for array index i.
func Index(i int) string { return "[" + strconv.Itoa(i) + "]" }

// Problems collects configuration errors under a base path. The zero value
// is not usable; create one with NewProblems.
type Problems struct {
	base []string
	list *[]Problem
}

// NewProblems returns an empty collector rooted at base.
func NewProblems(base ...string) *Problems {
	return &Problems{base: base, list: new([]Problem)}
}

// At returns a collector scoped below the current one; problems added to it
// land in the same list.
func (p *Problems) At(sub ...string) *Problems {
	b := make([]string, 0, len(p.base)+len(sub))
	b = append(append(b, p.base...), sub...)
	return &Problems{base: b, list: p.list}
}

// Base returns the collector's base path.
func (p *Problems) Base() []string { return p.base }

// Addf reports a problem with the value at the relative path sub (nil: the
// base itself).
func (p *Problems) Addf(sub []string, format string, args ...any) {
	p.add(Problem{Path: p.join(sub), Offset: -1, Msg: fmt.Sprintf(format, args...)})
}

// AddSensitivef is Addf for a value that may hold a secret: the message
// must not quote it, and the diagnostic shows no excerpt of the file.
func (p *Problems) AddSensitivef(sub []string, format string, args ...any) {
	p.add(Problem{Path: p.join(sub), Offset: -1, Msg: fmt.Sprintf(format, args...), Sensitive: true})
}

// KeyErrorf reports a problem located at a key rather than its value.
func (p *Problems) KeyErrorf(sub []string, format string, args ...any) {
	p.add(Problem{Path: p.join(sub), AtKey: true, Offset: -1, Msg: fmt.Sprintf(format, args...)})
}

// AddAt reports a problem at byte offset off inside the string value at sub.
func (p *Problems) AddAt(sub []string, off int, format string, args ...any) {
	p.add(Problem{Path: p.join(sub), Offset: off, Msg: fmt.Sprintf(format, args...)})
}

// Add appends a fully formed problem whose Path is relative to the base.
func (p *Problems) Add(pr Problem) {
	pr.Path = p.join(pr.Path)
	p.add(pr)
}

func (p *Problems) add(pr Problem) { *p.list = append(*p.list, pr) }

func (p *Problems) join(sub []string) []string {
	out := make([]string, 0, len(p.base)+len(sub))
	return append(append(out, p.base...), sub...)
}

// List returns every problem collected so far.
func (p *Problems) List() []Problem { return *p.list }

// Len returns the number of problems collected so far.
func (p *Problems) Len() int { return len(*p.list) }
