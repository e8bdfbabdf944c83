// Package methods is Sluice's one change to expr (see ../../SLUICE.md):
// expr finds the methods an expression calls in this closed table instead
// of through reflect's Method and MethodByName.
//
// Why: a reachable call of reflect.Type.Method, Value.Method or
// MethodByName with a name the linker cannot see makes it keep every
// exported method of every type in the program, in case one is called
// that way. For Sluice that was 4.5 MB of the 29.7 MB binary, and the
// pages of it the process touches.
//
// What it costs: an expression can call the methods of the values expr's
// own builtins return (now(), date(), duration(), timezone() and what their
// methods return), which is all a Sluice condition can reach: its
// environment is a map and its event values are JSON. Methods of other Go
// types are not found, as if the type had none.
package methods

import (
	"reflect"
	"sync"
	"time"
)

// entry is a method: its name, and its method expression (the function
// that takes the receiver first), as reflect.Type.Method gives it.
type entry struct {
	name string
	fn   any
}

// tables holds, for each type, its exported methods sorted by name: the
// order, and so the indexes, of reflect's method sets. The package's test
// checks each table against reflect's.
var tables = map[reflect.Type][]entry{
	reflect.TypeFor[time.Time](): {
		{"Add", time.Time.Add},
		{"AddDate", time.Time.AddDate},
		{"After", time.Time.After},
		{"AppendBinary", time.Time.AppendBinary},
		{"AppendFormat", time.Time.AppendFormat},
		{"AppendText", time.Time.AppendText},
		{"Before", time.Time.Before},
		{"Clock", time.Time.Clock},
		{"Compare", time.Time.Compare},
		{"Date", time.Time.Date},
		{"Day", time.Time.Day},
		{"Equal", time.Time.Equal},
		{"Format", time.Time.Format},
		{"GoString", time.Time.GoString},
		{"GobEncode", time.Time.GobEncode},
		{"Hour", time.Time.Hour},
		{"ISOWeek", time.Time.ISOWeek},
		{"In", time.Time.In},
		{"IsDST", time.Time.IsDST},
		{"IsZero", time.Time.IsZero},
		{"Local", time.Time.Local},
		{"Location", time.Time.Location},
		{"MarshalBinary", time.Time.MarshalBinary},
		{"MarshalJSON", time.Time.MarshalJSON},
		{"MarshalText", time.Time.MarshalText},
		{"Minute", time.Time.Minute},
		{"Month", time.Time.Month},
		{"Nanosecond", time.Time.Nanosecond},
		{"Round", time.Time.Round},
		{"Second", time.Time.Second},
		{"String", time.Time.String},
		{"Sub", time.Time.Sub},
		{"Truncate", time.Time.Truncate},
		{"UTC", time.Time.UTC},
		{"Unix", time.Time.Unix},
		{"UnixMicro", time.Time.UnixMicro},
		{"UnixMilli", time.Time.UnixMilli},
		{"UnixNano", time.Time.UnixNano},
		{"Weekday", time.Time.Weekday},
		{"Year", time.Time.Year},
		{"YearDay", time.Time.YearDay},
		{"Zone", time.Time.Zone},
		{"ZoneBounds", time.Time.ZoneBounds},
	},
	reflect.TypeFor[time.Duration](): {
		{"Abs", time.Duration.Abs},
		{"Hours", time.Duration.Hours},
		{"Microseconds", time.Duration.Microseconds},
		{"Milliseconds", time.Duration.Milliseconds},
		{"Minutes", time.Duration.Minutes},
		{"Nanoseconds", time.Duration.Nanoseconds},
		{"Round", time.Duration.Round},
		{"Seconds", time.Duration.Seconds},
		{"String", time.Duration.String},
		{"Truncate", time.Duration.Truncate},
	},
	reflect.TypeFor[time.Month](): {
		{"String", time.Month.String},
	},
	reflect.TypeFor[time.Weekday](): {
		{"String", time.Weekday.String},
	},
	reflect.TypeFor[*time.Location](): {
		{"String", (*time.Location).String},
	},
}

// NumMethod is t.NumMethod() for the types of the table, and 0 for the
// others.
func NumMethod(t reflect.Type) int {
	return len(tables[t])
}

// Method is t.Method(i): i must be below NumMethod(t).
func Method(t reflect.Type, i int) reflect.Method {
	e := tables[t][i]
	fn := reflect.ValueOf(e.fn)
	return reflect.Method{Name: e.name, Type: fn.Type(), Func: fn, Index: i}
}

// MethodByName is t.MethodByName(name).
func MethodByName(t reflect.Type, name string) (reflect.Method, bool) {
	for i, e := range tables[t] {
		if e.name == name {
			return Method(t, i), true
		}
	}
	return reflect.Method{}, false
}

// Value is v.Method(i): the method bound to v, a function without the
// receiver. It is the zero Value when v's type has no method i.
func Value(v reflect.Value, i int) reflect.Value {
	t := v.Type()
	if i < 0 || i >= NumMethod(t) {
		return reflect.Value{}
	}
	fn := reflect.ValueOf(tables[t][i].fn)
	variadic := fn.Type().IsVariadic()
	return reflect.MakeFunc(boundTypes()[t][i], func(args []reflect.Value) []reflect.Value {
		if variadic {
			return fn.CallSlice(append([]reflect.Value{v}, args...))
		}
		return fn.Call(append([]reflect.Value{v}, args...))
	})
}

// bound holds, per type and method, the method's type without its
// receiver (what Value's functions are): built once, on the first call of
// a method, rather than at every call.
var bound struct {
	once  sync.Once
	types map[reflect.Type][]reflect.Type
}

func boundTypes() map[reflect.Type][]reflect.Type {
	bound.once.Do(func() {
		bound.types = make(map[reflect.Type][]reflect.Type, len(tables))
		for t, table := range tables {
			for _, e := range table {
				ft := reflect.TypeOf(e.fn)
				in := make([]reflect.Type, ft.NumIn()-1)
				for j := range in {
					in[j] = ft.In(j + 1)
				}
				out := make([]reflect.Type, ft.NumOut())
				for j := range out {
					out[j] = ft.Out(j)
				}
				bound.types[t] = append(bound.types[t], reflect.FuncOf(in, out, ft.IsVariadic()))
			}
		}
	})
	return bound.types
}

// ValueByName is v.MethodByName(name).
func ValueByName(v reflect.Value, name string) reflect.Value {
	if m, ok := MethodByName(v.Type(), name); ok {
		return Value(v, m.Index)
	}
	return reflect.Value{}
}
