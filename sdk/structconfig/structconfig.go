// Package structconfig decodes a Sluice plugin's config into a struct by
// its tags, as the SDK did before it left reflection out of plugins that
// do not ask for it. Import it for its side effect and set Plugin.Config
// to a pointer to the struct:
//
//	import _ "github.com/sluicehq/sluice/sdk/structconfig"
//
//	var cfg = struct {
//		Field string `json:"field" doc:"field of data to read" required:"true"`
//		Limit int    `json:"limit" doc:"most outputs per event"`
//	}{Limit: 10} // non-zero values are the defaults
//
//	sdk.Register(sdk.Plugin{Name: "my-plugin", Config: &cfg, ...})
//
// The `json` tag names a key (`json:"-"` leaves a field out), `doc:"..."`
// describes it and `required:"true"` makes it mandatory; the host checks
// task files against them. Decoding follows encoding/json's rules for the
// shapes a config takes (strings, booleans, numbers, slices, arrays, maps,
// nested and embedded structs, pointers, interfaces, json.RawMessage,
// []byte as base64, and types with UnmarshalJSON or UnmarshalText), and
// rejects unknown keys at every level, as a decoder with
// DisallowUnknownFields does.
//
// It costs: reflect and this decoder add about 0.4 MB of WebAssembly to a
// plugin and 1.6 MiB to its compiled code in the host (the test guest
// upper: 2.34 -> 2.74 MB, 8.9 -> 10.5 MiB). Plugins that declare their
// keys with sdk.Param's Into instead stay without it.
package structconfig

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

func init() { sdk.SetConfigAdapter(Of) }

// Of returns a decoder of config into the value cfg points to (usually a
// struct). Register calls it for a Plugin.Config that is not a decoder
// itself, once this package is imported.
func Of(cfg any) (sdk.ConfigDecoder, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil, errors.New("Config must be a pointer to a struct, not a " + v.Kind().String() + " (write Config: &cfg)")
	}
	d := &decoder{v: v.Elem(), params: []sdk.Param{}}
	if d.v.Kind() == reflect.Struct {
		for _, f := range fieldsOf(d.v.Type()) {
			p := sdk.Param{Name: f.name, Type: typeName(f.typ), Doc: f.doc, Required: f.required}
			if fv, ok := fieldByIndex(d.v, f.index, false); ok && !fv.IsZero() {
				p.Default = plain(fv)
			}
			d.params = append(d.params, p)
		}
	}
	return d, nil
}

type decoder struct {
	v      reflect.Value
	params []sdk.Param
}

func (d *decoder) ConfigParams() []sdk.Param { return d.params }

func (d *decoder) DecodeConfig(config []byte) error {
	config = trim(config)
	if err := decode(d.v, config, ""); err != nil {
		return err
	}
	for _, p := range d.params {
		if p.Required {
			if _, ok := jsonfield.Get(config, p.Name); !ok || jsonfield.KindOf(config) != jsonfield.Object {
				return errors.New("missing required config key " + strconv.Quote(p.Name))
			}
		}
	}
	return nil
}

