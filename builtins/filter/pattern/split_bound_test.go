package pattern

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// keysOfLargeOr is a pattern whose keys k0..k(keys-1) each hold a $or of
// branches one-value branches: each key needs more value lists than one
// matcher holds, so each is split in two, and the parts of every key are
// combined with those of the others: 2^keys matchers.
func keysOfLargeOr(keys, branches int) string {
	fields := make([]string, keys)
	for k := range fields {
		br := make([]string, branches)
		for i := range br {
			br[i] = fmt.Sprintf(`{"v":[%d]}`, i)
		}
		fields[k] = fmt.Sprintf(`"k%d":{"$or":[%s]}`, k, strings.Join(br, ","))
	}
	return "{" + strings.Join(fields, ",") + "}"
}

// TestSplitMatchersAreBounded: splitting a pattern too big for one matcher
// doubled the matchers with every key that needed a split: 12 keys of a
// 65-branch $or (9 KB) compiled into 4,096 matchers (seconds to compile,
// and every event read 4,096 times), 20 keys never finished compiling.
// The split is capped like the other steps of the compiler: such a
// pattern is PATTERN_TOO_COMPLEX, and a few such keys still compile.
func TestSplitMatchersAreBounded(t *testing.T) {
	// (Not checked against the reference matcher, which multiplies the
	// $or out: 65^4 terms.)
	small := MustCompileJSON(keysOfLargeOr(4, 65))
	for ev, want := range map[string]bool{
		`{"k0":{"v":64},"k1":{"v":0},"k2":{"v":33},"k3":{"v":[70,1]}}`: true,
		`{"k0":{"v":65},"k1":{"v":0},"k2":{"v":33},"k3":{"v":1}}`:      false,
		`{"k0":{"v":64},"k1":{"v":0},"k2":{"v":33}}`:                   false,
	} {
		if got := small.Match([]byte(ev)); got != want {
			t.Errorf("Match(%s) = %v, want %v", ev, got, want)
		}
	}
	if n := len(small.more) + 1; n != 16 {
		t.Errorf("4 keys that each need a split: %d matchers, want 16", n)
	}
	big := keysOfLargeOr(12, 65)
	p, err := CompileJSON([]byte(big))
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Code != CodeTooComplex ||
		!strings.Contains(pe.Problems[0].Detail, "splitting this pattern into matchers") {
		n := 0
		if p != nil {
			n = len(p.more) + 1
		}
		t.Fatalf("12 keys that each need a split (%d bytes): err = %v (%d matchers), want one PATTERN_TOO_COMPLEX about the split", len(big), err, n)
	}
}
