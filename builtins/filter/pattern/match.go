package pattern

import (
	"encoding/binary"
	"math/bits"
	"slices"
	"sync"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Pattern is a compiled event pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	all    bool // the empty pattern: matches every event without reading it
	root   *level
	more   []*level // further disjuncts of a pattern too big for one (see split)
	nslots int      // state slots of the largest
}

// MatchesAll reports whether the pattern is empty (`{}`), which matches
// every event.
func (p *Pattern) MatchesAll() bool { return p == nil || p.all }

// level is the set of object nodes evaluated together on one event value:
// the root, or every sub-pattern that the alternatives of the parent level
// hang under one key. One walk over the value serves them all.
type level struct {
	nodes   []*objNode
	keys    []keyEntry
	index   map[string]int // key lookup when there are many keys
	lens    uint64         // bit n set: some key is n bytes long (n < 64)
	slot    int            // first of 2*len(keys) state slots
	missing uint64         // nodes that hold on a missing value (only exists:false below)
	reqs    [][][]req      // node -> alternative -> requirements
}

// keyEntry is one key named at a level: the distinct leaf arrays and the
// child level (distinct sub-patterns) applied to its value.
type keyEntry struct {
	key         string
	leaves      []*leafSet
	leafMissing uint64 // leaves satisfied by an absent leaf
	child       *level
}

// req is one field of an alternative: the leaf arrays (bits of keyEntry
// leaves) and the child node (bit of the child level) that must hold.
type req struct {
	key   int
	leaf  uint64
	child uint64
}

// overflow says where a pattern does not fit the matcher's masks: key of
// the level at path at holds more than maskBits leaf arrays or sub-patterns
// (n of them).
type overflow struct {
	at  []string
	key string
	n   int
}

// level builds the level evaluating nodes at path (event keys from the
// root); it reports an overflow instead when a mask cannot hold them.
func (c *compiler) level(nodes []*objNode, nslots *int, path []string) (*level, *overflow) {
	lv := &level{nodes: nodes, slot: *nslots}
	keyIdx := map[int]int{} // by key number (keyID)
	leafBit := []map[*leafSet]int{}
	childBit := []map[*objNode]int{}
	var children [][]*objNode
	for _, n := range nodes {
		for _, a := range n.alts {
			c.splitWork += len(a.fields)
			for _, f := range a.fields {
				c.splitWork += len(f.leaves)
				k, ok := keyIdx[f.kid]
				if !ok {
					k = len(lv.keys)
					keyIdx[f.kid] = k
					lv.keys = append(lv.keys, keyEntry{key: f.key})
					leafBit = append(leafBit, map[*leafSet]int{})
					childBit = append(childBit, map[*objNode]int{})
					children = append(children, nil)
				}
				for _, l := range f.leaves {
					if _, ok := leafBit[k][l]; !ok {
						leafBit[k][l] = len(lv.keys[k].leaves)
						lv.keys[k].leaves = append(lv.keys[k].leaves, l)
					}
				}
				if f.obj != nil {
					if _, ok := childBit[k][f.obj]; !ok {
						childBit[k][f.obj] = len(children[k])
						children[k] = append(children[k], f.obj)
					}
				}
			}
		}
	}
	*nslots += 2 * len(lv.keys)
	for _, e := range lv.keys {
		if n := len(e.key); n < 64 {
			lv.lens |= 1 << n
		} else {
			lv.lens |= 1 << 63 // checked by lookup
		}
	}
	if len(lv.keys) > 8 {
		lv.index = make(map[string]int, len(lv.keys))
		for k := range lv.keys {
			lv.index[lv.keys[k].key] = k
		}
	}
	for k := range lv.keys {
		e := &lv.keys[k]
		if len(e.leaves) > maskBits {
			return nil, &overflow{at: slices.Clone(path), key: e.key, n: len(e.leaves)}
		}
		if len(children[k]) > maskBits {
			return nil, &overflow{at: slices.Clone(path), key: e.key, n: len(children[k])}
		}
		for b, l := range e.leaves {
			if l.missing {
				e.leafMissing |= 1 << b
			}
		}
		if len(children[k]) > 0 {
			var ov *overflow
			if e.child, ov = c.level(children[k], nslots, ext(path, e.key)); ov != nil {
				return nil, ov
			}
		}
	}
	for _, n := range nodes {
		var alts [][]req
		for _, a := range n.alts {
			var rs []req
			for _, f := range a.fields {
				k := keyIdx[f.kid]
				r := req{key: k}
				for _, l := range f.leaves {
					r.leaf |= 1 << leafBit[k][l]
				}
				if f.obj != nil {
					r.child = 1 << childBit[k][f.obj]
				}
				rs = append(rs, r)
			}
			alts = append(alts, rs)
		}
		lv.reqs = append(lv.reqs, alts)
	}
	// What holds when the value is missing: every key missing.
	for ni := range nodes {
		for _, rs := range lv.reqs[ni] {
			if lv.allHold(rs, nil) {
				lv.missing |= 1 << ni
				break
			}
		}
	}
	return lv, nil
}

