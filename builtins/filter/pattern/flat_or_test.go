package pattern

import (
	"fmt"
	"strings"
	"testing"
)

// A flat pattern (no nested $or at all): 100 fields beside one $or
// of 1,500 one-field branches. The compiler before the merge cap accepted it; a first
// cap of 65,536 refused it as "too complex", telling the user to flatten a nested $or
// that does not exist, so a task that ran before the upgrade no longer
// loads.
func TestFlatOrWithManySiblingsIsAccepted(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 100 {
		fmt.Fprintf(&b, `"f%d":["x"],`, i)
	}
	b.WriteString(`"$or":[`)
	for i := range 1500 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"k%d":["v"]}`, i)
	}
	b.WriteString("]}")
	if _, err := CompileJSON([]byte(b.String())); err != nil {
		t.Fatalf("a flat pattern of %d bytes (one $or, not nested) was refused: %v", b.Len(), err)
	}
}
