package jsonpath

import (
	"strings"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Span locates a value found in a document: data[Start:End]. The zero Span
// means "not found" (a JSON value is never empty, so End > Start when found).
type Span struct {
	Start, End int
}

// Found reports whether the span holds a value.
func (s Span) Found() bool { return s.End > s.Start }

// Set resolves several paths against a document in one pass that also
// validates it. Paths are merged into a tree so a shared prefix ($.data) is
// walked once, and everything off the paths is only validated, never
// decoded. A Set is built once (Add) and then only read, so one Set may be
// used by many goroutines.
type Set struct {
	nodes []node // nodes[0] is the root ($)
	slots int
}

type node struct {
	slot    int      // slot filled with this node's value; -1: none
	keyKids []keyKid // children reached through an object key
	idxKids []idxKid // children reached through an array index
	sub     []int    // slots in this node's subtree, itself included
}

type keyKid struct {
	key  string
	node int
	// backslash is set when key holds a backslash, which a raw JSON key
	// can only spell as an escape.
	backslash bool
}

type idxKid struct {
	index, node int
}

// NewSet returns an empty set.
func NewSet() *Set {
	return &Set{nodes: []node{{slot: -1}}}
}

// child returns the child of node n reached by seg, or -1.
func (s *Set) child(n int, seg jsonscan.Seg) int {
	if seg.IsIndex {
		for _, k := range s.nodes[n].idxKids {
			if k.index == seg.Index {
				return k.node
			}
		}
		return -1
	}
	for _, k := range s.nodes[n].keyKids {
		if k.key == seg.Key {
			return k.node
		}
	}
	return -1
}

// Add registers the path segs and returns its slot: the index of its Span in
// what Resolve fills. Adding the same path twice returns the same slot.
func (s *Set) Add(segs []jsonscan.Seg) int {
	n := 0
	for _, seg := range segs {
		next := s.child(n, seg)
		if next < 0 {
			next = len(s.nodes)
			s.nodes = append(s.nodes, node{slot: -1})
			if seg.IsIndex {
				s.nodes[n].idxKids = append(s.nodes[n].idxKids, idxKid{index: seg.Index, node: next})
			} else {
				s.nodes[n].keyKids = append(s.nodes[n].keyKids, keyKid{key: seg.Key, node: next, backslash: strings.Contains(seg.Key, `\`)})
			}
		}
		n = next
	}
	if s.nodes[n].slot >= 0 {
		return s.nodes[n].slot
	}
	slot := s.slots
	s.nodes[n].slot = slot
	s.slots++
	// Record the slot in the subtree lists of the node and its ancestors,
	// so a duplicate key can forget what an earlier copy of the object set.
	m := 0
	s.nodes[0].sub = append(s.nodes[0].sub, slot)
	for _, seg := range segs {
		m = s.child(m, seg)
		s.nodes[m].sub = append(s.nodes[m].sub, slot)
	}
	return slot
}

// Slots returns the number of distinct paths added: the length Resolve needs.
func (s *Set) Slots() int { return s.slots }

// Resolve finds every path of the set in data and fills spans (len(spans)
// must be at least Slots()). It returns false, with every span cleared, when
// data is not exactly one valid JSON value (surrounding whitespace allowed):
// on a payload that is not JSON every path finds nothing. Where an object
// repeats a key, the last one wins, as in encoding/json and jsonscan.Get.
// Resolve does not allocate.
func (s *Set) Resolve(data []byte, spans []Span) bool {
	spans = spans[:s.slots]
	clear(spans)
	i := jsonscan.SkipSpace(data, 0)
	end := s.walk(data, i, 0, 0, spans)
	if end < 0 || jsonscan.SkipSpace(data, end) != len(data) {
		clear(spans)
		return false
	}
	return true
}

// walk validates the value at data[i], depth levels below the top of the
// document, while recording the spans of node n's subtree, and returns the
// index just past the value, or -1. The depth is carried so that the
// nesting limit counts from the top (jsonscan.MaxDepth, as in
// jsonscan.Valid), not again from 0 below each step of a path.
func (s *Set) walk(data []byte, i, n, depth int, spans []Span) int {
	nd := &s.nodes[n]
	var end int
	switch {
	case i >= len(data):
		return -1
	case data[i] == '{' && len(nd.keyKids) > 0:
		if depth >= jsonscan.MaxDepth {
			return -1
		}
		end = s.walkObject(data, i, depth, nd, spans)
	case data[i] == '[' && len(nd.idxKids) > 0:
		if depth >= jsonscan.MaxDepth {
			return -1
		}
		end = s.walkArray(data, i, depth, nd, spans)
	default:
		end = jsonscan.ValidAtDepth(data, i, depth)
	}
	if end >= 0 && nd.slot >= 0 {
		spans[nd.slot] = Span{i, end}
	}
	return end
}

// walkObject walks the object at data[i], depth levels deep; its members
// are one level deeper.
func (s *Set) walkObject(data []byte, i, depth int, nd *node, spans []Span) int {
	i = jsonscan.SkipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(data) || data[i] != '"' {
			return -1
		}
		ke := jsonscan.ValidAt(data, i)
		if ke < 0 {
			return -1
		}
		key := data[i+1 : ke-1]
		i = jsonscan.SkipSpace(data, ke)
		if i >= len(data) || data[i] != ':' {
			return -1
		}
		i = jsonscan.SkipSpace(data, i+1)
		kid := s.matchKey(nd, key)
		if kid >= 0 {
			// A later duplicate of the key replaces what an earlier one
			// found, including paths it does not reach.
			for _, sl := range s.nodes[kid].sub {
				spans[sl] = Span{}
			}
			i = s.walk(data, i, kid, depth+1, spans)
		} else {
			i = jsonscan.ValidAtDepth(data, i, depth+1)
		}
		if i < 0 {
			return -1
		}
		i = jsonscan.SkipSpace(data, i)
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case '}':
			return i + 1
		case ',':
			i = jsonscan.SkipSpace(data, i+1)
		default:
			return -1
		}
	}
}

// matchKey returns the key kid of nd that the raw (still escaped) key names,
// or -1. Every JSON escape is longer than the character it stands for, so a
// raw key of the same length as the wanted one matches only byte for byte
// and without escapes (which it has only if the wanted key holds a
// backslash), and a longer one only through its escapes.
func (s *Set) matchKey(nd *node, key []byte) int {
	for i := range nd.keyKids {
		kid := &nd.keyKids[i]
		switch {
		case len(key) == len(kid.key):
			if string(key) == kid.key && !kid.backslash {
				return kid.node
			}
		case len(key) > len(kid.key):
			// A cheap look at the first byte spares most calls.
			if kid.key != "" && key[0] != kid.key[0] && key[0] != '\\' {
				continue
			}
			if jsonscan.EscapedEqual(key, kid.key) {
				return kid.node
			}
		}
	}
	return -1
}

// walkArray walks the array at data[i], depth levels deep; its elements
// are one level deeper.
func (s *Set) walkArray(data []byte, i, depth int, nd *node, spans []Span) int {
	i = jsonscan.SkipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		return i + 1
	}
	for n := 0; ; n++ {
		kid := -1
		for _, k := range nd.idxKids {
			if k.index == n {
				kid = k.node
				break
			}
		}
		if kid >= 0 {
			i = s.walk(data, i, kid, depth+1, spans)
		} else {
			i = jsonscan.ValidAtDepth(data, i, depth+1)
		}
		if i < 0 {
			return -1
		}
		i = jsonscan.SkipSpace(data, i)
		if i >= len(data) {
			return -1
		}
		switch data[i] {
		case ']':
			return i + 1
		case ',':
			i = jsonscan.SkipSpace(data, i+1)
		default:
			return -1
		}
	}
}
