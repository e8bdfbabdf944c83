package mqttconf

import (
	"strings"
	"testing"
)

// FuzzValidateFilter: an accepted filter has wildcards only as whole
// levels, # only last, and a shared one names a group and a filter.
func FuzzValidateFilter(f *testing.F) {
	for _, s := range []string{"a/b", "a/+/c", "a/#", "#", "+", "$share/g/a/#", "$share/g", "a/#/b", "a+/b", "", "$SYS/broker/uptime"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, filter string) {
		if ValidateFilter(filter) != "" {
			return
		}
		inner := filter
		if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
			_, inner, _ = strings.Cut(rest, "/")
		}
		levels := strings.Split(inner, "/")
		for i, l := range levels {
			if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
				t.Fatalf("accepted %q with a misplaced #", filter)
			}
			if strings.Contains(l, "+") && l != "+" {
				t.Fatalf("accepted %q with a partial +", filter)
			}
		}
		if inner == "" {
			t.Fatalf("accepted an empty filter %q", filter)
		}
	})
}