// allHold checks one alternative against the key results in slots (nil:
// every key missing).
func (lv *level) allHold(rs []req, slots []uint64) bool {
	for _, r := range rs {
		var lb, cb uint64
		if slots != nil {
			lb, cb = slots[2*r.key], slots[2*r.key+1]
		} else {
			lb = lv.keys[r.key].leafMissing
			if ch := lv.keys[r.key].child; ch != nil {
				cb = ch.missing
			}
		}
		if lb&r.leaf != r.leaf || cb&r.child != r.child {
			return false
		}
	}
	return true
}

// state is the scratch of one Match call. It holds no pointers that are
// stored through other pointers, so it and its arrays stay on the stack.
type state struct {
	slots []uint64
	buf   []byte // scratch for decoding escaped strings; never stored back
}

// maxDepth bounds the nesting the matcher follows: jsonscan's limit,
// counted from the top of the event as jsonscan.Valid counts it, so the
// matcher takes for JSON exactly what the rest of Sluice does.
const maxDepth = jsonscan.MaxDepth - 1

var slotPool = sync.Pool{New: func() any { return new([]uint64) }}

// Match reports whether the event (one JSON document) matches. It never
// fails: malformed JSON, or a value of the wrong type, simply does not
// match. It reads the event once, validating it and descending only into
// the keys the pattern names (once per matcher when a large $or split the
// pattern into several). It does not allocate unless the pattern names
// more than 24 keys in all (then it borrows scratch from a pool), a string
// it tests holds escapes and is longer than 128 bytes, or a cidr operator
// tests an IPv6 address.
func (p *Pattern) Match(event []byte) bool {
	if p == nil || p.all {
		return true
	}
	var small [48]uint64
	var buf [128]byte
	st := state{buf: buf[:0]}
	if p.nslots <= len(small) {
		st.slots = small[:p.nslots]
	} else {
		sp := slotPool.Get().(*[]uint64)
		if cap(*sp) < p.nslots {
			*sp = make([]uint64, p.nslots)
		}
		st.slots = (*sp)[:p.nslots]
		defer slotPool.Put(sp)
	}
	i := jsonscan.SkipSpace(event, 0)
	if i >= len(event) {
		return false
	}
	mask, end := p.root.eval(&st, event, i, 0)
	if end < 0 || jsonscan.SkipSpace(event, end) != len(event) {
		return false
	}
	if mask&1 != 0 {
		return true
	}
	for _, lv := range p.more { // the event is valid: checked above
		if m, _ := lv.eval(&st, event, i, 0); m&1 != 0 {
			return true
		}
	}
	return false
}

// eval evaluates the level's nodes on the value at d[i] and returns the
// mask of nodes that hold and the index past the value (-1: malformed).
// A pattern object holds only on an event object, or on an array with an
// element it holds on: never on a scalar (its sub-fields are not missing,
// the value is of the wrong kind) nor on an empty array.
func (lv *level) eval(st *state, d []byte, i, depth int) (uint64, int) {
	switch d[i] {
	case '{':
		return lv.evalObject(st, d, i, depth)
	case '[':
		return lv.evalArray(st, d, i, depth)
	}
	return 0, jsonscan.ValidAtDepth(d, i, depth)
}

