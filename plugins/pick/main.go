// Command pick is a Sluice WASM transform that builds a new, flat JSON
// object from chosen fields of each event (see README.md): the work of a
// template transform that reshapes events, as a plugin.
package main

import (
	"fmt"
	"sort"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table.
type Config struct {
	Fields  map[string]string `json:"fields" required:"true" doc:"the output's members: name = path of the value in the payload ({ order = \"data.order_id\" }); members come out sorted by name, values as they are in the payload"`
	Missing string            `json:"missing" doc:"a member whose path finds nothing: omit it, or write null"`
}

func defaults() Config { return Config{Missing: "omit"} }

type member struct {
	prefix []byte // ,"name": (no comma on the first)
	path   []string
}

var (
	cfg      = defaults()
	members  []member
	writeNul bool
)

func setup() error {
	if len(cfg.Fields) == 0 {
		return fmt.Errorf("fields: name at least one output member and its path")
	}
	names := make([]string, 0, len(cfg.Fields))
	for n := range cfg.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	members = members[:0]
	for _, n := range names {
		p, err := field.Parse(cfg.Fields[n])
		if err != nil {
			return fmt.Errorf("fields.%s: %v", n, err)
		}
		members = append(members, member{prefix: append(jsonfield.AppendString([]byte(","), []byte(n)), ':'), path: p})
	}
	m, err := field.Choice("missing", cfg.Missing, "omit", "null")
	writeNul = m == "null"
	return err
}

func mapper(r *sdk.Record, dst []byte) ([]byte, error) {
	doc := r.Payload()
	dst = append(dst, '{')
	first := true
	for i := range members {
		m := &members[i]
		v, ok := jsonfield.Get(doc, m.path...)
		if !ok {
			if !writeNul {
				continue
			}
			v = []byte("null")
		}
		p := m.prefix
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
		Config:  &cfg,
		Init:    setup,
		Handler: sdk.MapFunc(mapper),
	})
}

func main() {}
