package pattern

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxOperators is the per-field limit on operator objects (Alibaba's
// "expressions per field"); literals are not counted.
const maxOperators = 5

// maskBits is what one bit mask of the matcher holds: the sub-patterns
// evaluated together on one value, and the leaf arrays on one key. A
// pattern that needs more is split into several matchers (see split).
const maskBits = 64

// maxMultiplied caps the alternatives that multiplying $or out creates:
// where two sub-patterns with several alternatives each meet at one key,
// every alternative of one is combined with every alternative of the other
// (so that fields under one array come from one element). Nested, that
// grows exponentially with the pattern's size; this cap stops it at load.
// Alternatives a pattern spells out (its $or branches) are not counted.
const maxMultiplied = 1 << 16

// maxOrDepth bounds how deep $or may nest ($or in a branch of a $or, at any
// object depth). Each level pushes the fields of its enclosing objects
// into every alternative below it, so compiling costs about depth² ×
// alternatives: a few hundred levels took seconds to minutes (a pattern is
// text anyone with the console or the playground can submit). Written
// patterns nest a few levels; 100 leaves room to generate them, and the
// merge cap below bounds what a pattern within it can cost.
const maxOrDepth = 100

// mergeWorkBase and mergeWorkPerValue bound the fields that conjunctions
// copy when they are merged (merge), the compiler's superlinear step: a
// field an alternative inherits from an enclosing object is copied once
// per alternative and per enclosing level. Within maxOrDepth the copies
// still grow as depth² × branches, and a flat $or copies its siblings into
// each of its branches. The cap, 262,144 plus 4 per value of the pattern,
// keeps compile time under about half a second (a copy costs one to a few
// microseconds, with the garbage it makes): a deep and wide pattern of a
// few KiB stops at load, where it took minutes. A $or of 1,000 branches of
// 5 fields each, AND-ed with a sibling field, copies 6,000; a flat $or of
// 1,500 one-field branches beside 100 fields, about 150,000 (a first cap of
// 65,536 refused it, though such patterns compiled before there was one).
const (
	mergeWorkBase     = 1 << 18
	mergeWorkPerValue = 4
)

// splitWorkBase and splitWorkFactor bound the matchers a split pattern
// makes (see split), counted as the fields and value lists their levels are
// built from: 1,048,576 plus 32 times the pattern's own (nodeSize). Halving a large $or costs a few times the pattern; but where
// several keys each hold more than a mask does (a large $or under each),
// every part of one is combined with every part of the others, and the
// matchers double with each such key: 14 keys with a $or of 65 one-value
// branches each, 10 KB, made 16,384 matchers in 12 s, each of which reads
// every event, and 20 keys would not compile at all.
const (
	splitWorkBase   = 1 << 20
	splitWorkFactor = 32
	// maxNodeSize caps nodeSize so that the bound on splitting fits an int
	// on 32-bit platforms (splitWorkBase + splitWorkFactor*maxNodeSize <
	// 2^31); no pattern the parser takes comes near it.
	maxNodeSize = 1 << 25
)

// countValues counts the values of a pattern document, for the merge cap.
func countValues(v *value) int {
	n := 1
	for _, m := range v.obj {
		n += countValues(m.val)
	}
	for _, e := range v.arr {
		n += countValues(e)
	}
	return n
}

// Compile compiles a pattern given as the generic tree BurntSushi/toml
// decodes a table into ([filter.pattern]). A nil or empty tree matches
// every event. On failure the error is an *Error listing every problem.
func Compile(tree map[string]any) (*Pattern, error) {
	if tree == nil {
		return compileValue(&value{kind: vObject, off: -1})
	}
	return compileValue(fromTree(tree))
}

// CompileJSON compiles a pattern given as JSON text (pattern_json). Problems
// carry the byte offset of the offending value in text. On failure the
// error is an *Error listing every problem.
func CompileJSON(text []byte) (*Pattern, error) {
	v, p := fromJSON(text)
	if p != nil {
		return nil, &Error{Problems: []Problem{*p}}
	}
	return compileValue(v)
}

// MustCompileJSON is CompileJSON that panics on error, for tests and
// package-level patterns written in code.
func MustCompileJSON(text string) *Pattern {
	p, err := CompileJSON([]byte(text))
	if err != nil {
		panic(err)
	}
	return p
}

func compileValue(root *value) (*Pattern, error) {
	return newCompiler().compile(root)
}

func newCompiler() *compiler {
	return &compiler{
		leafSets: map[string]*leafSet{},
		keyIDs:   map[string]int{},
		conjs:    map[string]*conj{},
		nodes:    map[string]*objNode{},
		merges:   map[[2]int]*conj{},
		products: map[[2]int]*objNode{},
	}
}

func (c *compiler) compile(root *value) (*Pattern, error) {
	c.maxWork = mergeWorkBase + mergeWorkPerValue*countValues(root)
	if root.kind != vObject {
		c.fail(root, nil, CodePatternNotObject, "a pattern is a JSON object mirroring the event, got %s", root.typeName())
		return nil, c.err()
	}
	if len(root.obj) == 0 {
		return &Pattern{all: true}, nil
	}
	node := c.object(root, nil)
	if c.tooComplex && c.complex.work {
		x := c.complex
		c.fail(x.val, x.path, CodeTooComplex, "compiling this pattern copies more than %d fields into alternatives (262144 plus %d per value of the pattern): the fields of an object are repeated in every alternative of a $or under it, at every level of nesting; flatten the nested $or, merge its branches with value lists, or split the filter", c.maxWork, mergeWorkPerValue)
	} else if c.tooComplex {
		x := c.complex
		c.fail(x.val, x.path, CodeTooComplex, "multiplying $or out makes more than %d alternatives in all (the last product: %d alternatives × %d at key %q): where sub-patterns with several alternatives meet at one key, every alternative of one is combined with every alternative of the other so that fields under one array come from one element; merge $or branches with value lists, or move the $or to where the fields differ", maxMultiplied, x.x, x.y, x.key)
	}
	if len(c.problems) > 0 || node == nil {
		return nil, c.err()
	}
	// One matcher walks the event once for the whole pattern, as long as
	// its masks hold it; otherwise the pattern is split into disjuncts,
	// each a matcher of its own, and matches when one of them does.
	p := &Pattern{}
	todo := []*objNode{node}
	maxSplit := 0
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		nslots := 0
		lv, ov := c.level([]*objNode{n}, &nslots, nil)
		if maxSplit == 0 {
			maxSplit = splitWorkBase + splitWorkFactor*nodeSize(node, map[*objNode]int{})
		}
		if c.splitWork > maxSplit {
			var at []string
			if ov != nil {
				at = sub(ov.at, ov.key)
			}
			c.fail(root, at, CodeTooComplex, "splitting this pattern into matchers builds more than %d fields and value lists (%d plus %d times the pattern's own), %d matchers so far: one matcher holds at most %d value lists or sub-patterns on one key, and where several keys each need more (a large $or under each), every part of one is combined with every part of the others; use value lists (k = [1, 2, 3]) instead of one-value $or branches, or split the filter", maxSplit, splitWorkBase, splitWorkFactor, 1+len(p.more), maskBits)
			return nil, c.err()
		}
		if ov == nil {
			if p.root == nil {
				p.root = lv
			} else {
				p.more = append(p.more, lv)
			}
			p.nslots = max(p.nslots, nslots)
			continue
		}
		a, b, ok := c.split(n, ov.at)
		if !ok {
			// Only one alternative is left and its own fields overflow a
			// mask: more than maskBits leaf arrays AND-ed on one key.
			c.fail(root, sub(ov.at, ov.key), CodeTooComplex, "%d different value lists must all hold on %q in one alternative (nested $or branches and their siblings each add one); at most %d can: merge them", ov.n, ov.key, maskBits)
			return nil, c.err()
		}
		todo = append(todo, b, a)
	}
	return p, nil
}

