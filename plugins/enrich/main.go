// Command enrich is a Sluice WASM transform that adds fields to each event
// from a lookup table given in its config, keyed by a field of the event
// (see README.md).
package main

import (
	"errors"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table (its keys: params). Table and
// Default hold each field's value as raw JSON.
type Config struct {
	Key       string
	Table     map[string]map[string][]byte
	Target    string
	Default   map[string][]byte
	OnMissing string
	Overwrite bool
}

func defaults() Config { return Config{OnMissing: "pass", Overwrite: true} }

// params declares the config keys and where they go: the SDK decodes them
// without encoding/json or reflect, which would double the module.
var params = []sdk.Param{
	{Name: "key", Into: &cfg.Key, Required: true, Doc: "path of the lookup key, from the payload's root (data.region); a string is looked up by its text, a number or boolean by its JSON text"},
	{Name: "table", Type: "table", Decode: decodeTable, Required: true, Doc: "the lookup table: for each key value, the fields to add ({ \"eu-west-1\" = { site = \"Dublin\" } })"},
	{Name: "target", Into: &cfg.Target, Doc: "path of the object the fields are added to; empty: the object holding key"},
	{Name: "default", Type: "table", Decode: func(v []byte) (err error) { cfg.Default, err = decodeFields("default", v); return err }, Doc: "fields to add when the key is not in the table (none: on_missing applies)"},
	{Name: "on_missing", Into: &cfg.OnMissing, Doc: "what to do when the key is absent or not in the table and there is no default: pass the event on unchanged, drop it, or fail it (dead-letter queue)"},
	{Name: "overwrite", Into: &cfg.Overwrite, Doc: "replace fields the target already has (false: keep them)"},
}

// decodeTable reads the table { "key value" = { field = value, ... } }.
func decodeTable(v []byte) error {
	if jsonfield.KindOf(v) != jsonfield.Object {
		return sdk.ConfigTypeError("table", "a table", v)
	}
	cfg.Table = map[string]map[string][]byte{}
	var err error
	jsonfield.Members(v, func(k, fields []byte) bool {
		key := unquoteKey(k)
		cfg.Table[key], err = decodeFields("table."+key, fields)
		return err == nil
	})
	return err
}

// decodeFields reads { field = value, ... } at path, each value kept as
// compact JSON.
func decodeFields(path string, v []byte) (map[string][]byte, error) {
	if jsonfield.KindOf(v) == jsonfield.Null {
		return nil, nil
	}
	if jsonfield.KindOf(v) != jsonfield.Object {
		return nil, sdk.ConfigTypeError(path, "a table", v)
	}
	m := map[string][]byte{}
	var err error
	jsonfield.Members(v, func(k, val []byte) bool {
		name := unquoteKey(k)
		var c []byte
		if c, err = jsonfield.Compact(nil, val); err != nil {
			err = errors.New("invalid config: key \"" + path + "." + name + "\": " + err.Error())
			return false
		}
		m[name] = c
		return true
	})
	return m, err
}

// unquoteKey returns a member key as jsonfield.Members gives it (between
// its quotes, escapes as they are) unescaped.
func unquoteKey(k []byte) string {
	if u, ok := jsonfield.Unquote(nil, append(append([]byte{'"'}, k...), '"')); ok {
		return string(u)
	}
	return string(k)
}

// entry is what one key adds, pre-rendered.
type entry struct {
	names []string
	vals  [][]byte
	frag  []byte // "name":value,... for the fast path
}

var (
	cfg        = defaults()
	keyPath    []string
	targetPath []string
	table      map[string]*entry
	fallback   *entry
	onMissing  string
	overwrite  bool
	tmp        [2][]byte
)

// newEntry pre-renders what one key adds (the values are compact JSON,
// decodeFields made them so).
func newEntry(fields map[string][]byte) *entry {
	e := &entry{}
	for name := range fields {
		e.names = append(e.names, name)
	}
	slices.Sort(e.names)
	for i, name := range e.names {
		v := fields[name]
		e.vals = append(e.vals, v)
		if i > 0 {
			e.frag = append(e.frag, ',')
		}
		e.frag = jsonfield.AppendString(e.frag, []byte(name))
		e.frag = append(e.frag, ':')
		e.frag = append(e.frag, v...)
	}
	return e
}

func setup() error {
	var err error
	if keyPath, err = field.MustNotBeRoot("key", cfg.Key); err != nil {
		return err
	}
	targetPath = keyPath[:len(keyPath)-1]
	if cfg.Target != "" {
		if targetPath, err = field.Parse(cfg.Target); err != nil {
			return errors.New("target: " + err.Error())
		}
	}
	if len(cfg.Table) == 0 {
		return errors.New("table: give at least one key and its fields")
	}
	table = make(map[string]*entry, len(cfg.Table))
	for k, fields := range cfg.Table {
		table[k] = newEntry(fields)
	}
	fallback = nil
	if cfg.Default != nil {
		fallback = newEntry(cfg.Default)
	}
	if onMissing, err = field.Choice("on_missing", cfg.OnMissing, "pass", "drop", "fail"); err != nil {
		return err
	}
	overwrite = cfg.Overwrite
	return nil
}

func lookup(doc []byte) (*entry, string) {
	v, ok := jsonfield.Get(doc, keyPath...)
	if !ok {
		return fallback, "absent"
	}
	k := v
	if jsonfield.KindOf(v) == jsonfield.String {
		if k, ok = jsonfield.Unquote(nil, v); !ok {
			return fallback, "not a valid string"
		}
	}
	if e, ok := table[string(k)]; ok {
		return e, ""
	}
	return fallback, "not in the table"
}

func handle(r *sdk.Record, out *sdk.Output) error {
	doc := r.Payload()
	e, why := lookup(doc)
	if e == nil {
		switch onMissing {
		case "pass":
			out.Pass()
		case "fail":
			return errors.New("enrich: key " + cfg.Key + " is " + why)
		}
		return nil
	}
	if len(e.names) == 0 { // an empty table: nothing to add
		out.Pass()
		return nil
	}
	s, end, ok := jsonfield.Span(doc, targetPath...)
	if !ok || jsonfield.KindOf(doc[s:end]) != jsonfield.Object {
		return errors.New("enrich: target " + strings.Join(targetPath, ".") + " is not an object")
	}
	obj := doc[s:end]
	// Fast path: none of the fields is there yet, so they are spliced in
	// before the closing brace in one copy.
	clash := false
	for _, name := range e.names {
		if _, found := jsonfield.Get(obj, name); found {
			clash = true
			break
		}
	}
	if !clash {
		p := append(out.Scratch(), doc[:end-1]...)
		if !emptyObject(obj) {
			p = append(p, ',')
		}
		p = append(p, e.frag...)
		p = append(p, doc[end-1:]...)
		out.Emit(p)
		return nil
	}
	cur := doc
	path := append(append(make([]string, 0, len(targetPath)+1), targetPath...), "")
	w := 0 // the tmp buffer the next Set writes: never the one cur is in
	for i, name := range e.names {
		if !overwrite {
			if _, found := jsonfield.Get(cur, append(path[:len(targetPath)], name)...); found {
				continue
			}
		}
		path[len(targetPath)] = name
		b, err := jsonfield.Set(tmp[w][:0], cur, e.vals[i], path...)
		if err != nil {
			return errors.New("enrich: " + err.Error())
		}
		tmp[w] = b
		cur = b
		w ^= 1
	}
	if &cur[0] == &doc[0] {
		out.Pass()
		return nil
	}
	out.Emit(append(out.Scratch(), cur...))
	return nil
}

func emptyObject(obj []byte) bool {
	for _, c := range obj[1 : len(obj)-1] {
		if c != ' ' && c != '\n' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

func init() {
	sdk.Register(sdk.Plugin{
		Name:    "enrich",
		Version: "1.0.0",
		Summary: "adds fields from a lookup table in the config, keyed by a field of the event",
		Params:  params,
		Init:    setup,
		Handler: sdk.FlatMapFunc(handle),
	})
}

func main() {}
