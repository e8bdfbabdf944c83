package sdk

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// description is the JSON sluice_describe returns (docs/abi.md).
type description struct {
	Name       string  `json:"name"`
	Version    string  `json:"version"`
	Summary    string  `json:"summary,omitempty"`
	SDK        string  `json:"sdk"`
	Parameters []Param `json:"parameters"`
}

// describeJSON renders the plugin's self-description.
func describeJSON() []byte {
	d := description{SDK: "go", Parameters: []Param{}}
	if plugin != nil {
		d.Name, d.Version, d.Summary = plugin.Name, plugin.Version, plugin.Summary
		if plugin.Params != nil {
			d.Parameters = plugin.Params
		}
	}
	b, err := json.Marshal(d)
	if err != nil {
		return []byte(`{"name":""}`)
	}
	return b
}

// paramsOf derives parameters from a config struct's tags.
func paramsOf(cfg any) []Param {
	v := reflect.ValueOf(cfg)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return []Param{}
	}
	ps := []Param{}
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		p := Param{Name: name, Type: typeName(f.Type), Doc: f.Tag.Get("doc"), Required: f.Tag.Get("required") == "true"}
		if fv := v.Field(i); !fv.IsZero() {
			p.Default = fv.Interface()
		}
		ps = append(ps, p)
	}
	return ps
}

func article(typ string) string {
	switch typ {
	case "int":
		return "an integer"
	case "float":
		return "a number"
	case "any":
		return "any value"
	}
	return "a " + typ
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice, reflect.Array:
		return "list of " + typeName(t.Elem())
	case reflect.Map, reflect.Struct:
		return "table"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return "any"
}

// initPlugin decodes config into the plugin's Config and runs Init.
func initPlugin(config []byte) error {
	if plugin == nil {
		return fmt.Errorf("module registered no plugin (call sdk.Register from an init function)")
	}
	if plugin.Config != nil && len(bytes.TrimSpace(config)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(config))
		dec.DisallowUnknownFields()
		if err := dec.Decode(plugin.Config); err != nil {
			// A rejection that starts with key "PATH": points the host at
			// the key (docs/abi.md, sluice_init).
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				return fmt.Errorf("invalid config: key %q: expected %s, got %s", te.Field, article(typeName(te.Type)), te.Value)
			}
			return fmt.Errorf("invalid config: %v", strings.TrimPrefix(err.Error(), "json: "))
		}
		var keys map[string]json.RawMessage
		if err := json.Unmarshal(config, &keys); err == nil {
			for _, p := range plugin.Params {
				if _, ok := keys[p.Name]; p.Required && !ok {
					return fmt.Errorf("missing required config key %q", p.Name)
				}
			}
		}
	} else if plugin.Config == nil && len(bytes.TrimSpace(config)) > 0 && !isEmptyObject(config) {
		return fmt.Errorf("this module takes no config")
	}
	if plugin.Init != nil {
		return plugin.Init()
	}
	return nil
}

func isEmptyObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return string(b) == "null" || (len(b) >= 2 && b[0] == '{' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0)
}

func closePlugin() {
	if plugin != nil && plugin.Close != nil {
		plugin.Close()
	}
}