// nodeSize is what building n's levels reads once: its fields and value
// lists, with those of the sub-patterns below (counted at every place they
// appear, as the levels are built), capped at maxNodeSize.
func nodeSize(n *objNode, memo map[*objNode]int) int {
	if s, ok := memo[n]; ok {
		return s
	}
	s := 0
	for _, a := range n.alts {
		for _, f := range a.fields {
			s += 1 + len(f.leaves)
			if f.obj != nil {
				s += nodeSize(f.obj, memo)
			}
		}
		s = min(s, maxNodeSize)
	}
	memo[n] = s
	return s
}

// split returns two object nodes whose disjunction is n, smaller where the
// matcher's masks overflow at the level at path at (relative to n): n's
// alternatives are halved, or, when n has one, the node under the first key
// of at is split and the alternative is copied with each half. A node holds
// when one alternative holds on the value or on one element of it, so
// splitting the alternatives keeps the same-element rule. ok is false when
// every node on the path has a single alternative.
func (c *compiler) split(n *objNode, at []string) (a, b *objNode, ok bool) {
	if len(n.alts) > 1 {
		h := len(n.alts) / 2
		return c.internNode(append([]*conj(nil), n.alts[:h]...)), c.internNode(append([]*conj(nil), n.alts[h:]...)), true
	}
	if len(at) == 0 {
		return nil, nil, false
	}
	cj := n.alts[0]
	for i, f := range cj.fields {
		if f.key != at[0] || f.obj == nil {
			continue
		}
		x, y, ok := c.split(f.obj, at[1:])
		if !ok {
			return nil, nil, false
		}
		fx := append([]field(nil), cj.fields...)
		fy := append([]field(nil), cj.fields...)
		fx[i].obj, fy[i].obj = x, y
		return c.internNode([]*conj{c.internConj(fx)}), c.internNode([]*conj{c.internConj(fy)}), true
	}
	return nil, nil, false
}

