// Command enrich is a Sluice WASM transform that adds fields to each event
// from a lookup table given in its config, keyed by a field of the event
// (see README.md).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table.
type Config struct {
	Key       string                                `json:"key" required:"true" doc:"path of the lookup key, from the payload's root (data.region); a string is looked up by its text, a number or boolean by its JSON text"`
	Table     map[string]map[string]json.RawMessage `json:"table" required:"true" doc:"the lookup table: for each key value, the fields to add ({ \"eu-west-1\" = { site = \"Dublin\" } })"`
	Target    string                                `json:"target" doc:"path of the object the fields are added to; empty: the object holding key"`
	Default   map[string]json.RawMessage            `json:"default" doc:"fields to add when the key is not in the table (none: on_missing applies)"`
	OnMissing string                                `json:"on_missing" doc:"what to do when the key is absent or not in the table and there is no default: pass the event on unchanged, drop it, or fail it (dead-letter queue)"`
	Overwrite *bool                                 `json:"overwrite" doc:"replace fields the target already has (false: keep them)"`
}

func defaults() Config { return Config{OnMissing: "pass"} }

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

func newEntry(fields map[string]json.RawMessage) (*entry, error) {
	e := &entry{}
	for name := range fields {
		e.names = append(e.names, name)
	}
	sort.Strings(e.names)
	for i, name := range e.names {
		v := fields[name]
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			return nil, fmt.Errorf("field %q: %v", name, err)
		}
		e.vals = append(e.vals, c.Bytes())
		if i > 0 {
			e.frag = append(e.frag, ',')
		}
		e.frag = jsonfield.AppendString(e.frag, []byte(name))
		e.frag = append(e.frag, ':')
		e.frag = append(e.frag, c.Bytes()...)
	}
	return e, nil
}

func setup() error {
	var err error
	if keyPath, err = field.MustNotBeRoot("key", cfg.Key); err != nil {
		return err
	}
	targetPath = keyPath[:len(keyPath)-1]
	if cfg.Target != "" {
		if targetPath, err = field.Parse(cfg.Target); err != nil {
			return fmt.Errorf("target: %v", err)
		}
	}
	if len(cfg.Table) == 0 {
		return fmt.Errorf("table: give at least one key and its fields")
	}
	table = make(map[string]*entry, len(cfg.Table))
	for k, fields := range cfg.Table {
		if table[k], err = newEntry(fields); err != nil {
			return fmt.Errorf("table.%s: %v", k, err)
		}
	}
	fallback = nil
	if cfg.Default != nil {
		if fallback, err = newEntry(cfg.Default); err != nil {
			return fmt.Errorf("default: %v", err)
		}
	}
	if onMissing, err = field.Choice("on_missing", cfg.OnMissing, "pass", "drop", "fail"); err != nil {
		return err
	}
	overwrite = cfg.Overwrite == nil || *cfg.Overwrite
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
			return fmt.Errorf("enrich: key %s is %s", cfg.Key, why)
		}
		return nil
	}
	s, end, ok := jsonfield.Span(doc, targetPath...)
	if !ok || jsonfield.KindOf(doc[s:end]) != jsonfield.Object {
		return fmt.Errorf("enrich: target %s is not an object", strings.Join(targetPath, "."))
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
	for i, name := range e.names {
		if !overwrite {
			if _, found := jsonfield.Get(cur, append(path[:len(targetPath)], name)...); found {
				continue
			}
		}
		path[len(targetPath)] = name
		b, err := jsonfield.Set(tmp[i%2][:0], cur, e.vals[i], path...)
		if err != nil {
			return fmt.Errorf("enrich: %v", err)
		}
		tmp[i%2] = b
		cur = b
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
		Config:  &cfg,
		Init:    setup,
		Handler: sdk.FlatMapFunc(handle),
	})
}

func main() {}
