package pattern

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
)

var knownCodes = map[string]bool{
	CodePatternNotObject: true, CodeEmptyObject: true, CodeNotArray: true, CodeEmptyArray: true,
	CodeNestedArray: true, CodeBadOperatorObject: true, CodeUnknownOperator: true, CodeOperandType: true,
	CodeNumericSyntax: true, CodeCIDRInvalid: true, CodeWildcardSyntax: true, CodeAnythingButSyntax: true,
	CodeOrSyntax: true, CodeTooManyExpressions: true, CodeJSONSyntax: true, CodeTooComplex: true,
}

func addPatternSeeds(f *testing.F) {
	for _, c := range append(append([]matchCase{}, specCases...), ownCases...) {
		f.Add(c.pattern)
	}
	for _, c := range errorCases {
		f.Add(c.pattern)
	}
}

// FuzzCompile: compiling never panics; an error is an *Error whose
// problems all have a known code, a detail and an offset inside the text;
// JSON_SYNTAX exactly when the text is not JSON.
func FuzzCompile(f *testing.F) {
	addPatternSeeds(f)
	f.Fuzz(func(t *testing.T, text string) {
		p, err := CompileJSON([]byte(text))
		if err == nil {
			if p == nil {
				t.Fatal("nil pattern without error")
			}
			p.Match([]byte(`{"a":1,"data":{"x":[1,"y",null,{"z":true}]}}`))
			return
		}
		var pe *Error
		if !errors.As(err, &pe) || len(pe.Problems) == 0 {
			t.Fatalf("error %T %v: want *Error with problems", err, err)
		}
		syntax := false
		for _, pr := range pe.Problems {
			if !knownCodes[pr.Code] || pr.Detail == "" {
				t.Fatalf("problem %+v: unknown code or no detail", pr)
			}
			if pr.Offset < 0 || pr.Offset > len(text) {
				t.Fatalf("problem %+v: offset outside the text (len %d)", pr, len(text))
			}
			if !strings.HasPrefix(pr.Error(), "invalid event pattern at $") {
				t.Fatalf("message %q does not follow the contract", pr.Error())
			}
			syntax = syntax || pr.Code == CodeJSONSyntax
		}
		if syntax != !json.Valid([]byte(text)) {
			t.Fatalf("JSON_SYNTAX reported=%v but json.Valid=%v for %q", syntax, json.Valid([]byte(text)), text)
		}
	})
}

// tomlForm compiles the TOML form of a JSON pattern (nil when TOML cannot
// express it).
func tomlForm(pattern string) *Pattern {
	text, ok := tomlText(pattern)
	if !ok {
		return nil
	}
	var doc map[string]any
	if _, err := toml.Decode(text, &doc); err != nil {
		return nil
	}
	tree, isMap := doc["pattern"].(map[string]any)
	if !isMap {
		return nil
	}
	pt, err := Compile(tree)
	if err != nil {
		return nil
	}
	return pt
}

// checkAgainstReference matches event with the compiled pattern and
// compares with the reference matcher and with pt, the pattern's TOML form
// (when not nil).
func checkAgainstReference(t *testing.T, pattern string, p, pt *Pattern, event []byte) {
	checkDecoded(t, pattern, p, pt, event, nil)
}

// checkDecoded is checkAgainstReference with the event already decoded
// (ev nil: decode it here).
func checkDecoded(t *testing.T, pattern string, p, pt *Pattern, event []byte, ev any) {
	got := p.Match(event)
	if !json.Valid(event) {
		if got && !p.MatchesAll() {
			t.Fatalf("malformed event %q matched %s", event, pattern)
		}
		return
	}
	if !utf8.Valid(event) || !utf8.ValidString(pattern) {
		return // encoding/json rewrites invalid UTF-8; the matcher compares bytes
	}
	if strings.Count(pattern, "$or") > 6 {
		return // the reference multiplies $or out; keep it fast
	}
	if ev == nil {
		var ok bool
		if ev, ok = decodeUseNumber(event); !ok {
			return
		}
	}
	if want := refMatch([]byte(pattern), ev); got != want {
		t.Fatalf("pattern %s\nevent %s\nmatcher says %v, reference says %v", pattern, event, got, want)
	}
	if pt != nil && pt.Match(event) != got {
		t.Fatalf("pattern %s: TOML form says %v on %s", pattern, !got, event)
	}
}

// FuzzMatch fuzzes a pattern and an event together.
func FuzzMatch(f *testing.F) {
	for _, c := range append(append([]matchCase{}, specCases...), ownCases...) {
		f.Add(c.pattern, c.event)
	}
	f.Fuzz(func(t *testing.T, pattern string, event string) {
		p, err := CompileJSON([]byte(pattern))
		if err != nil {
			return
		}
		checkAgainstReference(t, pattern, p, tomlForm(pattern), []byte(event))
	})
}

// FuzzMatchEvents fuzzes the event against every pattern of the
// conformance tables.
func FuzzMatchEvents(f *testing.F) {
	type compiled struct {
		text  string
		p, pt *Pattern
	}
	var patterns []compiled
	seen := map[string]bool{}
	for _, c := range append(append([]matchCase{}, specCases...), ownCases...) {
		f.Add([]byte(c.event))
		if seen[c.pattern] {
			continue
		}
		seen[c.pattern] = true
		patterns = append(patterns, compiled{c.pattern, MustCompileJSON(c.pattern), tomlForm(c.pattern)})
	}
	f.Fuzz(func(t *testing.T, event []byte) {
		ev, _ := decodeUseNumber(event)
		for _, c := range patterns {
			checkDecoded(t, c.text, c.p, c.pt, event, ev)
		}
	})
}

// FuzzParseFloat checks the fast number path against strconv.
func FuzzParseFloat(f *testing.F) {
	for _, s := range []string{"0", "-0.5", "250.5", "1655952591589", "0.000123", "1e5", "123456789012345.6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !json.Valid([]byte(s)) || s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
			return
		}
		got, ok := parseFloat([]byte(s))
		want, err := strconv.ParseFloat(s, 64)
		if ok != (err == nil) || (ok && got != want) {
			t.Fatalf("parseFloat(%s) = %v, %v; strconv says %v, %v", s, got, ok, want, err)
		}
	})
}