type compiler struct {
	problems   []Problem
	leafSets   map[string]*leafSet
	keyIDs     map[string]int
	conjs      map[string]*conj
	nodes      map[string]*objNode
	merges     map[[2]int]*conj
	products   map[[2]int]*objNode
	ids        int
	multiplied int      // alternatives made by multiplying (see maxMultiplied)
	work       int      // fields copied by merge
	splitWork  int      // fields and value lists the matchers' levels were built from (see maxSplitWork)
	maxWork    int      // the cap on work (see mergeWorkBase)
	orDepth    int      // $or arrays enclosing the value being compiled
	keys       []string // keys of the products under way, from the object
	tooComplex bool
	complex    struct { // where multiplying out first went over the cap
		val    *value
		path   []string
		key    string
		x, y   int
		inner  []string
		filled bool
		work   bool // over maxWork, not maxMultiplied
	}
}

func (c *compiler) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &Error{Problems: c.problems}
}

func (c *compiler) fail(v *value, path []string, code, format string, args ...any) {
	off := -1
	if v != nil {
		off = v.off
	}
	// The compiler extends paths in place as it descends (ext): a problem
	// keeps a copy.
	c.problems = append(c.problems, Problem{Code: code, Detail: fmt.Sprintf(format, args...), Path: slices.Clone(path), Offset: off})
}

// sub returns path+el in a new slice, for a path that is kept.
func sub(path []string, el ...string) []string {
	out := make([]string, 0, len(path)+len(el))
	return append(append(out, path...), el...)
}

// ext returns path+el for the descent, reusing path's array: the next
// sibling overwrites it, so a path that is kept must be copied (fail and
// the overflow do). Copying the path at every value (sub) made compiling
// quadratic in the depth: a pattern 9,000 objects deep (54 KB) allocated
// 1.3 GB, and a long value list deep down copied the path for each value.
func ext(path []string, el string) []string {
	return append(path, el)
}

// --- normal form ---------------------------------------------------------

// leafSet is one leaf array: the field matches when any matcher accepts any
// leaf of the event value.
type leafSet struct {
	id      int
	ms      []matcher
	missing bool // holds exists:false, so an absent leaf satisfies it
}

// field is one key of a conjunction: every leaf array and the object node
// (if any) must hold on the event value at key.
type field struct {
	key    string
	kid    int // key's number (keyID): what interning and the levels compare
	leaves []*leafSet
	obj    *objNode
}

// conj is a conjunction of fields on one event object, without $or.
type conj struct {
	id     int
	fields []field
}

// objNode is an object pattern in disjunctive form: it holds on an event
// value when one of its alternatives does. On an event array it holds when
// one element satisfies one whole alternative, which is what makes fields
// under one array come from the same element.
type objNode struct {
	id   int
	alts []*conj
}

func (c *compiler) nextID() int { c.ids++; return c.ids }