// evalArray ORs the level over the object elements (nested arrays
// flattened); scalar elements hold no node.
func (lv *level) evalArray(st *state, d []byte, i, depth int) (mask uint64, end int) {
	if depth > maxDepth {
		return 0, -1
	}
	i = jsonscan.SkipSpace(d, i+1)
	if i < len(d) && d[i] == ']' {
		return 0, i + 1
	}
	for {
		if i >= len(d) {
			return 0, -1
		}
		var m uint64
		var e int
		switch d[i] {
		case '[':
			m, e = lv.evalArray(st, d, i, depth+1)
		case '{':
			m, e = lv.evalObject(st, d, i, depth+1)
		default:
			e = jsonscan.ValidAtDepth(d, i, depth+1)
		}
		if e < 0 {
			return 0, -1
		}
		mask |= m
		i = jsonscan.SkipSpace(d, e)
		if i >= len(d) {
			return 0, -1
		}
		if d[i] == ']' {
			return mask, i + 1
		}
		if d[i] != ',' {
			return 0, -1
		}
		i = jsonscan.SkipSpace(d, i+1)
	}
}

func (lv *level) evalObject(st *state, d []byte, i, depth int) (uint64, int) {
	if depth > maxDepth {
		return 0, -1
	}
	slots := st.slots[lv.slot : lv.slot+2*len(lv.keys)]
	for k := range lv.keys {
		e := &lv.keys[k]
		slots[2*k] = e.leafMissing
		if e.child != nil {
			slots[2*k+1] = e.child.missing
		} else {
			slots[2*k+1] = 0
		}
	}
	i = jsonscan.SkipSpace(d, i+1)
	if i < len(d) && d[i] == '}' {
		return lv.result(slots), i + 1
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return 0, -1
		}
		ke, esc := plainString(d, i)
		if ke < 0 {
			return 0, -1
		}
		k := -1
		if n := min(ke-i-2, 63); lv.lens&(1<<n) != 0 || esc {
			k = lv.lookup(d[i:ke], esc)
		}
		i = jsonscan.SkipSpace(d, ke)
		if i >= len(d) || d[i] != ':' {
			return 0, -1
		}
		i = jsonscan.SkipSpace(d, i+1)
		if i >= len(d) {
			return 0, -1
		}
		var end int
		if k < 0 {
			if d[i] == '"' {
				end, _ = plainString(d, i)
			} else {
				end = jsonscan.ValidAtDepth(d, i, depth+1)
			}
		} else {
			e := &lv.keys[k]
			if e.leaves != nil {
				slots[2*k], end = e.evalLeaf(st, d, i, depth+1)
			}
			if e.child != nil && end >= 0 {
				slots[2*k+1], end = e.child.eval(st, d, i, depth+1)
			}
		}
		if end < 0 {
			return 0, -1
		}
		i = jsonscan.SkipSpace(d, end)
		if i >= len(d) {
			return 0, -1
		}
		if d[i] == '}' {
			return lv.result(slots), i + 1
		}
		if d[i] != ',' {
			return 0, -1
		}
		i = jsonscan.SkipSpace(d, i+1)
	}
}

func (lv *level) result(slots []uint64) uint64 {
	var mask uint64
	for ni, alts := range lv.reqs {
		for _, rs := range alts {
			if lv.allHold(rs, slots) {
				mask |= 1 << ni
				break
			}
		}
	}
	return mask
}

// lookup finds the key token tok (quotes included) among the level's keys.
func (lv *level) lookup(tok []byte, esc bool) int {
	if esc {
		return lv.lookupEscaped(tok)
	}
	raw := tok[1 : len(tok)-1]
	if lv.index != nil {
		if k, ok := lv.index[string(raw)]; ok {
			return k
		}
		return -1
	}
	for k := range lv.keys {
		if lv.keys[k].key == string(raw) {
			return k
		}
	}
	return -1
}

// lookupEscaped decodes a key with escapes before looking it up.
func (lv *level) lookupEscaped(tok []byte) int {
	var tmp [64]byte
	b, ok := jsonscan.AppendString(tmp[:0], tok)
	if !ok {
		return -1
	}
	if lv.index != nil {
		if k, ok := lv.index[string(b)]; ok {
			return k
		}
		return -1
	}
	for k := range lv.keys {
		if lv.keys[k].key == string(b) {
			return k
		}
	}
	return -1
}

