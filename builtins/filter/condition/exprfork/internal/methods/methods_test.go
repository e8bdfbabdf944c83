package methods

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The tables must be reflect's method sets, in reflect's order: the
// checker and the VM take a method's index from one and use it with the
// other. A Go release that adds a method to one of these types fails here
// with the line to add.
func TestTablesAreReflectsMethodSets(t *testing.T) {
	for typ, table := range tables {
		var want []string
		for i := 0; i < typ.NumMethod(); i++ {
			want = append(want, typ.Method(i).Name)
		}
		var got []string
		for _, e := range table {
			got = append(got, e.name)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%v: the table has\n  %v\nreflect has\n  %v", typ, got, want)
			continue
		}
		if NumMethod(typ) != typ.NumMethod() {
			t.Errorf("%v: NumMethod = %d, reflect's %d", typ, NumMethod(typ), typ.NumMethod())
		}
		for i := 0; i < typ.NumMethod(); i++ {
			r, m := typ.Method(i), Method(typ, i)
			if m.Name != r.Name || m.Type != r.Type || m.Index != r.Index {
				t.Errorf("%v: method %d is %s %v (index %d), reflect's %s %v (index %d)", typ, i, m.Name, m.Type, m.Index, r.Name, r.Type, r.Index)
			}
			if byName, ok := MethodByName(typ, r.Name); !ok || byName.Index != i {
				t.Errorf("%v: MethodByName(%q) = index %d, %v", typ, r.Name, byName.Index, ok)
			}
		}
	}
}

func TestBoundMethodsCallTheirReceiver(t *testing.T) {
	at := time.Date(2024, 3, 5, 14, 30, 0, 0, time.UTC)
	cases := []struct {
		recv any
		name string
		args []any
		want string
	}{
		{at, "Year", nil, "2024"},
		{at, "Weekday", nil, "Tuesday"},
		{at, "Format", []any{"2006-01-02"}, "2024-03-05"},
		{at, "Add", []any{time.Hour}, "2024-03-05 15:30:00 +0000 UTC"},
		{at, "Zone", nil, "UTC"}, // the first of its two results
		{90 * time.Minute, "Minutes", nil, "90"},
		{time.March, "String", nil, "March"},
		{time.UTC, "String", nil, "UTC"},
	}
	for _, c := range cases {
		v := reflect.ValueOf(c.recv)
		bound := ValueByName(v, c.name)
		want := v.MethodByName(c.name)
		if !bound.IsValid() || bound.Type() != want.Type() {
			t.Fatalf("%T.%s: bound method of type %v, reflect's %v", c.recv, c.name, bound, want.Type())
		}
		var in []reflect.Value
		for _, a := range c.args {
			in = append(in, reflect.ValueOf(a))
		}
		if got := fmt.Sprint(bound.Call(in)[0].Interface()); got != c.want {
			t.Errorf("%T.%s%v = %s, want %s", c.recv, c.name, c.args, got, c.want)
		}
	}
}

func TestTypesOutsideTheTableHaveNoMethods(t *testing.T) {
	v := reflect.ValueOf(strings.NewReader("x"))
	if NumMethod(v.Type()) != 0 || ValueByName(v, "Len").IsValid() || Value(v, 0).IsValid() {
		t.Fatal("a type outside the table has methods")
	}
	if _, ok := MethodByName(v.Type(), "Len"); ok {
		t.Fatal("MethodByName found a method of a type outside the table")
	}
}