// keyID numbers the distinct keys of the pattern. Interning conjunctions
// and building levels compare these numbers rather than the keys: a field
// is copied into every alternative it holds in, and reading its key each
// time made a long key (100 KB beside a $or of 20,000 branches, 390 KB in
// all) cost 20 s and 7 GB to compile.
func (c *compiler) keyID(k string) int {
	id, ok := c.keyIDs[k]
	if !ok {
		id = len(c.keyIDs)
		c.keyIDs[k] = id
	}
	return id
}

func (c *compiler) internLeaf(ms []matcher) *leafSet {
	sort.Slice(ms, func(i, j int) bool { return ms[i].canon < ms[j].canon })
	out := ms[:0]
	var key strings.Builder
	missing := false
	for i, m := range ms {
		if i > 0 && m.canon == ms[i-1].canon {
			continue
		}
		out = append(out, m)
		key.WriteString(m.canon)
		key.WriteByte(0)
		if m.op == mNotExists {
			missing = true
		}
	}
	if ls, ok := c.leafSets[key.String()]; ok {
		return ls
	}
	ls := &leafSet{id: c.nextID(), ms: out, missing: missing}
	c.leafSets[key.String()] = ls
	return ls
}

func (c *compiler) internConj(fields []field) *conj {
	byKey := func(x, y field) int { return x.kid - y.kid }
	if !slices.IsSortedFunc(fields, byKey) { // merge's are
		slices.SortFunc(fields, byKey)
	}
	var key strings.Builder
	for i := range fields {
		f := &fields[i]
		slices.SortFunc(f.leaves, func(x, y *leafSet) int { return x.id - y.id })
		key.WriteString(strconv.Itoa(f.kid))
		for _, l := range f.leaves {
			key.WriteString(" l")
			key.WriteString(strconv.Itoa(l.id))
		}
		if f.obj != nil {
			key.WriteString(" o")
			key.WriteString(strconv.Itoa(f.obj.id))
		}
		key.WriteByte(';')
	}
	if cj, ok := c.conjs[key.String()]; ok {
		return cj
	}
	cj := &conj{id: c.nextID(), fields: fields}
	c.conjs[key.String()] = cj
	return cj
}

func (c *compiler) internNode(alts []*conj) *objNode {
	sort.Slice(alts, func(i, j int) bool { return alts[i].id < alts[j].id })
	out := alts[:0]
	var key strings.Builder
	for i, a := range alts {
		if i > 0 && a == alts[i-1] {
			continue
		}
		out = append(out, a)
		key.WriteString(strconv.Itoa(a.id))
		key.WriteByte(',')
	}
	if n, ok := c.nodes[key.String()]; ok {
		return n
	}
	n := &objNode{id: c.nextID(), alts: out}
	c.nodes[key.String()] = n
	return n
}

// merge is the conjunction of two conjunctions on the same event object.
// count says whether the fields it copies count against maxWork: not
// where $or alternatives multiply, which maxMultiplied bounds and names.
func (c *compiler) merge(a, b *conj, count bool) *conj {
	if a == b {
		return a
	}
	if a.id > b.id {
		a, b = b, a
	}
	k := [2]int{a.id, b.id}
	if m, ok := c.merges[k]; ok {
		return m
	}
	if count {
		if c.work += len(a.fields) + len(b.fields); c.work > c.maxWork && !c.tooComplex {
			c.tooComplex, c.complex.work = true, true
			c.complex.inner = append([]string(nil), c.keys...)
		}
	}
	// The fields of an interned conjunction are sorted by key number (internConj),
	// so the two lists merge in one pass, in key order: a map and a sort
	// here made merging, the step repeated for every alternative at every
	// level of nested $or, several times slower.
	fields := make([]field, 0, len(a.fields)+len(b.fields))
	i := 0
	for _, f := range b.fields {
		for i < len(a.fields) && a.fields[i].kid < f.kid {
			g := a.fields[i]
			fields = append(fields, field{key: g.key, kid: g.kid, leaves: append([]*leafSet(nil), g.leaves...), obj: g.obj})
			i++
		}
		if i == len(a.fields) || a.fields[i].kid != f.kid {
			fields = append(fields, field{key: f.key, kid: f.kid, leaves: append([]*leafSet(nil), f.leaves...), obj: f.obj})
			continue
		}
		g := a.fields[i]
		g.leaves = append([]*leafSet(nil), g.leaves...)
		i++
		for _, l := range f.leaves {
			dup := false
			for _, h := range g.leaves {
				dup = dup || h == l
			}
			if !dup {
				g.leaves = append(g.leaves, l)
			}
		}
		switch {
		case g.obj == nil:
			g.obj = f.obj
		case f.obj != nil && !c.tooComplex:
			c.keys = append(c.keys, f.key)
			g.obj = c.product(g.obj, f.obj)
			c.keys = c.keys[:len(c.keys)-1]
		}
		fields = append(fields, g)
	}
	for _, g := range a.fields[i:] {
		fields = append(fields, field{key: g.key, kid: g.kid, leaves: append([]*leafSet(nil), g.leaves...), obj: g.obj})
	}
	m := c.internConj(fields)
	c.merges[k] = m
	return m
}

