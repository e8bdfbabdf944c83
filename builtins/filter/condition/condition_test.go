package condition

import (
	"errors"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// beyond53 finds an integer literal of 16 digits or more (past 2^53).
var beyond53 = regexp.MustCompile(`\d{16,}`)

var event = []byte(`{"specversion":"1.0","id":"e-1","source":"acs:alikafka","type":"alikafka:Topic:Message",
	"nothing":null,
	"data":{"topic":"orders","partition":7,"timestamp":1655952591589,"key":"user-42",
		"value":{"amount":150,"price":99.5,"region":"eu-west-1","vip":true,"note":null,
			"big":9007199254740993,"huge":123456789012345678901234567890,"neg":-0,
			"items":[{"sku":"A","qty":1},{"sku":"B","qty":3}],"tags":["x","y"],"caf\u00e9":"ok"}}}`)

func TestEval(t *testing.T) {
	cases := []struct {
		src  string
		want bool
	}{
		{`data.value.amount > 100 && data.value.region startsWith "eu-"`, true},
		{`data.value.amount > 200`, false},
		{`data.value.price > 99`, true},      // float vs int literal
		{`data.value.amount > 99.5`, true},   // int vs float literal
		{`data.value.amount == 150.0`, true}, // mixed equality
		{`data.partition in [1, 7]`, true},
		{`data.timestamp > 1655952591000`, true}, // epoch ms, exact int
		{`data.value.big == 9007199254740993`, true},
		{`data.value.big != 9007199254740992`, true}, // int64 kept exact
		{`data.value.huge > 1e29`, true},             // beyond int64: float64
		{`data.value.neg == 0`, true},
		{`data.value.vip`, true},
		{`!data.value.vip`, false},
		{`data.value.note == nil`, true},
		{`data.value.note`, false}, // null result is false
		{`nothing == nil`, true},
		{`source == "acs:alikafka" and type endsWith ":Message"`, true},
		{`source matches "^acs:"`, true},
		{`data.value["café"] == "ok"`, true},
		{`data.value.items[1].sku == "B"`, true},
		{`data.value.items[-1].qty == 3`, true},
		{`any(data.value.items, .qty > 2)`, true},
		{`all(data.value.items, .qty > 2)`, false},
		{`len(data.value.tags) == 2 && "y" in data.value.tags`, true},
		{`"region" in data.value`, true},
		{`"nope" in data.value`, false},
		{`let a = data.value.amount; a * 2 == 300`, true},
		{`upper(data.key) == "USER-42"`, true},
		// missing fields make the whole condition false
		{`data.value.missing > 100`, false},
		{`data.value.missing == nil`, false},
		{`data.value.missing > 100 || data.partition == 7`, false},
		{`true || data.value.missing > 100`, true}, // short-circuit: never read
		{`nosuch == "x"`, false},
		{`data.value.items[5].sku == "A"`, false},
		{`data.value.region.inner == 1`, false}, // field of a string
		{`data.value.tags.first == 1`, false},   // field of an array
		{`any(data.value.items, .color == "red")`, false},
		// optional chaining and ?? read missing fields as nil
		{`data.value?.missing == nil`, true},
		{`data?.nope?.deeper == nil`, true},
		{`data.value?.nope.deeper == nil`, true},
		{`(data.value.missing ?? 5) > 3`, true},
		{`(data.nope.deeper ?? "d") == "d"`, true},
		{`(data.value.amount ?? 0) == 150`, true},
		{`$env.source == "acs:alikafka"`, true},
		{`$env["data"].partition == 7`, true},
		// methods of the values expr's date builtins return (the closed
		// table of exprfork/internal/methods): typed at compile time, and
		// found by name at run time through an untyped value
		{`date("2022-06-23T02:49:51Z").Year() == 2022`, true},
		{`date("2024-03-05").Weekday().String() == "Tuesday"`, true},
		{`date("2024-03-05").Add(duration("36h")).Format("Jan 2") == "Mar 6"`, true},
		{`duration("90m").Minutes() == 90`, true},
		{`date("2024-03-05T10:00:00Z").In(timezone("UTC")).Hour() == 10`, true},
		{`let t = date("2024-03-05"); t.Month().String() == "March"`, true},
		{`[date("2024-03-05")][0].YearDay() == 65`, true},
		{`now().Year() >= 2024 && now().After(date("2024-01-01"))`, true},
	}
	for _, c := range cases {
		t.Run(c.src, func(t *testing.T) {
			if strconv.IntSize == 32 && beyond53.MatchString(c.src) {
				t.Skip("integers past 2^53 are floats on 32-bit platforms: not exact (widenIntegers)")
			}
			cond, err := Compile(c.src)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := cond.Eval(event)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if got != c.want {
				t.Errorf("Eval = %v, want %v", got, c.want)
			}
		})
	}
}

func TestRuntimeErrors(t *testing.T) {
	for _, c := range []struct{ src, msg string }{
		{`data.value.region + 1 > 0`, "invalid operation"},
		{`data.value.amount`, "bool"},
		{`data.value.region > 3`, "invalid operation"},
		{`data.value.items[0] > 1`, "invalid operation"},
	} {
		cond := MustCompile(c.src)
		got, err := cond.Eval(event)
		var re *RuntimeError
		if got || !errors.As(err, &re) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: got %v, %v; want a RuntimeError mentioning %q", c.src, got, err, c.msg)
		}
	}
	for _, ev := range []string{`{"data":`, ``, `{"a":1} {"b":2}`, "{\"a\":\"\x01\"}"} {
		got, err := MustCompile(`true`).Eval([]byte(ev))
		var re *RuntimeError
		if got || !errors.As(err, &re) {
			t.Errorf("malformed event %q: got %v, %v; want a RuntimeError", ev, got, err)
		}
	}
	// A non-object event has no fields.
	if got, err := MustCompile(`data.x == 1`).Eval([]byte(`[1,2]`)); got || err != nil {
		t.Errorf("array event: %v, %v", got, err)
	}
}

