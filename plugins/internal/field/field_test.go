package field

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  string
	}{
		{"data.customer.id", []string{"data", "customer", "id"}, ""},
		{"$.data.items.0", []string{"data", "items", "0"}, ""},
		{"id", []string{"id"}, ""},
		{"", []string{}, ""},
		{"$", []string{}, ""},
		{"data..id", nil, "key 2 is empty"},
		{"$data", nil, "write $.key or key"},
		{"data.items[0]", nil, "only dotted keys"},
	} {
		got, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := MustNotBeRoot("key", "$"); err == nil || !strings.Contains(err.Error(), "key: name a field") {
		t.Errorf("root path accepted: %v", err)
	}
	if v, err := Choice("on_missing", "", "pass", "drop"); v != "pass" || err != nil {
		t.Errorf("default choice = %q, %v", v, err)
	}
	if _, err := Choice("on_missing", "keep", "pass", "drop"); err == nil || !strings.Contains(err.Error(), `on_missing: "keep" is not one of pass, drop`) {
		t.Errorf("bad choice: %v", err)
	}
}