// evalLeaf applies the key's leaf arrays to the value at d[i]: the bits of
// the arrays that hold, and the index past the value.
func (e *keyEntry) evalLeaf(st *state, d []byte, i, depth int) (uint64, int) {
	switch d[i] {
	case '{':
		// An object is not a leaf: only exists:false holds.
		return e.leafMissing, jsonscan.ValidAtDepth(d, i, depth)
	case '[':
		bits, saw, end := e.evalLeafArray(st, d, i, depth)
		if !saw {
			bits = e.leafMissing
		}
		return bits, end
	}
	var sc scalar
	end, esc := sc.init(d, i)
	if esc {
		sc.str, sc.strOK = jsonscan.AppendString(st.buf, sc.tok)
	}
	if end < 0 {
		return 0, -1
	}
	return e.matchScalar(&sc, st, 0), end
}

func (e *keyEntry) evalLeafArray(st *state, d []byte, i, depth int) (bits uint64, saw bool, end int) {
	if depth > maxDepth {
		return 0, false, -1
	}
	i = jsonscan.SkipSpace(d, i+1)
	if i < len(d) && d[i] == ']' {
		return 0, false, i + 1
	}
	for {
		if i >= len(d) {
			return 0, false, -1
		}
		var ee int
		switch d[i] {
		case '[':
			b, s, x := e.evalLeafArray(st, d, i, depth+1)
			bits |= b
			saw = saw || s
			ee = x
		case '{':
			ee = jsonscan.ValidAtDepth(d, i, depth+1)
		default:
			var sc scalar
			var esc bool
			if ee, esc = sc.init(d, i); esc {
				sc.str, sc.strOK = jsonscan.AppendString(st.buf, sc.tok)
			}
			if ee >= 0 {
				bits = e.matchScalar(&sc, st, bits)
				saw = true
			}
		}
		if ee < 0 {
			return 0, false, -1
		}
		i = jsonscan.SkipSpace(d, ee)
		if i >= len(d) {
			return 0, false, -1
		}
		if d[i] == ']' {
			return bits, saw, i + 1
		}
		if d[i] != ',' {
			return 0, false, -1
		}
		i = jsonscan.SkipSpace(d, i+1)
	}
}

// matchScalar adds to have the bits of the leaf arrays that accept sc.
func (e *keyEntry) matchScalar(sc *scalar, st *state, have uint64) uint64 {
	for b, l := range e.leaves {
		if have&(1<<b) != 0 {
			continue
		}
		for j := range l.ms {
			if l.ms[j].match(sc, st) {
				have |= 1 << b
				break
			}
		}
	}
	return have
}

// init validates the leaf at d[i] and sets sc up. It returns the index
// past the leaf (-1 when malformed) and whether the leaf is a string with
// escapes, which the caller decodes into its scratch buffer (kept out of
// here so the buffer is never stored through a pointer and stays on the
// stack).
func (sc *scalar) init(d []byte, i int) (end int, escaped bool) {
	sc.kind = jsonscan.KindOf(d[i])
	if sc.kind != jsonscan.String {
		end = jsonscan.ValidAt(d, i)
		if end >= 0 {
			sc.tok = d[i:end]
		}
		return end, false
	}
	end, escaped = plainString(d, i)
	if end < 0 {
		return -1, false
	}
	sc.tok = d[i:end]
	if !escaped {
		sc.str, sc.strOK = d[i+1:end-1], true
	}
	return end, escaped
}

// plainString is jsonscan.ValidString with a fast path for the usual
// string without escapes: it looks at 8 bytes at a time (SWAR) for the
// closing quote, a backslash or a control character.
func plainString(d []byte, i int) (end int, escaped bool) {
	j := i + 1
	for j+8 <= len(d) {
		x := binary.LittleEndian.Uint64(d[j:])
		q := x ^ (swarLo * '"')
		b := x ^ (swarLo * '\\')
		if m := ((x-swarLo*0x20)&^x | (q-swarLo)&^q | (b-swarLo)&^b) & swarHi; m != 0 {
			// The lowest flagged byte is exact (borrows only run upward).
			j += bits.TrailingZeros64(m) >> 3
			if d[j] == '"' {
				return j + 1, false
			}
			return jsonscan.ValidString(d, i)
		}
		j += 8
	}
	for j < len(d) && d[j] != '"' && d[j] != '\\' && d[j] >= 0x20 {
		j++
	}
	if j < len(d) && d[j] == '"' {
		return j + 1, false
	}
	return jsonscan.ValidString(d, i)
}

// SWAR constants: 0x01 and 0x80 in every byte.
const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)
