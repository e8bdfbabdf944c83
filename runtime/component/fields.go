package component

import (
	"encoding"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Field documents one config key, derived from a config struct's tags:
//
//	toml:"name"       the key (required to be decoded at all)
//	doc:"..."         what it does, for users
//	required:"true"   must be present
//	enum:"a,b"        allowed values of a string
//	min:"1" max:"32"  bounds of a number
type Field struct {
	Name     string
	Type     string // string, bool, int, float, duration, size, list of T, table, any
	Doc      string
	Default  string // rendered from the value New returned; "" when zero
	Required bool
	Enum     []string
	Min, Max string
	Fields   []Field // keys of a nested table
}

var (
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	durationType    = reflect.TypeFor[Duration]()
	sizeType        = reflect.TypeFor[ByteSize]()
)

// FieldsOf lists the documented keys of the config struct cfg points to.
func FieldsOf(cfg any) ([]Field, error) {
	v := reflect.ValueOf(cfg)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config must be a pointer to a struct, got %T", cfg)
	}
	return fieldsOf(v.Elem())
}

func fieldsOf(v reflect.Value) ([]Field, error) {
	var out []Field
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		name, ok := tomlName(sf)
		if !ok {
			continue
		}
		f := Field{
			Name:     name,
			Type:     typeName(sf.Type),
			Doc:      sf.Tag.Get("doc"),
			Required: sf.Tag.Get("required") == "true",
			Min:      sf.Tag.Get("min"),
			Max:      sf.Tag.Get("max"),
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.Enum = strings.Split(e, ",")
		}
		fv := v.Field(i)
		f.Default = renderDefault(fv)
		st := sf.Type
		if st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		if st.Kind() == reflect.Struct && !isLeafType(st) {
			sub := fv
			if sub.Kind() == reflect.Pointer {
				if sub.IsNil() {
					sub = reflect.New(st)
				}
				sub = sub.Elem()
			}
			fs, err := fieldsOf(sub)
			if err != nil {
				return nil, err
			}
			f.Fields = fs
		}
		out = append(out, f)
	}
	return out, nil
}

func tomlName(sf reflect.StructField) (string, bool) {
	if !sf.IsExported() {
		return "", false
	}
	tag := sf.Tag.Get("toml")
	if tag == "" || tag == "-" {
		return "", false
	}
	name, _, _ := strings.Cut(tag, ",")
	return name, name != ""
}

func isLeafType(t reflect.Type) bool {
	return t == durationType || t == sizeType || reflect.PointerTo(t).Implements(textUnmarshaler) || t == reflect.TypeFor[time.Time]()
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == sizeType:
		return "size"
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		return "string"
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
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "table of " + typeName(t.Elem())
	case reflect.Struct:
		return "table"
	case reflect.Pointer:
		return typeName(t.Elem())
	case reflect.Interface:
		return "any"
	}
	return t.String()
}

func renderDefault(v reflect.Value) string {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	if v.IsZero() {
		return ""
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String()
	}
	switch v.Kind() {
	case reflect.String:
		return fmt.Sprintf("%q", v.String())
	case reflect.Struct, reflect.Map:
		return ""
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range v.Len() {
			parts[i] = renderDefault(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v.Interface())
}
