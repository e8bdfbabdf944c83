// Command pick is a Sluice WASM transform that builds a new, flat JSON
// object from chosen fields of each event (see README.md): the work of a
// template transform that reshapes events, as a plugin.
package main

import (
	"errors"
	"math/bits"
	"slices"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table (its keys: params).
type Config struct {
	Fields  map[string]string
	Missing string
}

// params declares the config keys and where they go: the SDK decodes them
// without encoding/json or reflect, which would double the module.
var params = []sdk.Param{
	{Name: "fields", Into: &cfg.Fields, Required: true, Doc: "the output's members: name = path of the value in the payload ({ order = \"data.order_id\" }); members come out sorted by name, values as they are in the payload"},
	{Name: "missing", Into: &cfg.Missing, Doc: "a member whose path finds nothing: omit it, or write null"},
}

func defaults() Config { return Config{Missing: "omit"} }

type member struct {
	prefix []byte // ,"name": (no comma on the first)
	path   []string
}

// node is a key of the paths' trie: the fields are read in one pass over
// the payload, not one scan per field (scans dominate a plugin's cost).
type node struct {
	key  string
	slot int     // the member this key ends, or -1
	kids []*node // keys below it
}

var (
	cfg      = defaults()
	members  []member
	root     []*node
	vals     [][]byte
	left     int // members not found yet in the current event
	writeNul bool
)

func setup() error {
	if len(cfg.Fields) == 0 {
		return errors.New("fields: name at least one output member and its path")
	}
	names := make([]string, 0, len(cfg.Fields))
	for n := range cfg.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	members, root = members[:0], nil
	for i, n := range names {
		p, err := field.Parse(cfg.Fields[n])
		if err != nil {
			return errors.New("fields." + n + ": " + err.Error())
		}
		if len(p) == 0 {
			return errors.New("fields." + n + ": name a field, not the whole payload")
		}
		members = append(members, member{prefix: append(jsonfield.AppendString([]byte(","), []byte(n)), ':'), path: p})
		level := &root
		for d, k := range p {
			var nd *node
			for _, c := range *level {
				if c.key == k {
					nd = c
				}
			}
			if nd == nil {
				nd = &node{key: k, slot: -1}
				*level = append(*level, nd)
			}
			if d == len(p)-1 {
				nd.slot = i
			}
			level = &nd.kids
		}
	}
	vals = make([][]byte, len(members))
	m, err := field.Choice("missing", cfg.Missing, "omit", "null")
	writeNul = m == "null"
	return err
}

// walk reads the members of the value v named by the trie level. Objects
// are scanned in this one function, without a call per member: in WASM a
// Go call costs more than scanning a short value.
func walk(v []byte, level []*node) {
	j := 0
	for j < len(v) && v[j] <= ' ' {
		j++
	}
	if j >= len(v) {
		return
	}
	if v[j] == '[' {
		for _, nd := range level {
			if e, ok := jsonfield.Get(v, nd.key); ok {
				visit(nd, e)
			}
		}
		return
	}
	if v[j] != '{' {
		return
	}
	j++
	for {
		for j < len(v) && v[j] <= ' ' {
			j++
		}
		if j >= len(v) || v[j] != '"' {
			return // the end of the object, or broken JSON
		}
		ke, esc := endString(v, j)
		if ke < 0 {
			return
		}
		key := v[j+1 : ke-1]
		j = ke
		for j < len(v) && (v[j] <= ' ' || v[j] == ':') {
			j++
		}
		if j >= len(v) {
			return
		}
		vs := j
		switch v[j] {
		case '"':
			j, _ = endString(v, j)
		case '{', '[':
			j = skipContainer(v, j)
		default:
			for j < len(v) && inScalar[v[j]] {
				j++
			}
		}
		if j > len(v) || j < 0 {
			return
		}
		for _, nd := range level {
			if string(key) == nd.key || (esc && unquotedIs(key, nd.key)) {
				visit(nd, v[vs:j])
			}
		}
		if left == 0 {
			return // every member found: the rest of the event is not read
		}
		for j < len(v) && v[j] <= ' ' {
			j++
		}
		if j < len(v) && v[j] == ',' {
			j++
		}
	}
}

// skipContainer returns the index after the object or array at v[i], or
// -1.
func skipContainer(v []byte, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		switch v[i] {
		case '"':
			if i, _ = endString(v, i); i < 0 {
				return -1
			}
			i--
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// inScalar holds the bytes a number or literal (true, false, null) may
// continue with: one table load per byte instead of four compares.
var inScalar = func() (t [256]bool) {
	for c := 0x21; c < 256; c++ {
		t[c] = c != ',' && c != '}' && c != ']'
	}
	return t
}()

// endString returns the index after the string whose opening quote is
// at v[i] (or -1), and whether it holds escapes. It looks at 8 bytes per
// step (SWAR): Go compiled to WASM pays several nanoseconds per byte in a
// byte loop, and a call (even to bytes.IndexByte) costs more than scanning
// a short string.
func endString(v []byte, i int) (int, bool) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	j, esc := i+1, false
	for j < len(v) {
		for j+8 <= len(v) {
			x := load64(v[j:])
			q, e := x^(lo*'"'), x^(lo*'\\')
			if m := ((q-lo)&^q | (e-lo)&^e) & hi; m != 0 {
				j += bits.TrailingZeros64(m) >> 3
				break
			}
			j += 8
		}
		for j < len(v) && v[j] != '"' && v[j] != '\\' {
			j++
		}
		if j >= len(v) {
			return -1, esc
		}
		if v[j] == '"' {
			return j + 1, esc
		}
		esc = true
		j += 2
	}
	return -1, esc
}

// load64 reads 8 bytes little-endian (encoding/binary's code, without
// the package's reflect).
func load64(b []byte) uint64 {
	_ = b[7]
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

func visit(nd *node, val []byte) {
	if nd.slot >= 0 && vals[nd.slot] == nil {
		vals[nd.slot] = val
		left--
	}
	if len(nd.kids) > 0 {
		walk(val, nd.kids)
	}
}

func unquotedIs(k []byte, key string) bool {
	q := append(append(append(make([]byte, 0, len(k)+2), '"'), k...), '"')
	u, ok := jsonfield.Unquote(nil, q)
	return ok && string(u) == key
}

func mapper(r *sdk.Record, dst []byte) ([]byte, error) {
	clear(vals)
	left = len(vals)
	walk(r.Payload(), root)
	dst = append(dst, '{')
	first := true
	for i := range members {
		v := vals[i]
		if v == nil {
			if !writeNul {
				continue
			}
			v = []byte("null")
		}
		p := members[i].prefix
		if first {
			p = p[1:]
			first = false
		}
		dst = append(append(dst, p...), v...)
	}
	return append(dst, '}'), nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name:    "pick",
		Version: "1.0.0",
		Summary: "builds a flat JSON object from chosen fields of each event",
		Params:  params,
		Init:    setup,
		Handler: sdk.MapFunc(mapper),
	})
}

func main() {}
