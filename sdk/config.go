package sdk

import (
	"errors"
	"math"
	"strconv"

	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// The SDK decodes config and writes its self-description with its own
// scanner, without encoding/json, fmt or reflect: those three packages
// make up half of a Go plugin's WebAssembly, and the host's compiled code,
// memory and start time grow with it (docs/edge.md, "What a Go plugin
// links").

// ConfigDecoder decodes a task's config into a plugin's settings and
// describes the keys it takes. Plugin.Config may be one; the SDK's own is
// behind Param.Into, and package sdk/structconfig decodes into a struct by
// its tags.
type ConfigDecoder interface {
	// DecodeConfig is given the task's config table as JSON: an object,
	// "null" or empty. A returned error rejects the config; one that starts
	// with `key "PATH": ` points the task-file error at that key.
	DecodeConfig(config []byte) error
	// ConfigParams lists the keys for the self-description, with their
	// defaults as they are when Register runs.
	ConfigParams() []Param
}

var configAdapter func(cfg any) (ConfigDecoder, error)

// SetConfigAdapter installs what turns a Plugin.Config that is not a
// ConfigDecoder into one. Package sdk/structconfig calls it from its init
// function; plugins have no need to.
func SetConfigAdapter(adapt func(cfg any) (ConfigDecoder, error)) { configAdapter = adapt }

// errNoAdapter is Register's complaint about a Config struct without
// sdk/structconfig.
const errNoAdapter = "sdk: Plugin.Config is not an sdk.ConfigDecoder. To decode the config into a struct by its json tags " +
	"as before, add `import _ \"github.com/sluicehq/sluice/sdk/structconfig\"` to the plugin; or, for a smaller module, " +
	"declare the keys in Plugin.Params with Into (see the package documentation)"

// bindsValues reports whether any parameter says where its value goes.
func bindsValues(ps []Param) bool {
	for i := range ps {
		if ps[i].Into != nil || ps[i].Decode != nil {
			return true
		}
	}
	return false
}

// checkParams fills in the Type and Default of parameters with Into, and
// panics on an Into of a type the SDK does not decode (Register's misuse
// panics tell the author at the first `go test`).
func checkParams(ps []Param) {
	for i := range ps {
		p := &ps[i]
		if p.Into == nil {
			continue
		}
		typ, def, ok := intoInfo(p.Into)
		if !ok {
			panic("sdk: Param " + strconv.Quote(p.Name) + ": Into must be a *string, *bool, *int, *int64, *float64, " +
				"*[]string or *map[string]string (use Decode for other values)")
		}
		if p.Type == "" {
			p.Type = typ
		}
		if p.Default == nil {
			p.Default = def
		}
	}
}

// intoInfo returns the parameter type of an Into pointer and the value it
// points to when that is not the zero value (the default).
func intoInfo(into any) (typ string, def any, ok bool) {
	switch v := into.(type) {
	case *string:
		return "string", nonZero(*v != "", *v), true
	case *bool:
		return "bool", nonZero(*v, *v), true
	case *int:
		return "int", nonZero(*v != 0, *v), true
	case *int64:
		return "int", nonZero(*v != 0, *v), true
	case *float64:
		return "float", nonZero(*v != 0, *v), true
	case *[]string:
		return "list of string", nonZero(*v != nil, *v), true
	case *map[string]string:
		return "table", nonZero(*v != nil, *v), true
	}
	return "", nil, false
}

func nonZero(set bool, v any) any {
	if set {
		return v
	}
	return nil
}

// paramsDecoder decodes config by the plugin's Params.
type paramsDecoder []Param

func (ps paramsDecoder) ConfigParams() []Param { return ps }

func (ps paramsDecoder) DecodeConfig(config []byte) error {
	if isEmptyObject(config) { // {} or null: only the required keys to check
		return missingRequired(ps, nil)
	}
	var err error
	merr := jsonfield.Members(config, func(rawKey, value []byte) bool {
		key := unquoteKey(rawKey)
		var p *Param
		for i := range ps {
			if ps[i].Name == key {
				p = &ps[i]
				break
			}
		}
		switch {
		case p == nil:
			err = errors.New("invalid config: unknown field " + strconv.Quote(key))
		case jsonfield.KindOf(value) == jsonfield.Null:
			// null leaves the default, as encoding/json does.
		case p.Decode != nil:
			err = p.Decode(value)
		case p.Into != nil:
			err = decodeInto(p.Into, key, value)
		}
		return err == nil
	})
	if err != nil {
		return err
	}
	if merr != nil {
		return errors.New("invalid config: " + jsonKindName(config) + " where a table (JSON object) belongs")
	}
	return missingRequired(ps, config)
}

// missingRequired reports the first required parameter config lacks.
func missingRequired(ps []Param, config []byte) error {
	for _, p := range ps {
		if !p.Required {
			continue
		}
		if _, ok := jsonfield.Get(config, p.Name); !ok || config == nil {
			return errors.New("missing required config key " + strconv.Quote(p.Name))
		}
	}
	return nil
}

// ConfigTypeError reports a config value of the wrong type at path (a
// dotted key path, [N] for list elements) in the words the SDK uses for
// its own: `invalid config: key "PATH": expected WANT, got KIND`, which the
// host turns into an error at that key of the task file (docs/abi.md,
// sluice_init). For Param.Decode functions and other ConfigDecoders.
// An empty path is the config as a whole.
func ConfigTypeError(path, want string, value []byte) error {
	if path == "" {
		return errors.New("invalid config: expected " + want + ", got " + jsonKindName(value))
	}
	return errors.New("invalid config: key " + strconv.Quote(path) + ": expected " + want + ", got " + jsonKindName(value))
}

// jsonKindName names the kind of a raw JSON value as encoding/json's
// errors did: "string", "number 1.5", "bool", "array", "object", "null".
func jsonKindName(v []byte) string {
	switch jsonfield.KindOf(v) {
	case jsonfield.String:
		return "string"
	case jsonfield.Number:
		return "number " + string(v)
	case jsonfield.Bool:
		return "bool"
	case jsonfield.Array:
		return "array"
	case jsonfield.Object:
		return "object"
	case jsonfield.Null:
		return "null"
	}
	return "nothing"
}

func decodeInto(into any, path string, v []byte) error {
	switch p := into.(type) {
	case *string:
		s, err := decodeString(path, v)
		if err == nil {
			*p = s
		}
		return err
	case *bool:
		if jsonfield.KindOf(v) != jsonfield.Bool {
			return ConfigTypeError(path, "a bool", v)
		}
		*p = v[0] == 't'
	case *int:
		n, err := decodeInt(path, v, strconv.IntSize)
		if err == nil {
			*p = int(n)
		}
		return err
	case *int64:
		n, err := decodeInt(path, v, 64)
		if err == nil {
			*p = n
		}
		return err
	case *float64:
		if jsonfield.KindOf(v) != jsonfield.Number {
			return ConfigTypeError(path, "a number", v)
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.IsInf(f, 0) {
			return ConfigTypeError(path, "a number", v)
		}
		*p = f
	case *[]string:
		if jsonfield.KindOf(v) != jsonfield.Array {
			return ConfigTypeError(path, "a list of string", v)
		}
		l := []string{}
		var err error
		jsonfield.Elements(v, func(i int, e []byte) bool {
			var s string
			s, err = decodeString(path+"["+strconv.Itoa(i)+"]", e)
			l = append(l, s)
			return err == nil
		})
		if err != nil {
			return err
		}
		*p = l
	case *map[string]string:
		if jsonfield.KindOf(v) != jsonfield.Object {
			return ConfigTypeError(path, "a table", v)
		}
		if *p == nil {
			*p = map[string]string{}
		}
		var err error
		jsonfield.Members(v, func(k, e []byte) bool {
			key := unquoteKey(k)
			var s string
			if s, err = decodeString(path+"."+key, e); err == nil {
				(*p)[key] = s
			}
			return err == nil
		})
		return err
	}
	return nil
}

// unquoteKey returns a raw member key (between its quotes) unescaped.
func unquoteKey(k []byte) string {
	if u, ok := jsonfield.UnquoteString(append(append([]byte{'"'}, k...), '"')); ok {
		return u
	}
	return string(k)
}

func decodeString(path string, v []byte) (string, error) {
	if jsonfield.KindOf(v) != jsonfield.String {
		return "", ConfigTypeError(path, "a string", v)
	}
	s, ok := jsonfield.UnquoteString(v)
	if !ok {
		return "", errors.New("invalid config: key " + strconv.Quote(path) + ": invalid string " + string(v))
	}
	return s, nil
}

func decodeInt(path string, v []byte, bits int) (int64, error) {
	if jsonfield.KindOf(v) != jsonfield.Number {
		return 0, ConfigTypeError(path, "an integer", v)
	}
	n, err := strconv.ParseInt(string(v), 10, bits)
	if err != nil {
		return 0, ConfigTypeError(path, "an integer", v)
	}
	return n, nil
}

// appendJSON renders a parameter's default. It knows the values Into
// produces and the plain JSON-like types; a value with a MarshalJSON method
// renders itself; anything else is left out of the description (ok false).
func appendJSON(dst []byte, v any) ([]byte, bool) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), true
	case string:
		return jsonfield.AppendString(dst, []byte(x)), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case int:
		return strconv.AppendInt(dst, int64(x), 10), true
	case int64:
		return strconv.AppendInt(dst, x, 10), true
	case uint64:
		return strconv.AppendUint(dst, x, 10), true
	case float64:
		return appendFloat(dst, x)
	case []string:
		dst = append(dst, '[')
		for i, s := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonfield.AppendString(dst, []byte(s))
		}
		return append(dst, ']'), true
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var ok bool
			if dst, ok = appendJSON(dst, e); !ok {
				return dst, false
			}
		}
		return append(dst, ']'), true
	case map[string]string:
		dst = append(dst, '{')
		for i, k := range sortedKeys(x) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(jsonfield.AppendString(dst, []byte(k)), ':')
			dst = jsonfield.AppendString(dst, []byte(x[k]))
		}
		return append(dst, '}'), true
	case map[string]any:
		dst = append(dst, '{')
		for i, k := range sortedKeys(x) {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(jsonfield.AppendString(dst, []byte(k)), ':')
			var ok bool
			if dst, ok = appendJSON(dst, x[k]); !ok {
				return dst, false
			}
		}
		return append(dst, '}'), true
	case interface{ MarshalJSON() ([]byte, error) }:
		b, err := x.MarshalJSON()
		if err != nil {
			return dst, false
		}
		out, err := jsonfield.Compact(dst, b)
		return out, err == nil
	}
	return dst, false
}

// appendFloat appends f as encoding/json writes a float64: the shortest
// representation, in exponent form below 1e-6 and from 1e21 on. NaN and
// infinities have no JSON form (ok false).
func appendFloat(dst []byte, f float64) ([]byte, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return dst, false
	}
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		dst = strconv.AppendFloat(dst, f, 'e', -1, 64)
		// e-07 -> e-7, as encoding/json writes it
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
		return dst, true
	}
	return strconv.AppendFloat(dst, f, 'f', -1, 64), true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// Insertion sort: defaults are small, and package sort would be one
	// more dependency in every module.
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
