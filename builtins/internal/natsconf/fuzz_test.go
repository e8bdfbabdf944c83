package natsconf

import (
	"strings"
	"testing"
)

// FuzzSubjectProblem checks that a subject accepted for publishing has no
// empty token, no whitespace and no wildcard, and that one accepted with
// wildcards has them only as whole tokens, '>' last.
func FuzzSubjectProblem(f *testing.F) {
	for _, s := range []string{"orders.eu", "orders.*", "orders.>", "a..b", ".a", "a.>.b", "a*", "", "a b", "é.ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, wild := range []bool{false, true} {
			if SubjectProblem(s, wild) != "" {
				continue
			}
			toks := strings.Split(s, ".")
			for i, tok := range toks {
				if tok == "" || strings.ContainsAny(tok, " \t\r\n") {
					t.Fatalf("%q accepted (wild %v) with token %q", s, wild, tok)
				}
				if strings.ContainsAny(tok, "*>") && (!wild || tok != "*" && tok != ">" || tok == ">" && i != len(toks)-1) {
					t.Fatalf("%q accepted (wild %v) with token %q", s, wild, tok)
				}
			}
		}
	})
}
