package config

import (
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// span is a byte range of the task file.
type span struct{ off, len int }

// loc records where a key and its value sit in the file.
type loc struct {
	key, val span
}

// index maps config paths (keys and "[N]" elements) to file positions.
//
// BurntSushi/toml, which decodes the file, keeps key positions private and
// shares one entry among the elements of an array of tables, so positions
// come from a second, syntax-only pass with go-toml's unstable parser. Only
// positions are taken from it; values always come from BurntSushi.
type index struct {
	data  []byte
	locs  map[string]loc
	lines []int // byte offset of each line start
}

func pathKey(path []string) string { return strings.Join(path, "\x00") }

func buildIndex(data []byte) *index {
	ix := &index{data: data, locs: map[string]loc{}}
	ix.lines = append(ix.lines, 0)
	for i, c := range data {
		if c == '\n' {
			ix.lines = append(ix.lines, i+1)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	arrays := map[string]int{} // array-of-tables path -> index of its last element
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			ix.keyValue(&p, e, table, arrays)
		case unstable.Table, unstable.ArrayTable:
			keys, first := keyParts(e)
			var path []string
			if e.Kind == unstable.ArrayTable && len(keys) > 0 {
				// The new element's own key is not resolved to the last
				// element: it starts a new one.
				path = append(ix.resolve(keys[:len(keys)-1], arrays), keys[len(keys)-1])
			} else {
				path = ix.resolve(keys, arrays)
			}
			var r span
			if first.Valid() {
				r = keyRange(&p, e)
			}
			if e.Kind == unstable.ArrayTable {
				k := pathKey(path)
				n, ok := arrays[k]
				if ok {
					n++
				}
				arrays[k] = n
				if _, indexed := ix.locs[k]; !indexed && first.Valid() {
					// The array itself is at its first element's header:
					// a problem with the whole array ([[sink]] where a
					// table is expected) points there.
					ix.locs[k] = loc{key: r, val: r}
				}
				path = append(path, "["+strconv.Itoa(n)+"]")
			}
			table = path
			if first.Valid() {
				ix.locs[pathKey(path)] = loc{key: r, val: r}
				ix.implicit(e, func(n int) []string { return ix.resolve(keys[:n], arrays) })
			}
		}
	}
	// A syntax error stops the pass; what was indexed so far stays usable and
	// the syntax error itself is reported by the decoder.
	return ix
}

// resolve turns a header's dotted key into a path, inserting the index of
// the last element of every array of tables it passes through.
func (ix *index) resolve(keys []string, arrays map[string]int) []string {
	var path []string
	for _, k := range keys {
		path = append(path, k)
		if n, ok := arrays[pathKey(path)]; ok {
			path = append(path, "["+strconv.Itoa(n)+"]")
		}
	}
	return path
}

func keyParts(n *unstable.Node) ([]string, *unstable.Node) {
	var parts []string
	var first *unstable.Node
	it := n.Key()
	for it.Next() {
		if first == nil {
			first = it.Node()
		}
		parts = append(parts, string(it.Node().Data))
	}
	return parts, first
}

// keyRange spans a node's whole dotted key.
func keyRange(p *unstable.Parser, n *unstable.Node) span {
	it := n.Key()
	start, end := -1, -1
	for it.Next() {
		r := it.Node().Raw
		if start < 0 {
			start = int(r.Offset)
		}
		end = int(r.Offset + r.Length)
	}
	if start < 0 {
		return span{}
	}
	return span{off: start, len: end - start}
}

func (ix *index) keyValue(p *unstable.Parser, e *unstable.Node, base []string, arrays map[string]int) {
	keys, _ := keyParts(e)
	path := append(append([]string(nil), base...), keys...)
	kr := keyRange(p, e)
	v := e.Value()
	ix.locs[pathKey(path)] = loc{key: kr, val: ix.valueSpan(p, v)}
	ix.implicit(e, func(n int) []string { return path[:len(base)+n] })
	ix.value(p, v, path)
}

// implicit indexes the tables a dotted key creates without a header of
// their own ([a.b] or a.b = 1 create a) at the part of the key naming
// each, unless the file locates them elsewhere: a problem with such a
// table (an unknown key a) had no position. prefix(n) is the path of the
// table named by the key's first n parts.
func (ix *index) implicit(e *unstable.Node, prefix func(n int) []string) {
	it := e.Key()
	for n := 1; it.Next(); n++ {
		if !it.IsLast() {
			k := pathKey(prefix(n))
			if _, ok := ix.locs[k]; !ok {
				r := it.Node().Raw
				s := span{off: int(r.Offset), len: int(r.Length)}
				ix.locs[k] = loc{key: s, val: s}
			}
		}
	}
}

func (ix *index) value(p *unstable.Parser, v *unstable.Node, path []string) {
	switch v.Kind {
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if it.Node().Kind == unstable.KeyValue {
				ix.keyValue(p, it.Node(), path, nil)
			}
		}
	case unstable.Array:
		it := v.Children()
		i := 0
		for it.Next() {
			el := it.Node()
			elPath := append(append([]string(nil), path...), "["+strconv.Itoa(i)+"]")
			s := ix.valueSpan(p, el)
			ix.locs[pathKey(elPath)] = loc{key: s, val: s}
			ix.value(p, el, elPath)
			i++
		}
	}
}