// product is the conjunction of two object nodes on the same event value.
func (c *compiler) product(x, y *objNode) *objNode {
	if x == y {
		return x
	}
	if x.id > y.id {
		x, y = y, x
	}
	k := [2]int{x.id, y.id}
	if p, ok := c.products[k]; ok {
		return p
	}
	var alts []*conj
	multiplies := len(x.alts) > 1 && len(y.alts) > 1
	for _, a := range x.alts {
		for _, b := range y.alts {
			if c.tooComplex {
				break
			}
			alts = append(alts, c.merge(a, b, !multiplies))
			if multiplies {
				if c.multiplied++; c.multiplied > maxMultiplied && !c.tooComplex {
					c.tooComplex = true
					c.complex.x, c.complex.y = len(x.alts), len(y.alts)
					c.complex.inner = append([]string(nil), c.keys...)
				}
			}
		}
	}
	p := c.internNode(alts)
	c.products[k] = p
	return p
}

// --- pattern document -> normal form ----------------------------------------

// object compiles a non-empty object pattern; nil when it has problems.
func (c *compiler) object(v *value, path []string) *objNode {
	var fields []field
	var orNode *objNode
	bad := false
	for _, m := range v.obj {
		p := ext(path, m.key)
		if m.key == "$or" {
			if orNode = c.or(m.val, p); orNode == nil {
				bad = true
			}
			continue
		}
		switch m.val.kind {
		case vObject:
			if len(m.val.obj) == 0 {
				c.fail(m.val, p, CodeEmptyObject, "%q is an empty object; name the fields to match inside it or remove it", m.key)
				bad = true
				continue
			}
			n := c.object(m.val, p)
			if n == nil {
				bad = true
				continue
			}
			fields = append(fields, field{key: m.key, kid: c.keyID(m.key), obj: n})
		case vArray:
			ls := c.leaf(m.val, p, m.key)
			if ls == nil {
				bad = true
				continue
			}
			fields = append(fields, field{key: m.key, kid: c.keyID(m.key), leaves: []*leafSet{ls}})
		default:
			c.fail(m.val, p, CodeNotArray, "%q must be an array of matchers (e.g. [%s]) or a nested object, got %s", m.key, example(m.val), m.val.typeName())
			bad = true
		}
	}
	if bad {
		return nil
	}
	node := c.internNode([]*conj{c.internConj(fields)})
	if orNode != nil {
		node = c.product(node, orNode)
		if x := &c.complex; c.tooComplex && !x.filled {
			x.filled = true
			x.val = v
			x.path = sub(path, x.inner...)
			if len(x.inner) > 0 {
				x.key = x.inner[len(x.inner)-1]
			}
			for _, m := range v.obj {
				if m.key == "$or" {
					x.val = m.val
					if len(x.inner) == 0 {
						x.path = sub(path, "$or")
					}
				}
			}
		}
	}
	return node
}

func example(v *value) string {
	switch v.kind {
	case vString:
		return strconv.Quote(v.s)
	case vNumber:
		return v.s
	case vBool:
		return strconv.FormatBool(v.b)
	case vNull:
		return "null"
	}
	return `"value"`
}

