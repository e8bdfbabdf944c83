package pattern

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// errorCase is a pattern that must fail with exactly these problems
// ("CODE $.json.path"), in both forms where TOML can express it.
type errorCase struct {
	name    string
	pattern string
	want    []string
}

var errorCases = []errorCase{
	{"root is array", `[{"a":[1]}]`, []string{"PATTERN_NOT_OBJECT $"}},
	{"root is string", `"x"`, []string{"PATTERN_NOT_OBJECT $"}},
	{"root is null", `null`, []string{"PATTERN_NOT_OBJECT $"}},
	{"empty nested object", `{"data":{}}`, []string{"EMPTY_OBJECT $.data"}},
	{"empty deeper object", `{"data":{"a":{}}}`, []string{"EMPTY_OBJECT $.data.a"}},
	{"empty $or branch", `{"$or":[{},{"a":[1]}]}`, []string{"EMPTY_OBJECT $.$or[0]"}},
	{"scalar leaf string", `{"topic":"x"}`, []string{"NOT_ARRAY $.topic"}},
	{"scalar leaf number", `{"data":{"n":5}}`, []string{"NOT_ARRAY $.data.n"}},
	{"scalar leaf bool", `{"b":true}`, []string{"NOT_ARRAY $.b"}},
	{"scalar leaf null", `{"b":null}`, []string{"NOT_ARRAY $.b"}},
	{"empty leaf", `{"topic":[]}`, []string{"EMPTY_ARRAY $.topic"}},
	{"nested array", `{"topic":[["a"]]}`, []string{"NESTED_ARRAY $.topic[0]"}},
	{"nested array second", `{"topic":["a",[]]}`, []string{"NESTED_ARRAY $.topic[1]"}},
	{"two keys", `{"f":[{"prefix":"a","suffix":"b"}]}`, []string{"BAD_OPERATOR_OBJECT $.f[0]"}},
	{"no keys", `{"f":[{}]}`, []string{"BAD_OPERATOR_OBJECT $.f[0]"}},
	{"unknown operator", `{"f":[{"startsWith":"a"}]}`, []string{"UNKNOWN_OPERATOR $.f[0].startsWith"}},
	{"unknown operator or", `{"f":[{"$or":[1]}]}`, []string{"UNKNOWN_OPERATOR $.f[0].$or"}},
	{"prefix number", `{"f":[{"prefix":1}]}`, []string{"OPERAND_TYPE $.f[0].prefix"}},
	{"prefix empty", `{"f":[{"prefix":""}]}`, []string{"OPERAND_TYPE $.f[0].prefix"}},
	{"prefix list", `{"f":[{"prefix":["a"]}]}`, []string{"OPERAND_TYPE $.f[0].prefix"}},
	{"prefix ignore case empty", `{"f":[{"prefix":{"equals-ignore-case":""}}]}`, []string{"OPERAND_TYPE $.f[0].prefix.equals-ignore-case"}},
	{"prefix ignore case number", `{"f":[{"prefix":{"equals-ignore-case":1}}]}`, []string{"OPERAND_TYPE $.f[0].prefix.equals-ignore-case"}},
	{"prefix other object", `{"f":[{"prefix":{"wildcard":"a"}}]}`, []string{"OPERAND_TYPE $.f[0].prefix"}},
	{"suffix empty", `{"f":[{"suffix":""}]}`, []string{"OPERAND_TYPE $.f[0].suffix"}},
	{"suffix bool", `{"f":[{"suffix":true}]}`, []string{"OPERAND_TYPE $.f[0].suffix"}},
	{"contains empty", `{"f":[{"contains":""}]}`, []string{"OPERAND_TYPE $.f[0].contains"}},
	{"contains null", `{"f":[{"contains":null}]}`, []string{"OPERAND_TYPE $.f[0].contains"}},
	{"equals-ignore-case number", `{"f":[{"equals-ignore-case":5}]}`, []string{"OPERAND_TYPE $.f[0].equals-ignore-case"}},
	{"wildcard number", `{"f":[{"wildcard":5}]}`, []string{"OPERAND_TYPE $.f[0].wildcard"}},
	{"cidr number", `{"f":[{"cidr":10}]}`, []string{"OPERAND_TYPE $.f[0].cidr"}},
	{"exists string", `{"f":[{"exists":"true"}]}`, []string{"OPERAND_TYPE $.f[0].exists"}},
	{"exists number", `{"f":[{"exists":1}]}`, []string{"OPERAND_TYPE $.f[0].exists"}},
	{"numeric not array", `{"f":[{"numeric":5}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric"}},
	{"numeric three elements", `{"f":[{"numeric":[">",1,"<"]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric"}},
	{"numeric empty", `{"f":[{"numeric":[]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric"}},
	{"numeric bad operator", `{"f":[{"numeric":["=>",1]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric[0]"}},
	{"numeric operator not string", `{"f":[{"numeric":[1,1]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric[0]"}},
	{"numeric string operand", `{"f":[{"numeric":[">","1"]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric[1]"}},
	{"numeric both bad", `{"f":[{"numeric":["~","x",">",1]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric[0]", "NUMERIC_SYNTAX $.f[0].numeric[1]"}},
	{"numeric second pair", `{"f":[{"numeric":[">",1,"<",null]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric[3]"}},
	{"numeric overflow", `{"f":[{"numeric":[">",1e400]}]}`, []string{"NUMERIC_SYNTAX $.f[0].numeric[1]"}},
	{"literal overflow", `{"f":[1e400]}`, []string{"NUMERIC_SYNTAX $.f[0]"}},
	{"cidr prefix too long", `{"f":[{"cidr":"10.0.0.0/33"}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"cidr octet", `{"f":[{"cidr":"10.0.0.256/8"}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"cidr garbage", `{"f":[{"cidr":"localhost"}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"cidr empty", `{"f":[{"cidr":""}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"cidr v6 too long", `{"f":[{"cidr":"2001:db8::/129"}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"cidr zone", `{"f":[{"cidr":"fe80::1%eth0"}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"cidr three octets", `{"f":[{"cidr":"10.0.0/8"}]}`, []string{"CIDR_INVALID $.f[0].cidr"}},
	{"wildcard double star", `{"f":[{"wildcard":"a**b"}]}`, []string{"WILDCARD_SYNTAX $.f[0].wildcard"}},
	{"wildcard bad escape", `{"f":[{"wildcard":"a\\b"}]}`, []string{"WILDCARD_SYNTAX $.f[0].wildcard"}},
	{"wildcard trailing backslash", `{"f":[{"wildcard":"a\\"}]}`, []string{"WILDCARD_SYNTAX $.f[0].wildcard"}},
	{"anything-but empty list", `{"f":[{"anything-but":[]}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but"}},
	{"anything-but object in list", `{"f":[{"anything-but":["a",{"prefix":"b"}]}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but[1]"}},
	{"anything-but array in list", `{"f":[{"anything-but":[["a"]]}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but[0]"}},
	{"anything-but unknown form", `{"f":[{"anything-but":{"contains":"a"}}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but.contains"}},
	{"anything-but numeric form", `{"f":[{"anything-but":{"numeric":[">",1]}}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but.numeric"}},
	{"anything-but two keys", `{"f":[{"anything-but":{"prefix":"a","suffix":"b"}}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but"}},
	{"anything-but empty object", `{"f":[{"anything-but":{}}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but"}},
	{"anything-but prefix empty list", `{"f":[{"anything-but":{"prefix":[]}}]}`, []string{"ANYTHING_BUT_SYNTAX $.f[0].anything-but.prefix"}},
	{"anything-but prefix empty", `{"f":[{"anything-but":{"prefix":""}}]}`, []string{"OPERAND_TYPE $.f[0].anything-but.prefix"}},
	{"anything-but suffix number in list", `{"f":[{"anything-but":{"suffix":["a",1]}}]}`, []string{"OPERAND_TYPE $.f[0].anything-but.suffix[1]"}},
	{"anything-but bad wildcard", `{"f":[{"anything-but":{"wildcard":["ok*","a**"]}}]}`, []string{"WILDCARD_SYNTAX $.f[0].anything-but.wildcard[1]"}},
	{"or not array", `{"$or":{"a":[1]}}`, []string{"OR_SYNTAX $.$or"}},
	{"or one branch", `{"$or":[{"a":[1]}]}`, []string{"OR_SYNTAX $.$or"}},
	{"or empty", `{"$or":[]}`, []string{"OR_SYNTAX $.$or"}},
	{"or scalar branch", `{"$or":[{"a":[1]},"b"]}`, []string{"OR_SYNTAX $.$or[1]"}},
	{"or nested bad", `{"data":{"$or":[{"a":[1]},{"$or":[{"b":[2]}]}]}}`, []string{"OR_SYNTAX $.data.$or[1].$or"}},
	{"or branch inner problem", `{"$or":[{"a":"x"},{"b":[2]}]}`, []string{"NOT_ARRAY $.$or[0].a"}},
	{"six operators", `{"f":[{"prefix":"a"},{"prefix":"b"},{"prefix":"c"},{"prefix":"d"},{"prefix":"e"},{"prefix":"f"}]}`, []string{"TOO_MANY_EXPRESSIONS $.f"}},
	{"many problems at once", `{"a":"x","b":[],"c":[[1]],"d":[{"prefix":"a","suffix":"b"}],"e":[{"foo":1}],"f":[{"numeric":[">","x"]}],"g":{},"$or":[{"a":[1]}]}`,
		[]string{"OR_SYNTAX $.$or", "NOT_ARRAY $.a", "EMPTY_ARRAY $.b", "NESTED_ARRAY $.c[0]", "BAD_OPERATOR_OBJECT $.d[0]", "UNKNOWN_OPERATOR $.e[0].foo", "NUMERIC_SYNTAX $.f[0].numeric[1]", "EMPTY_OBJECT $.g"}},
	{"problems in one leaf", `{"f":[{"prefix":1},[2],{"cidr":"x"}]}`, []string{"OPERAND_TYPE $.f[0].prefix", "NESTED_ARRAY $.f[1]", "CIDR_INVALID $.f[2].cidr"}},
	{"key needing quotes", `{"a.b":{"c d":"x"}}`, []string{`NOT_ARRAY $["a.b"]["c d"]`}},
}

// okCases are near misses of the error rules that must compile.
var okCases = []string{
	`{}`,
	`{"f":[{"prefix":"a"},{"prefix":"b"},{"prefix":"c"},{"prefix":"d"},{"prefix":"e"},"x","y",1]}`,
	`{"f":[{"numeric":["<",10,">",0]}]}`,
	`{"f":[{"numeric":["!=",1,"!=",2]}]}`,
	`{"f":[{"numeric":[">",-1.7976931348623157e308]}]}`,
	`{"f":[{"cidr":"10.0.0.0/0"}, {"cidr":"::/0"}, {"cidr":"10.0.0.1"}, {"cidr":"::ffff:10.0.0.1/104"}]}`,
	`{"f":[{"wildcard":"a\\**"}, {"wildcard":"\\\\"}, {"wildcard":""}]}`,
	`{"f":[{"anything-but":null}, {"anything-but":[true,1,"a",null]}, {"anything-but":{"wildcard":"*"}}]}`,
	`{"f":[{"equals-ignore-case":""}]}`,
	`{"$or":[{"a":[1]},{"$or":[{"b":[2]},{"c":[3]}]}]}`,
	`{"f":"x","f":[1]}`, // duplicate keys: the last one wins
}

func TestErrors(t *testing.T) {
	for _, c := range errorCases {
		t.Run(c.name, func(t *testing.T) {
			_, errJ, _, errT, tomlOK := compileBoth(t, c.pattern)
			if got := problemKeys(errJ); !reflect.DeepEqual(got, c.want) {
				t.Errorf("JSON form of %s:\n got  %q\n want %q\n (%v)", c.pattern, got, c.want, errJ)
			}
			if tomlOK {
				if got := problemKeys(errT); !reflect.DeepEqual(got, c.want) {
					t.Errorf("TOML form of %s:\n got  %q\n want %q\n (%v)", c.pattern, got, c.want, errT)
				}
			}
			var pe *Error
			if !errors.As(errJ, &pe) {
				t.Fatalf("error is %T, want *Error", errJ)
			}
			for _, p := range pe.Problems {
				if p.Detail == "" || p.Offset < 0 || p.Offset >= len(c.pattern) {
					t.Errorf("problem %+v: want a detail and an offset inside the text", p)
				}
				if !strings.HasPrefix(p.Error(), "invalid event pattern at "+JSONPath(p.Path)+": "+p.Code+": ") {
					t.Errorf("message %q does not follow the contract", p.Error())
				}
			}
		})
	}
	for _, p := range okCases {
		pj, errJ, pt, errT, tomlOK := compileBoth(t, p)
		if errJ != nil || pj == nil {
			t.Errorf("CompileJSON(%s): %v", p, errJ)
		}
		if tomlOK && (errT != nil || pt == nil) {
			t.Errorf("Compile(TOML of %s): %v", p, errT)
		}
	}
}

func TestErrorOffsets(t *testing.T) {
	text := `{"data": {"amount": [{"numeric": [">", "100"]}], "topic": "orders"}}`
	_, err := CompileJSON([]byte(text))
	pe := err.(*Error)
	want := map[string]string{
		"NUMERIC_SYNTAX $.data.amount[0].numeric[1]": `"100"`,
		"NOT_ARRAY $.data.topic":                     `"orders"`,
	}
	if len(pe.Problems) != len(want) {
		t.Fatalf("got %v", err)
	}
	for _, p := range pe.Problems {
		k := p.Code + " " + JSONPath(p.Path)
		if !strings.HasPrefix(text[p.Offset:], want[k]) {
			t.Errorf("%s: offset %d points at %q, want %q", k, p.Offset, text[p.Offset:], want[k])
		}
	}
	if got := pe.Problems[0].Path; !reflect.DeepEqual(got, []string{"data", "amount", "[0]", "numeric", "[1]"}) {
		t.Errorf("path = %q", got)
	}
	if !strings.Contains(err.Error(), "\n") {
		t.Errorf("Error() should list both problems, one per line: %q", err.Error())
	}
}

func TestJSONSyntaxErrors(t *testing.T) {
	for _, c := range []struct {
		text string
		off  int
	}{
		{`{"a": [1,]}`, 9},
		{`{"a": [1]`, 9},
		{``, 0},
		{`{"a": [1]} x`, 11},
		{`{'a': [1]}`, 1},
	} {
		_, err := CompileJSON([]byte(c.text))
		pe, ok := err.(*Error)
		if !ok || len(pe.Problems) != 1 || pe.Problems[0].Code != CodeJSONSyntax {
			t.Errorf("%q: got %v, want one JSON_SYNTAX problem", c.text, err)
			continue
		}
		if pe.Problems[0].Offset != c.off {
			t.Errorf("%q: offset %d, want %d", c.text, pe.Problems[0].Offset, c.off)
		}
	}
}

func TestTOMLOnlyErrors(t *testing.T) {
	for _, c := range []struct {
		toml string
		want []string
	}{
		{`f = [1979-05-27T07:32:00Z]`, []string{"OPERAND_TYPE $.f[0]"}},
		{`f = 1979-05-27`, []string{"NOT_ARRAY $.f"}},
		{`f = [{ anything-but = 07:32:00 }]`, []string{"OPERAND_TYPE $.f[0].anything-but"}},
		{`f = [{ numeric = [">", inf] }]`, []string{"NUMERIC_SYNTAX $.f[0].numeric[1]"}},
		{`f = [nan]`, []string{"NUMERIC_SYNTAX $.f[0]"}},
		{"[[f]]\nprefix = \"a\"\nsuffix = \"b\"", []string{"BAD_OPERATOR_OBJECT $.f[0]"}},
	} {
		var tree map[string]any
		if _, err := toml.Decode(c.toml, &tree); err != nil {
			t.Fatalf("%s: %v", c.toml, err)
		}
		_, err := Compile(tree)
		if got := problemKeys(err); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.toml, got, c.want)
		}
		if err != nil {
			for _, p := range err.(*Error).Problems {
				if p.Offset != -1 {
					t.Errorf("TOML problems have no offset, got %d", p.Offset)
				}
			}
		}
	}
	// A nil tree is the empty pattern.
	p, err := Compile(nil)
	if err != nil || !p.MatchesAll() || !p.Match([]byte(`not even json`)) {
		t.Errorf("Compile(nil) = %v, %v; want a pattern matching everything", p, err)
	}
}

// orOf is a $or of n branches, branch i being fmt.Sprintf(branch, i, i, ...).
func orOf(n int, branch string) string {
	var br []string
	for i := 0; i < n; i++ {
		br = append(br, strings.ReplaceAll(branch, "%d", strconv.Itoa(i)))
	}
	return `{"$or":[` + strings.Join(br, ",") + `]}`
}

// checkEvents compiles pattern and checks Match on each event, against want
// and against the reference matcher.
func checkEvents(t *testing.T, pattern string, want map[string]bool) {
	t.Helper()
	p, err := CompileJSON([]byte(pattern))
	if err != nil {
		t.Fatalf("valid pattern (%d bytes) rejected: %v", len(pattern), err)
	}
	for ev, w := range want {
		if got := p.Match([]byte(ev)); got != w {
			t.Errorf("Match(%.80s..., %s) = %v, want %v", pattern, ev, got, w)
		}
		v, _ := decodeUseNumber([]byte(ev))
		if got := refMatch([]byte(pattern), v); got != w {
			t.Errorf("reference: Match(%.80s..., %s) = %v, want %v", pattern, ev, got, w)
		}
	}
}

// The contract limits a pattern only by TOO_MANY_EXPRESSIONS: a $or has as
// many branches as it needs, even where they outgrow one matcher's masks
// (64 value lists on one key, 64 sub-patterns under one key).
func TestOrBranchesAreNotCapped(t *testing.T) {
	for _, n := range []int{60, 64, 65, 70, 129, 1000} {
		last := strconv.Itoa(n - 1)
		checkEvents(t, orOf(n, `{"k":[%d]}`), map[string]bool{
			`{"k":0}`: true, `{"k":` + last + `}`: true, `{"k":33}`: n > 33, `{"k":` + strconv.Itoa(n) + `}`: false,
			`{"k":[` + strconv.Itoa(n) + `,` + last + `]}`: true, `{"k":"0"}`: false, `{}`: false,
		})
		checkEvents(t, orOf(n, `{"data":{"k":[%d]}}`), map[string]bool{
			`{"data":{"k":0}}`: true, `{"data":{"k":` + last + `}}`: true, `{"data":{"k":` + strconv.Itoa(n) + `}}`: false,
			`{"data":[{"k":-1},{"k":` + last + `}]}`: true, `{"data":"k"}`: false,
		})
	}
	checkEvents(t, orOf(257, `{"k%d":[1]}`), map[string]bool{
		`{"k256":1}`: true, `{"k0":1}`: true, `{"k257":1}`: false, `{"k256":2,"k3":1}`: true, `{"k256":2}`: false,
	})
	// Split deep inside, beside other fields and a $or of their own.
	deep := `{"source":["s"],"$or":[{"id":[1]},{"id":[2]}],"a":{"b":` + orOf(100, `{"k":[%d],"m":[{"exists":false}]}`) + `}}`
	checkEvents(t, deep, map[string]bool{
		`{"source":"s","id":2,"a":{"b":{"k":99}}}`:                        true,
		`{"source":"s","id":1,"a":{"b":{"k":0}}}`:                         true,
		`{"source":"s","id":3,"a":{"b":{"k":99}}}`:                        false,
		`{"source":"t","id":1,"a":{"b":{"k":99}}}`:                        false,
		`{"source":"s","id":1,"a":{"b":{"k":99,"m":0}}}`:                  false,
		`{"source":"s","id":1,"a":{"b":{"k":100}}}`:                       false,
		`{"source":"s","id":1,"a":[{"b":{"k":0,"m":1}},{"b":[{"k":5}]}]}`: true,
	})
	// The same-element rule holds across the split.
	items := `{"items":` + orOf(100, `{"sku":[%d],"qty":[%d]}`) + `}`
	checkEvents(t, items, map[string]bool{
		`{"items":[{"sku":5,"qty":6},{"sku":6,"qty":6}]}`: true,
		`{"items":[{"sku":5,"qty":6},{"sku":6,"qty":5}]}`: false,
		`{"items":[{"sku":99,"qty":99}]}`:                 true,
	})
	// A $or whose branches hold $or of their own that overflow.
	nested := orOf(3, `{"g":[%d],"x":`+orOf(80, `{"k":[%d]}`)+`}`)
	checkEvents(t, nested, map[string]bool{
		`{"g":2,"x":{"k":79}}`: true, `{"g":3,"x":{"k":79}}`: false, `{"g":0,"x":{"k":80}}`: false,
	})
}

// Multiplying $or out is exponential where sub-patterns with several
// alternatives each meet at one key, level after level: that is capped,
// and the error names where.
func TestTooComplex(t *testing.T) {
	// Ten $or groups of two branches naming one array's fields, under
	// different keys: independent, they compile.
	var b strings.Builder
	b.WriteString(`{"items":{"a":[0]}`)
	for i := 0; i < 10; i++ {
		b.WriteString(`,"x` + string(rune('a'+i)) + `":{"$or":[{"items":{"p":[1]}},{"items":{"q":[1]}}]}`)
	}
	b.WriteString(`}`)
	if _, err := CompileJSON([]byte(b.String())); err != nil {
		t.Errorf("independent $or groups under different keys must compile: %v", err)
	}
	// A pattern that repeats itself in its branches is big, not complex.
	rep := `{"items":{"a":[0]}}`
	for i := 0; i < 6; i++ {
		rep = `{"$or":[{"items":{"p` + string(rune('a'+i)) + `":[1]},"$or":[` + rep + `,{"z":[1]}]},{"items":{"q` + string(rune('a'+i)) + `":[1]},"$or":[` + rep + `,{"z":[2]}]}]}`
	}
	if _, err := CompileJSON([]byte(rep)); err != nil {
		t.Errorf("repeated $or (%d bytes): %v", len(rep), err)
	}
	// Each level: items holds a $or of two, AND-ed with the level below,
	// whose items hold their own: 2^n alternatives under items.
	chain := `{"items":{"$or":[{"p0":[1]},{"q0":[1]}]}}`
	for i := 1; i < 20; i++ {
		n := strconv.Itoa(i)
		chain = `{"$or":[{"items":{"$or":[{"p` + n + `":[1]},{"q` + n + `":[1]}]},"$or":[` + chain + `,{"z":[` + n + `]}]},{"z":[-` + n + `]}]}`
	}
	_, err := CompileJSON([]byte(chain))
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || pe.Problems[0].Code != CodeTooComplex {
		t.Fatalf("got %v, want one PATTERN_TOO_COMPLEX", err)
	}
	msg := pe.Problems[0].Error()
	for _, want := range []string{"$.$or[0].$or[0].", ".items: PATTERN_TOO_COMPLEX", "more than 65536 alternatives", `× 2 at key "items"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if off := pe.Problems[0].Offset; off < 0 || off >= len(chain) || chain[off] != '[' {
		t.Errorf("offset %d does not point at a $or", off)
	}
	// The one overflow a split cannot undo: more than 64 value lists
	// AND-ed on one key in one alternative.
	and := `{"x":[0]}`
	for i := 1; i <= 64; i++ {
		and = `{"x":[` + strconv.Itoa(i) + `],"$or":[` + and + `,{"y":[` + strconv.Itoa(i) + `]}]}`
	}
	_, err = CompileJSON([]byte(and))
	if !errors.As(err, &pe) || len(pe.Problems) != 1 || !strings.HasPrefix(pe.Problems[0].Error(), "invalid event pattern at $.x: PATTERN_TOO_COMPLEX: 65 different value lists") {
		t.Errorf("65 AND-ed value lists: got %v", err)
	}
}