// valueSpan returns the raw extent of a value. Scalars carry it; for arrays
// and inline tables go-toml records no range, so the span runs from the
// first child to the last one.
func (ix *index) valueSpan(p *unstable.Parser, v *unstable.Node) span {
	if v == nil {
		return span{}
	}
	if v.Raw.Length > 0 {
		return span{off: int(v.Raw.Offset), len: int(v.Raw.Length)}
	}
	start, end := -1, -1
	it := v.Children()
	for it.Next() {
		c := it.Node()
		var s span
		if c.Kind == unstable.KeyValue {
			s = keyRange(p, c)
			if vs := ix.valueSpan(p, c.Value()); vs.len > 0 {
				s.len = vs.off + vs.len - s.off
			}
		} else {
			s = ix.valueSpan(p, c)
		}
		if s.len == 0 {
			continue
		}
		if start < 0 {
			start = s.off
		}
		end = s.off + s.len
	}
	if start < 0 {
		return span{}
	}
	// Widen to the enclosing brackets when they sit right outside.
	for start > 0 && start > ix.lineStart(start) && ix.data[start-1] != '[' && ix.data[start-1] != '{' && isSpace(ix.data[start-1]) {
		start--
	}
	if start > 0 && (ix.data[start-1] == '[' || ix.data[start-1] == '{') {
		start--
	}
	for end < len(ix.data) && isSpace(ix.data[end]) {
		end++
	}
	if end < len(ix.data) && (ix.data[end] == ']' || ix.data[end] == '}' || ix.data[end] == '"' || ix.data[end] == '\'') {
		end++
	}
	return span{off: start, len: end - start}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func (ix *index) lineStart(off int) int {
	i := sort.Search(len(ix.lines), func(i int) bool { return ix.lines[i] > off }) - 1
	if i < 0 {
		return 0
	}
	return ix.lines[i]
}

// lineCol converts a byte offset to a 1-based line and column (columns count
// characters, not bytes).
func (ix *index) lineCol(off int) (line, col int) {
	if off > len(ix.data) {
		off = len(ix.data)
	}
	i := sort.Search(len(ix.lines), func(i int) bool { return ix.lines[i] > off }) - 1
	if i < 0 {
		i = 0
	}
	col = 1 + len([]rune(string(ix.data[ix.lines[i]:off])))
	return i + 1, col
}

// lookup finds the closest indexed position for path: the path itself, or
// its nearest indexed ancestor.
func (ix *index) lookup(path []string) (loc, bool, int) {
	for n := len(path); n > 0; n-- {
		if l, ok := ix.locs[pathKey(path[:n])]; ok {
			return l, true, n
		}
	}
	return loc{}, false, 0
}