func (c *compiler) or(v *value, path []string) *objNode {
	const want = "$or takes an array of at least two objects, each a sub-pattern"
	if c.orDepth >= maxOrDepth {
		// Not descended into: the levels below would each report it again.
		c.fail(v, path, CodeTooComplex, "$or is nested more than %d levels deep here ($or inside a branch of another $or); at most %d levels are compiled: flatten the nesting (a $or branch holding only a $or can be replaced by that $or's branches)", maxOrDepth, maxOrDepth)
		return nil
	}
	c.orDepth++
	defer func() { c.orDepth-- }()
	if v.kind != vArray {
		c.fail(v, path, CodeOrSyntax, "%s, got %s", want, v.typeName())
		return nil
	}
	if len(v.arr) < 2 {
		c.fail(v, path, CodeOrSyntax, "%s, got %d", want, len(v.arr))
	}
	var alts []*conj
	bad := len(v.arr) < 2
	for i, b := range v.arr {
		p := ext(path, index(i))
		if b.kind != vObject {
			c.fail(b, p, CodeOrSyntax, "%s, got %s", want, b.typeName())
			bad = true
			continue
		}
		if len(b.obj) == 0 {
			c.fail(b, p, CodeEmptyObject, "$or branch %d is an empty object; give it fields or remove it", i)
			bad = true
			continue
		}
		n := c.object(b, p)
		if n == nil {
			bad = true
			continue
		}
		alts = append(alts, n.alts...)
	}
	if bad {
		return nil
	}
	return c.internNode(alts)
}