// A run-time error is the event's dead-letter reason: it names the
// operation that failed as written and its column, so that with two
// comparisons the operator knows which field had the wrong type; Go's
// text for a value of the wrong type in a builtin or an operator
// ("interface conversion: interface {} is int, not string") becomes one
// naming the function and the kinds. The reason was expr's message alone
// (found in review).
func TestRuntimeErrorNamesTheOperation(t *testing.T) {
	for _, c := range []struct{ cond, event, want string }{
		{`data.amount > 100 && data.region > 5`, `{"data":{"amount":101,"region":"eu"}}`, "invalid operation: string > int in `data.region > 5` (column 34)"},
		{`upper(data.name) == "A"`, `{"data":{"name":7}}`, "upper() needs a string, got a number in `upper(data.name)` (column 1)"},
		{`lower(data.name) == "a"`, `{"data":{"name":null}}`, "lower() needs a string, got null in `lower(data.name)`"},
		{`join(data.tags, ",") == "a"`, `{"data":{"tags":["a",{}]}}`, "join() needs a string, got an object in `join(data.tags, \",\")`"},
		{`!data.flag`, `{"data":{"flag":"yes"}}`, "`!` needs a boolean, got a string in `!data.flag`"},
		{`data.flag && true`, `{"data":{"flag":[1]}}`, "a boolean is needed, got an array in `data.flag` (column 1)"},
		{"data.n > 0 &&\n  data.region > 5", `{"data":{"n":1,"region":"eu"}}`, "in `data.region > 5` (line 2, column 15)"},
	} {
		_, err := MustCompile(c.cond).Eval([]byte(c.event))
		var re *RuntimeError
		if !errors.As(err, &re) {
			t.Fatalf("%s: got %v, want a RuntimeError", c.cond, err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s on %s: reason %q, want it to contain %q", c.cond, c.event, err, c.want)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	for _, c := range []struct {
		src    string
		offset int
		msg    string
	}{
		{`data.value.amount +`, 18, "unexpected token EOF"},
		{`1 + 2`, 0, "expected bool"},
		{`"é" == "x" &&`, 13, "unexpected token EOF"},
		{`data.x > 1 && foo(2)`, 14, "unknown function foo"},
		{`data.x >> 1`, 8, ""},
		{"", 0, "empty"},
		{"   ", 0, "empty"},
		{`data.x > (1`, 10, ""},
		{"data.x > 1 &&\n  ]", 16, ""},
	} {
		_, err := Compile(c.src)
		var ce *CompileError
		if !errors.As(err, &ce) {
			t.Errorf("%q: got %v, want a CompileError", c.src, err)
			continue
		}
		if ce.Offset != c.offset || !strings.Contains(ce.Msg, c.msg) {
			t.Errorf("%q: offset %d msg %q, want offset %d msg containing %q", c.src, ce.Offset, ce.Msg, c.offset, c.msg)
		}
		if ce.Offset < 0 || ce.Offset > len(c.src) {
			t.Errorf("%q: offset %d outside the source", c.src, ce.Offset)
		}
	}
}

func describeNeed(n *need) string {
	if n == nil {
		return "all"
	}
	if n.full {
		return "*"
	}
	var keys []string
	for k := range n.kids {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+":"+describeNeed(n.kids[k]))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

func TestDecodesOnlyWhatItReads(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{`source == "a"`, `{source:*}`},
		{`data.value.amount > 1 && len(data.items) > 0`, `{data:{items:*,value:{amount:*}}}`},
		{`data.value.amount > 1 && "k" in data`, `{data:*}`},
		{`data["value"]["amount"] > 1`, `{data:{value:{amount:*}}}`},
		{`data.items[0].sku == "A"`, `{data:{items:*}}`},
		{`data[source] == 1`, `{data:*,source:*}`},
		{`data?.value?.amount == 1`, `{data:{value:{amount:*}}}`},
		{`let v = data.value; v.amount > 1`, `{data:{value:*}}`},
		{`any(data.items, .sku == "A")`, `{data:{items:*}}`},
		{`$env.a == 1`, `{a:*}`},
		{`len($env) > 0`, `all`},
		{`$env["data"].x == 1`, `{data:{x:*}}`},
		{`true`, `{}`},
	} {
		if got := describeNeed(MustCompile(c.src).need); got != c.want {
			t.Errorf("%s: needs %s, want %s", c.src, got, c.want)
		}
	}
	c := MustCompile(`source == "a"`)
	// A broken member the condition does not read still fails validation:
	// the event must be JSON.
	if _, err := c.Eval([]byte(`{"source":"a","data":{"x":}}`)); err == nil {
		t.Error("want an error for malformed JSON")
	}
	if got, err := c.Eval([]byte(`{"data":{"x":[1,2,{"y":"\u00e9"}]},"source":"a"}`)); !got || err != nil {
		t.Errorf("got %v, %v", got, err)
	}
	// Partial decoding gives the same answers as full decoding.
	for _, src := range []string{`data.value.amount > 100`, `data.value.items[1].sku == "B"`, `"region" in data.value`,
		`data.value["caf\u00e9"] == "ok"`, `len(data.value.tags) == 2`, `data.value.missing == 1`} {
		partial, _ := MustCompile(src).Eval(event)
		full, _ := MustCompile(`$env != nil && (` + src + `)`).Eval(event)
		if partial != full {
			t.Errorf("%s: partial decoding says %v, full %v", src, partial, full)
		}
	}
}

// A name bound by `let` is the let's own only in its body: the same name
// elsewhere in the expression (before the let, after the closure or the
// parentheses that hold it, in the let's own value) is the event's member.
// The names used to be collected for the whole expression, so the outer
// `id` was neither decoded nor fetched and read as nil (found in review).
func TestLetNameIsScopedToItsBody(t *testing.T) {
	for _, c := range []struct{ cond, event, need string }{
		{`any(data.items, {let id = #; id > 0}) && id == "evt-1"`, `{"id":"evt-1","data":{"items":[1]}}`, `{data:{items:*},id:*}`},
		{`(let source = "x"; source == "x") && source == "billing"`, `{"source":"billing"}`, `{source:*}`},
		{`source == "billing" && all(data.items, {let source = #.origin; source != "blocked"})`, `{"source":"billing","data":{"items":[{"origin":"web"}]}}`, `{data:{items:*},source:*}`},
		{`let id = id + "-x"; id == "evt-1-x"`, `{"id":"evt-1"}`, `{id:*}`},
		{`let a = 1; let b = a + 1; b == 2 && a == 1`, `{"a":5}`, `{}`},
	} {
		cond := MustCompile(c.cond)
		if got := describeNeed(cond.need); got != c.need {
			t.Errorf("%s: decodes %s, want %s", c.cond, got, c.need)
		}
		ok, err := cond.Eval([]byte(c.event))
		if err != nil || !ok {
			t.Errorf("%s on %s: got (%v, %v), want (true, nil): the name outside the let's scope is the event's field", c.cond, c.event, ok, err)
		}
	}
}

func TestDuplicateKeysLastWins(t *testing.T) {
	got, err := MustCompile(`data.v == 2`).Eval([]byte(`{"data":{"v":1,"v":2}}`))
	if !got || err != nil {
		t.Errorf("got %v, %v", got, err)
	}
}

func BenchmarkEval(b *testing.B) {
	ev := []byte(`{"specversion":"1.0","id":"8e215af8-0000-4249-8645-f96c1026aaaa","source":"acs:alikafka","type":"alikafka:Topic:Message","time":"2022-06-23T02:49:51.589Z","data":{"topic":"orders","partition":7,"offset":25,"value":{"region":"eu-west-1","amount":250.5,"severity":"high"}}}`)
	c := MustCompile(`data.value.amount > 100 && data.value.region startsWith "eu-"`)
	if ok, err := c.Eval(ev); !ok || err != nil {
		b.Fatal(ok, err)
	}
	benchEval(b, c, ev)
}

// benchEval evaluates c on ev in a loop, reporting allocations and the
// thread's CPU time per evaluation (less disturbed by a shared machine
// than wall time).
func benchEval(b *testing.B, c *Condition, ev []byte) {
	b.Helper()
	b.ReportAllocs()
	t0 := testkit.ThreadCPU()
	for b.Loop() {
		c.Eval(ev)
	}
	if cpu := testkit.ThreadCPU() - t0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkEvalLoop: a condition whose time is the VM's, not decoding's:
// a loop of 2,000 iterations over a range, about 20,000 instructions (what
// counting steps costs shows here).
func BenchmarkEvalLoop(b *testing.B) {
	ev := []byte(`{"data":{"n":5000,"s":"abc"}}`)
	c := MustCompile(`let n = data.n; let s = data.s; all(1..2000, {# != n && s startsWith "a"})`)
	if ok, err := c.Eval(ev); !ok || err != nil {
		b.Fatal(ok, err)
	}
	benchEval(b, c, ev)
}

// TestWidenIntegers: on 32-bit platforms an integer literal past int's range
// becomes a float literal, strings and other numbers untouched; on 64-bit
// platforms the source is unchanged.
func TestWidenIntegers(t *testing.T) {
	src := `data.ts > 1655952591000 && data.s == "1655952591000" && data.n < 2147483647 && data.h != 0x7fffffffff && data.f > 1.5e12 && data.u < 1_000_000_000_000`
	want := `data.ts > 1655952591000.0 && data.s == "1655952591000" && data.n < 2147483647 && data.h != 0x7fffffffff && data.f > 1.5e12 && data.u < 1_000_000_000_000.0`
	if got := widenIntegers(src, 32); got != want {
		t.Fatalf("32-bit:\n got %s\nwant %s", got, want)
	}
	if got := widenIntegers(src, 64); got != src {
		t.Fatalf("64-bit: the source changed: %s", got)
	}
	// What 32-bit platforms compile: an epoch in milliseconds compares.
	cond, err := Compile(widenIntegers(`data.timestamp > 1655952591000 && data.timestamp < 1655952592000`, 32))
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := cond.Eval(event); err != nil || !ok {
		t.Fatalf("Eval: %v, %v; want true", ok, err)
	}
}