func trim(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// field is a key of a struct: its json name and where it lies (a path
// of field indexes through embedded structs).
type field struct {
	name     string
	index    []int
	typ      reflect.Type
	doc      string
	required bool
}

// fieldsOf lists t's keys: exported fields by their json names, fields of
// embedded structs without a name promoted (the shallower field wins a
// name, as in encoding/json).
func fieldsOf(t reflect.Type) []field {
	var out []field
	seen := map[string]int{} // name -> depth
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			name, _, _ := strings.Cut(tag, ",")
			if name == "-" && tag == "-" {
				continue
			}
			idx := append(append([]int(nil), index...), i)
			ft := f.Type
			if f.Anonymous && name == "" {
				et := ft
				if et.Kind() == reflect.Pointer {
					et = et.Elem()
				}
				if et.Kind() == reflect.Struct {
					if depth < 16 {
						walk(et, idx, depth+1)
					}
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if d, ok := seen[name]; ok && d <= depth {
				continue
			}
			seen[name] = depth
			out = append(out, field{name: name, index: idx, typ: ft, doc: f.Tag.Get("doc"), required: f.Tag.Get("required") == "true"})
		}
	}
	walk(t, nil, 0)
	return out
}

// fieldByIndex walks index from the struct v; alloc allocates nil embedded
// pointers on the way (for setting), else a nil one ends the walk.
func fieldByIndex(v reflect.Value, index []int, alloc bool) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !alloc {
					return reflect.Value{}, false
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

type jsonUnmarshaler interface{ UnmarshalJSON([]byte) error }
type textUnmarshaler interface{ UnmarshalText([]byte) error }

func isRawMessage(t reflect.Type) bool {
	return t.Name() == "RawMessage" && t.PkgPath() == "encoding/json"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func typeError(path string, t reflect.Type, raw []byte) error {
	return sdk.ConfigTypeError(path, article(typeName(t)), raw)
}

// decode sets v from the raw JSON value raw (valid JSON), path naming it
// for errors.
func decode(v reflect.Value, raw []byte, path string) error {
	kind := jsonfield.KindOf(raw)
	if kind == jsonfield.Null {
		// encoding/json gives null to UnmarshalJSON (json.RawMessage
		// keeps "null"); a pointer is set to nil instead, and anything
		// else is left alone.
		if v.Kind() != reflect.Pointer && v.CanAddr() {
			if u, ok := v.Addr().Interface().(jsonUnmarshaler); ok {
				if err := u.UnmarshalJSON(raw); err != nil {
					return keyed(path, err)
				}
				return nil
			}
		}
		switch v.Kind() {
		case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
			v.Set(reflect.Zero(v.Type()))
		}
		return nil
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		switch u := v.Addr().Interface().(type) {
		case jsonUnmarshaler:
			if err := u.UnmarshalJSON(raw); err != nil {
				return keyed(path, err)
			}
			return nil
		case textUnmarshaler:
			if kind != jsonfield.String {
				return typeError(path, v.Type(), raw)
			}
			s, _ := jsonfield.UnquoteString(raw)
			if err := u.UnmarshalText([]byte(s)); err != nil {
				return keyed(path, err)
			}
			return nil
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return decode(v.Elem(), raw, path)
	case reflect.Interface:
		if v.NumMethod() != 0 {
			return typeError(path, v.Type(), raw)
		}
		x, err := generic(raw)
		if err != nil {
			return keyed(path, err)
		}
		v.Set(reflect.ValueOf(x))
	case reflect.String:
		if kind != jsonfield.String {
			return typeError(path, v.Type(), raw)
		}
		s, _ := jsonfield.UnquoteString(raw)
		v.SetString(s)
	case reflect.Bool:
		if kind != jsonfield.Bool {
			return typeError(path, v.Type(), raw)
		}
		v.SetBool(raw[0] == 't')
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(string(raw), 10, v.Type().Bits())
		if kind != jsonfield.Number || err != nil {
			return typeError(path, v.Type(), raw)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		n, err := strconv.ParseUint(string(raw), 10, v.Type().Bits())
		if kind != jsonfield.Number || err != nil {
			return typeError(path, v.Type(), raw)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(string(raw), v.Type().Bits())
		if kind != jsonfield.Number || err != nil {
			return typeError(path, v.Type(), raw)
		}
		v.SetFloat(f)
	case reflect.Slice:
		if isRawMessage(v.Type()) {
			v.SetBytes(append([]byte(nil), raw...))
			return nil
		}
		if v.Type().Elem().Kind() == reflect.Uint8 && kind == jsonfield.String {
			s, _ := jsonfield.UnquoteString(raw)
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return keyed(path, errors.New("expected base64 text, got "+string(raw)))
			}
			v.SetBytes(b)
			return nil
		}
		if kind != jsonfield.Array {
			return typeError(path, v.Type(), raw)
		}
		s := reflect.MakeSlice(v.Type(), 0, 4)
		var err error
		jsonfield.Elements(raw, func(i int, e []byte) bool {
			s = reflect.Append(s, reflect.Zero(v.Type().Elem()))
			err = decode(s.Index(i), e, path+"["+strconv.Itoa(i)+"]")
			return err == nil
		})
		if err != nil {
			return err
		}
		v.Set(s)
	case reflect.Array:
		if kind != jsonfield.Array {
			return typeError(path, v.Type(), raw)
		}
		n := 0
		var err error
		jsonfield.Elements(raw, func(i int, e []byte) bool {
			n = i + 1
			if i < v.Len() {
				err = decode(v.Index(i), e, path+"["+strconv.Itoa(i)+"]")
			}
			return err == nil
		})
		if err != nil {
			return err
		}
		for i := n; i < v.Len(); i++ {
			v.Index(i).Set(reflect.Zero(v.Type().Elem()))
		}
	case reflect.Map:
		if kind != jsonfield.Object {
			return typeError(path, v.Type(), raw)
		}
		t := v.Type()
		if v.IsNil() {
			v.Set(reflect.MakeMap(t))
		}
		var err error
		jsonfield.Members(raw, func(k, e []byte) bool {
			key := unquoteKey(k)
			kv := reflect.New(t.Key()).Elem()
			switch t.Key().Kind() {
			case reflect.String:
				kv.SetString(key)
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				n, perr := strconv.ParseInt(key, 10, t.Key().Bits())
				if perr != nil {
					err = keyed(join(path, key), errors.New("expected an integer key"))
					return false
				}
				kv.SetInt(n)
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				n, perr := strconv.ParseUint(key, 10, t.Key().Bits())
				if perr != nil {
					err = keyed(join(path, key), errors.New("expected an integer key"))
					return false
				}
				kv.SetUint(n)
			default:
				err = keyed(path, errors.New("a map with keys of kind "+t.Key().Kind().String()+" cannot be decoded"))
				return false
			}
			ev := reflect.New(t.Elem()).Elem()
			if err = decode(ev, e, join(path, key)); err != nil {
				return false
			}
			v.SetMapIndex(kv, ev)
			return true
		})
		return err
	case reflect.Struct:
		if kind != jsonfield.Object {
			return typeError(path, v.Type(), raw)
		}
		fields := fieldsOf(v.Type())
		var err error
		jsonfield.Members(raw, func(k, e []byte) bool {
			key := unquoteKey(k)
			f := lookup(fields, key)
			if f == nil {
				err = errors.New("invalid config: unknown field " + strconv.Quote(join(path, key)))
				return false
			}
			fv, _ := fieldByIndex(v, f.index, true)
			err = decode(fv, e, join(path, f.name))
			return err == nil
		})
		return err
	default:
		return keyed(path, errors.New("a field of kind "+v.Kind().String()+" cannot be decoded"))
	}
	return nil
}

// lookup finds key's field: its exact name, else one equal under case
// folding (as encoding/json does).
func lookup(fields []field, key string) *field {
	for i := range fields {
		if fields[i].name == key {
			return &fields[i]
		}
	}
	for i := range fields {
		if strings.EqualFold(fields[i].name, key) {
			return &fields[i]
		}
	}
	return nil
}

func keyed(path string, err error) error {
	if path == "" {
		return errors.New("invalid config: " + err.Error())
	}
	return errors.New("invalid config: key " + strconv.Quote(path) + ": " + err.Error())
}

func unquoteKey(k []byte) string {
	if u, ok := jsonfield.UnquoteString(append(append([]byte{'"'}, k...), '"')); ok {
		return u
	}
	return string(k)
}

// generic decodes raw as encoding/json does into an interface{}: objects
// as map[string]any, arrays as []any, numbers as float64.
func generic(raw []byte) (any, error) {
	switch jsonfield.KindOf(raw) {
	case jsonfield.Null:
		return nil, nil
	case jsonfield.Bool:
		return raw[0] == 't', nil
	case jsonfield.Number:
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, errors.New("number " + string(raw) + " is out of range")
		}
		return f, nil
	case jsonfield.String:
		s, _ := jsonfield.UnquoteString(raw)
		return s, nil
	case jsonfield.Array:
		l := []any{}
		var err error
		jsonfield.Elements(raw, func(_ int, e []byte) bool {
			var x any
			x, err = generic(e)
			l = append(l, x)
			return err == nil
		})
		return l, err
	case jsonfield.Object:
		m := map[string]any{}
		var err error
		jsonfield.Members(raw, func(k, e []byte) bool {
			var x any
			x, err = generic(e)
			m[unquoteKey(k)] = x
			return err == nil
		})
		return m, err
	}
	return nil, errors.New("invalid JSON")
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

// typeName is t's type in the self-description (docs/abi.md): string,
// bool, int, float, "list of T", table, any.
func typeName(t reflect.Type) string {
	if isRawMessage(t) {
		return "any"
	}
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

// rawJSON is a default the SDK writes as it is.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

type jsonMarshaler interface{ MarshalJSON() ([]byte, error) }
type textMarshaler interface{ MarshalText() ([]byte, error) }

// plain turns a default value into one the SDK renders (string, bool,
// numbers, []any, map[string]any, a MarshalJSON value), as encoding/json
// would have written it; nil leaves the default out.
func plain(v reflect.Value) any {
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		if v.Kind() == reflect.Interface {
			return plain(v.Elem())
		}
	}
	if v.CanInterface() {
		switch m := v.Interface().(type) {
		case jsonMarshaler:
			b, err := m.MarshalJSON()
			if err != nil || !jsonfield.Valid(b) {
				return nil
			}
			return rawJSON(b)
		case textMarshaler:
			b, err := m.MarshalText()
			if err != nil {
				return nil
			}
			return string(b)
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		return plain(v.Elem())
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() // uint64, which the SDK renders
	case reflect.Float32:
		// as float32 text (0.1, not 0.10000000149011612)
		return rawJSON(strconv.AppendFloat(nil, v.Float(), 'g', -1, 32))
	case reflect.Float64:
		return v.Float()
	case reflect.Slice, reflect.Array:
		if isRawMessage(v.Type()) {
			if !jsonfield.Valid(v.Bytes()) {
				return nil
			}
			return rawJSON(v.Bytes())
		}
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return base64.StdEncoding.EncodeToString(v.Bytes())
		}
		if v.Kind() == reflect.Slice && v.IsNil() {
			return nil
		}
		l := make([]any, v.Len())
		for i := range l {
			l[i] = plain(v.Index(i))
		}
		return l
	case reflect.Map:
		if v.IsNil() {
			return nil
		}
		m := make(map[string]any, v.Len())
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			var ks string
			switch k.Kind() {
			case reflect.String:
				ks = k.String()
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				ks = strconv.FormatInt(k.Int(), 10)
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
				ks = strconv.FormatUint(k.Uint(), 10)
			default:
				return nil
			}
			m[ks] = plain(it.Value())
		}
		return m
	case reflect.Struct:
		m := map[string]any{}
		for _, f := range fieldsOf(v.Type()) {
			fv, ok := fieldByIndex(v, f.index, false)
			if !ok {
				continue
			}
			m[f.name] = plain(fv)
		}
		return m
	}
	return nil
}