// leaf compiles a leaf array; nil when it has problems.
func (c *compiler) leaf(v *value, path []string, key string) *leafSet {
	if len(v.arr) == 0 {
		c.fail(v, path, CodeEmptyArray, "%q has no matchers; give at least one value or operator", key)
		return nil
	}
	var ms []matcher
	ops := 0
	bad := false
	for i, e := range v.arr {
		p := ext(path, index(i))
		var m matcher
		ok := true
		switch e.kind {
		case vString:
			m = matcher{op: mString, s: e.s, canon: "s" + strconv.Quote(e.s)}
		case vNumber:
			if !e.fOK {
				c.fail(e, p, CodeNumericSyntax, "number %s is not a finite binary64 value", e.s)
				ok = false
				break
			}
			m = matcher{op: mNumber, f: e.f, canon: "n" + fmtFloat(e.f)}
		case vBool:
			if e.b {
				m = matcher{op: mTrue, canon: "t"}
			} else {
				m = matcher{op: mFalse, canon: "f"}
			}
		case vNull:
			m = matcher{op: mNull, canon: "z"}
		case vArray:
			c.fail(e, p, CodeNestedArray, "a matcher cannot be an array; put its values directly in the field's array")
			ok = false
		case vObject:
			ops++
			m, ok = c.operator(e, p)
		default:
			c.fail(e, p, CodeOperandType, "%s cannot be matched (JSON has no such type); quote it as a string", e.typeName())
			ok = false
		}
		if !ok {
			bad = true
			continue
		}
		ms = append(ms, m)
	}
	if ops > maxOperators {
		c.fail(v, path, CodeTooManyExpressions, "%q has %d operator objects, at most %d are allowed (literal values are not counted)", key, ops, maxOperators)
		bad = true
	}
	if bad {
		return nil
	}
	return c.internLeaf(ms)
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

const operatorList = "prefix, suffix, contains, equals-ignore-case, wildcard, anything-but, numeric, cidr, exists"

func (c *compiler) operator(v *value, path []string) (matcher, bool) {
	if len(v.obj) != 1 {
		keys := make([]string, len(v.obj))
		for i, m := range v.obj {
			keys[i] = m.key
		}
		c.fail(v, path, CodeBadOperatorObject, "an operator object has exactly one key, got %d (%s); put each operator in its own object", len(v.obj), strings.Join(keys, ", "))
		return matcher{}, false
	}
	name, arg := v.obj[0].key, v.obj[0].val
	p := ext(path, name)
	switch name {
	case "prefix", "suffix":
		plain, fold := mPrefix, mPrefixFold
		if name == "suffix" {
			plain, fold = mSuffix, mSuffixFold
		}
		if arg.kind == vString && arg.s != "" {
			return matcher{op: plain, s: arg.s, canon: name + strconv.Quote(arg.s)}, true
		}
		if arg.kind == vObject && len(arg.obj) == 1 && arg.obj[0].key == "equals-ignore-case" {
			if o := arg.obj[0].val; o.kind == vString && o.s != "" {
				return matcher{op: fold, s: o.s, runes: utf8.RuneCountInString(o.s), canon: name + "~" + strconv.Quote(o.s)}, true
			}
			c.fail(arg.obj[0].val, sub(p, "equals-ignore-case"), CodeOperandType, "%s equals-ignore-case takes a non-empty string, got %s", name, describe(arg.obj[0].val))
			return matcher{}, false
		}
		c.fail(arg, p, CodeOperandType, `%s takes a non-empty string or {"equals-ignore-case": "<string>"}, got %s`, name, describe(arg))
	case "contains":
		if arg.kind == vString && arg.s != "" {
			return matcher{op: mContains, s: arg.s, canon: "c" + strconv.Quote(arg.s)}, true
		}
		c.fail(arg, p, CodeOperandType, "contains takes a non-empty string, got %s", describe(arg))
	case "equals-ignore-case":
		if arg.kind == vString {
			return matcher{op: mEqualFold, s: arg.s, canon: "e" + strconv.Quote(arg.s)}, true
		}
		c.fail(arg, p, CodeOperandType, "equals-ignore-case takes a string, got %s", describe(arg))
	case "wildcard":
		if arg.kind != vString {
			c.fail(arg, p, CodeOperandType, "wildcard takes a string, got %s", describe(arg))
			break
		}
		wc, msg := parseWildcard(arg.s)
		if msg != "" {
			c.fail(arg, p, CodeWildcardSyntax, "%s", msg)
			break
		}
		return matcher{op: mWildcard, wc: wc, canon: "w" + strconv.Quote(arg.s)}, true
	case "anything-but":
		x, canon, ok := c.anythingBut(arg, p)
		if ok {
			return matcher{op: mAnythingBut, but: x, canon: "!" + canon}, true
		}
	case "numeric":
		conds, ok := c.numeric(arg, p)
		if ok {
			var canon strings.Builder
			canon.WriteString("#")
			for _, n := range conds {
				canon.WriteString(strconv.Itoa(int(n.op)) + ":" + fmtFloat(n.f) + ";")
			}
			return matcher{op: mNumeric, num: conds, canon: canon.String()}, true
		}
	case "cidr":
		if arg.kind != vString {
			c.fail(arg, p, CodeOperandType, "cidr takes a string such as \"10.0.0.0/8\" or \"2001:db8::/32\", got %s", describe(arg))
			break
		}
		pfx, msg := parseCIDR(arg.s)
		if msg != "" {
			c.fail(arg, p, CodeCIDRInvalid, "%s", msg)
			break
		}
		return matcher{op: mCIDR, cidr: pfx, canon: "i" + pfx.String()}, true
	case "exists":
		if arg.kind == vBool {
			if arg.b {
				return matcher{op: mExists, canon: "x"}, true
			}
			return matcher{op: mNotExists, canon: "X"}, true
		}
		c.fail(arg, p, CodeOperandType, "exists takes true or false, got %s", describe(arg))
	default:
		c.fail(v, p, CodeUnknownOperator, "unknown operator %q; the operators are %s", name, operatorList)
	}
	return matcher{}, false
}

// describe names a value's type and, for short scalars, the value.
func describe(v *value) string {
	switch v.kind {
	case vString:
		if v.s == "" {
			return "an empty string"
		}
		return "the string " + strconv.Quote(v.s)
	case vNumber:
		return "the number " + v.s
	case vBool:
		return strconv.FormatBool(v.b)
	}
	return v.typeName()
}

func (c *compiler) anythingBut(arg *value, path []string) (*exclusion, string, bool) {
	x := &exclusion{form: mString}
	var canon []string
	addScalar := func(e *value, p []string) bool {
		switch e.kind {
		case vString:
			x.strs = append(x.strs, e.s)
			canon = append(canon, "s"+strconv.Quote(e.s))
		case vNumber:
			if !e.fOK {
				c.fail(e, p, CodeNumericSyntax, "number %s is not a finite binary64 value", e.s)
				return false
			}
			x.nums = append(x.nums, e.f)
			canon = append(canon, "n"+fmtFloat(e.f))
		case vBool:
			if e.b {
				x.isTrue = true
				canon = append(canon, "t")
			} else {
				x.isFalse = true
				canon = append(canon, "f")
			}
		case vNull:
			x.isNull = true
			canon = append(canon, "z")
		case vOther:
			c.fail(e, p, CodeOperandType, "anything-but cannot exclude %s; quote it as a string", e.typeName())
			return false
		default:
			c.fail(e, p, CodeAnythingButSyntax, "an anything-but list holds only strings, numbers, booleans or null, got %s", e.typeName())
			return false
		}
		return true
	}
	switch arg.kind {
	case vArray:
		if len(arg.arr) == 0 {
			c.fail(arg, path, CodeAnythingButSyntax, "anything-but needs at least one value to exclude")
			return nil, "", false
		}
		ok := true
		for i, e := range arg.arr {
			ok = addScalar(e, ext(path, index(i))) && ok
		}
		if !ok {
			return nil, "", false
		}
	case vObject:
		const forms = "prefix, suffix, equals-ignore-case or wildcard"
		if len(arg.obj) != 1 {
			c.fail(arg, path, CodeAnythingButSyntax, "an anything-but object has exactly one key (%s), got %d", forms, len(arg.obj))
			return nil, "", false
		}
		name, op := arg.obj[0].key, arg.obj[0].val
		p := ext(path, name)
		switch name {
		case "prefix":
			x.form = mPrefix
		case "suffix":
			x.form = mSuffix
		case "equals-ignore-case":
			x.form = mEqualFold
		case "wildcard":
			x.form = mWildcard
		default:
			c.fail(arg, p, CodeAnythingButSyntax, "anything-but cannot take %q; its object forms are %s", name, forms)
			return nil, "", false
		}
		ops := []*value{op}
		opPath := func(int) []string { return p }
		if op.kind == vArray {
			if len(op.arr) == 0 {
				c.fail(op, p, CodeAnythingButSyntax, "anything-but %s needs at least one operand", name)
				return nil, "", false
			}
			ops = op.arr
			opPath = func(i int) []string { return ext(p, index(i)) }
		}
		ok := true
		for i, o := range ops {
			nonEmpty := x.form == mPrefix || x.form == mSuffix
			if o.kind != vString || (nonEmpty && o.s == "") {
				want := "a string"
				if nonEmpty {
					want = "a non-empty string"
				}
				c.fail(o, opPath(i), CodeOperandType, "anything-but %s takes %s or a list of them, got %s", name, want, describe(o))
				ok = false
				continue
			}
			if x.form == mWildcard {
				wc, msg := parseWildcard(o.s)
				if msg != "" {
					c.fail(o, opPath(i), CodeWildcardSyntax, "%s", msg)
					ok = false
					continue
				}
				x.wcs = append(x.wcs, wc)
			}
			x.strs = append(x.strs, o.s)
			canon = append(canon, strconv.Quote(o.s))
		}
		if !ok {
			return nil, "", false
		}
		canon = append(canon, name)
	default:
		if !addScalar(arg, path) {
			return nil, "", false
		}
	}
	sort.Strings(canon)
	return x, strings.Join(canon, ","), true
}

func (c *compiler) numeric(arg *value, path []string) ([]numCond, bool) {
	const want = `numeric takes [op, number] or [op, number, op, number] with op one of =, !=, <, <=, >, >=`
	if arg.kind != vArray || (len(arg.arr) != 2 && len(arg.arr) != 4) {
		what := arg.typeName()
		if arg.kind == vArray {
			what = strconv.Itoa(len(arg.arr)) + " elements"
		}
		c.fail(arg, path, CodeNumericSyntax, "%s, got %s", want, what)
		return nil, false
	}
	var conds []numCond
	ok := true
	for i := 0; i < len(arg.arr); i += 2 {
		o, n := arg.arr[i], arg.arr[i+1]
		op, known := numOps[o.s]
		if o.kind != vString || !known {
			c.fail(o, sub(path, index(i)), CodeNumericSyntax, "%s is not a numeric operator; use one of =, !=, <, <=, >, >=", describe(o))
			ok = false
		}
		switch {
		case n.kind != vNumber:
			c.fail(n, sub(path, index(i+1)), CodeNumericSyntax, "numeric compares with a number, got %s", describe(n))
			ok = false
		case !n.fOK:
			c.fail(n, sub(path, index(i+1)), CodeNumericSyntax, "%s is not a finite binary64 number", n.s)
			ok = false
		}
		conds = append(conds, numCond{op: op, f: n.f})
	}
	return conds, ok
}
