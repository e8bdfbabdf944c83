package partial

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
)

// kafkaEvent is the Kafka-sourced sample of docs/transforms.md.
const kafkaEvent = `{
  "specversion": "1.0",
  "id": "8e215af8-0000-4249-8645-f96c1026aaaa",
  "source": "acs:alikafka",
  "type": "alikafka:Topic:Message",
  "subject": "acs:alikafka_pre-cn-xxxx:topic:clicks",
  "datacontenttype": "application/json; charset=utf-8",
  "time": "2022-06-23T02:49:51.589Z",
  "aliyunaccountid": "1000000000000000",
  "data": {
    "topic": "clicks",
    "partition": 7,
    "offset": 25,
    "timestamp": 1655952591589,
    "headers": { "headers": [], "isReadOnly": false },
    "key": "user-42",
    "value": "{\"page\":\"/home\",\"ms\":31}"
  }
}`

const valuesEvent = `{"s": "plain", "q": "say \"hi\"\n\\", "u": "caf\u00e9 \ud83d\ude00 a\/b", "empty": "",
 "n": 1.50, "big": 12345678901234567890, "t": true, "f": false, "z": null,
 "o": { "b" : 1, "a" : [ 1 , "x y" ] }, "c": {"b":1,"a":[1,"x y"]}, "arr": [ {"k": 1}, "two", 3 ], "dup": 1, "dup": 2}`

func load(t testing.TB, src string) (*Config, []component.Problem) {
	t.Helper()
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		t.Fatalf("toml: %v", err)
	}
	cfg := &Config{}
	p := component.NewProblems("transform", "[0]")
	component.Decode(doc["transform"].([]map[string]any)[0], cfg, p, "type")
	return cfg, p.List()
}

func pathConfig(t testing.TB, path string) *Config {
	cfg, probs := load(t, "[[transform]]\ntype = \"partial\"\npath = '''"+path+"'''\n")
	if len(probs) != 0 {
		t.Fatalf("path %s: %+v", path, probs)
	}
	return cfg
}

func newTransform(t testing.TB, cfg *Config, env component.Env) *Transform {
	t.Helper()
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindTransform, "partial")
	inst, err := spec.Build(cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	return inst.(*Transform)
}

func run(t testing.TB, tr component.Transform, payloads ...string) []string {
	t.Helper()
	return componenttest.Apply(t, tr, payloads...)
}

func TestPartial(t *testing.T) {
	cases := []struct {
		path, input, want string
	}{
		// docs/transforms.md, partial.
		{`$.data.topic`, kafkaEvent, `clicks`},
		{`$.data.partition`, kafkaEvent, `7`},
		{`$.data.headers`, kafkaEvent, `{"headers":[],"isReadOnly":false}`},
		// More of each rendering rule.
		{`$.data.key`, kafkaEvent, `user-42`},
		{`$.data.timestamp`, kafkaEvent, `1655952591589`},
		{`$.data.value`, kafkaEvent, `{"page":"/home","ms":31}`},
		{`$.data.headers.isReadOnly`, kafkaEvent, `false`},
		{`$.data.headers.headers`, kafkaEvent, `[]`},
		{`$['data']["key"]`, kafkaEvent, `user-42`},
		{`$.s`, valuesEvent, `plain`},
		{`$.q`, valuesEvent, "say \"hi\"\n\\"},
		{`$.u`, valuesEvent, "café 😀 a/b"},
		{`$.n`, valuesEvent, `1.50`},
		{`$.big`, valuesEvent, `12345678901234567890`},
		{`$.t`, valuesEvent, `true`},
		{`$.z`, valuesEvent, `null`},
		{`$.o`, valuesEvent, `{"b":1,"a":[1,"x y"]}`},
		{`$.c`, valuesEvent, `{"b":1,"a":[1,"x y"]}`},
		{`$.arr`, valuesEvent, `[{"k":1},"two",3]`},
		{`$.arr[0]`, valuesEvent, `{"k":1}`},
		{`$.arr[1]`, valuesEvent, `two`},
		{`$.o.a[1]`, valuesEvent, `x y`},
		{`$.dup`, valuesEvent, `2`},
		{`$`, " {\"a\" : [1, 2]}\n", `{"a":[1,2]}`},
		{`$`, `"just a string"`, `just a string`},
		{`$`, `42`, `42`},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			if got := run(t, newTransform(t, pathConfig(t, c.path), component.Env{}), c.input)[0]; got != c.want {
				t.Fatalf("%s = %q, want %q", c.path, got, c.want)
			}
		})
	}
}

func counterValue(t *testing.T, m *metrics.Set, name, task string) float64 {
	t.Helper()
	v, _ := metricstest.Gather(t, m).Value(metrics.Namespace+"_"+name, "task", task)
	return v
}

func TestNoMatchGivesEmptyPayloadAndCounts(t *testing.T) {
	m := metrics.New()
	tr := newTransform(t, pathConfig(t, "$.data.key"), component.Env{Task: "orders", Metrics: m})
	got := run(t, tr,
		kafkaEvent,              // found
		`{"data": {}}`,          // missing key
		`{"data": "x"}`,         // not an object
		`{"data": {"key": ""}}`, // found, empty string: not counted
	)
	want := []string{"user-42", "", "", ""}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("input %d: %q, want %q", i, got[i], want[i])
		}
	}
	if n := counterValue(t, m, EmptyMetric, "orders"); n != 2 {
		t.Fatalf("%s = %v, want 2", EmptyMetric, n)
	}
	// A second partial of the same task shares the counter.
	tr2 := newTransform(t, pathConfig(t, "$.x"), component.Env{Task: "orders", Metrics: m})
	run(t, tr2, `{}`)
	if n := counterValue(t, m, EmptyMetric, "orders"); n != 3 {
		t.Fatalf("%s = %v, want 3", EmptyMetric, n)
	}
}

// TestNotJSONFails: an input that is not JSON (text from the previous
// stage, invalid JSON from a WASM module) fails to the dead-letter queue
// instead of passing on an empty payload that would count as delivered.
func TestNotJSONFails(t *testing.T) {
	tr := newTransform(t, pathConfig(t, "$.data.key"), component.Env{})
	inputs := []string{`user user-42 on partition 7`, `{"data": {"key": "k"}} trailing`, ``, `{"data": {"key": "k"`}
	in := make([]message.Message, len(inputs))
	for i, p := range inputs {
		in[i] = message.Message{Payload: []byte(p), Ref: int32(i)}
	}
	var out component.Output
	if err := tr.Apply(context.Background(), in, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Messages) != 0 || len(out.Failures) != len(inputs) {
		t.Fatalf("%d outputs, %d failures; want every input failed", len(out.Messages), len(out.Failures))
	}
	for _, f := range out.Failures {
		if component.ClassOf(f.Err) != component.ClassEventPermanent || !strings.Contains(f.Err.Error(), "not JSON") {
			t.Fatalf("failure %v (class %v), want an event-permanent \"not JSON\"", f.Err, component.ClassOf(f.Err))
		}
	}
}

// TestSpecDescriptionMatchesBehaviour: the registered description (printed
// into docs/reference.md by `sluice docs`) promised that an input that is
// not JSON gives an empty payload counted in sluice_transform_empty, while
// the transform (and docs/transforms.md, Decision 7) fails such a record to
// the dead-letter queue and counts nothing. It now says what happens.
func TestSpecDescriptionMatchesBehaviour(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindTransform, "partial")
	promisesEmpty := strings.Contains(spec.Description, "or an input that is not JSON, gives an empty payload")
	promisesDLQ := strings.Contains(spec.Description, "an input that is not JSON (text from the previous step, invalid JSON) goes to the dead-letter queue")

	m := metrics.New()
	tr := newTransform(t, pathConfig(t, "$.data.key"), component.Env{Task: "t", Metrics: m})
	var out component.Output
	if err := tr.Apply(context.Background(), []message.Message{{Payload: []byte("user-42")}}, &out); err != nil {
		t.Fatal(err)
	}
	gaveEmpty := len(out.Messages) == 1 && len(out.Messages[0].Payload) == 0 && len(out.Failures) == 0
	failed := len(out.Messages) == 0 && len(out.Failures) == 1 && component.ClassOf(out.Failures[0].Err) == component.ClassEventPermanent
	if promisesEmpty != gaveEmpty || promisesDLQ != failed {
		t.Errorf("spec description says non-JSON input gives an empty payload (%v) or is dead-lettered (%v); the transform gives one: %v, fails it: %v (%d outputs, %d failures, counter %v)\n%s",
			promisesEmpty, promisesDLQ, gaveEmpty, failed, len(out.Messages), len(out.Failures), counterValue(t, m, EmptyMetric, "t"), spec.Description)
	}
}

func TestChainReadsPreviousOutput(t *testing.T) {
	// $.data.value holds JSON text as a string: the first partial outputs
	// that text, the second reads it as JSON.
	first := newTransform(t, pathConfig(t, "$.data.value"), component.Env{})
	second := newTransform(t, pathConfig(t, "$.page"), component.Env{})
	mid := run(t, first, kafkaEvent)
	if got := run(t, second, mid...)[0]; got != "/home" {
		t.Fatalf("chain = %q", got)
	}
	// The output of a string that is not JSON is not JSON downstream:
	// TestNotJSONFails.
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name   string
		src    string
		path   string
		atKey  bool
		offset int
		msg    string
	}{
		{"missing path", "[[transform]]\ntype = \"partial\"\n", "transform[0]", true, -1, "invalid transform: VALUE_REQUIRED: the partial transform needs a path"},
		{"empty path", "[[transform]]\ntype = \"partial\"\npath = \"\"\n", "transform[0].path", false, -1, "invalid transform: VALUE_REQUIRED: path is empty"},
		{"no dollar", "[[transform]]\ntype = \"partial\"\npath = \"data.key\"\n", "transform[0].path", false, 0, "invalid transform: JSONPATH_INVALID: path \"data.key\": a path must start with $"},
		{"wildcard", "[[transform]]\ntype = \"partial\"\npath = \"$.items[*].id\"\n", "transform[0].path", false, 8, "invalid transform: JSONPATH_INVALID: path \"$.items[*].id\": wildcard"},
		{"recursive", "[[transform]]\ntype = \"partial\"\npath = \"$..id\"\n", "transform[0].path", false, 1, "invalid transform: JSONPATH_INVALID: path \"$..id\": recursive descent"},
		{"filter", "[[transform]]\ntype = \"partial\"\npath = \"$.a[?(@.b > 1)]\"\n", "transform[0].path", false, 4, "invalid transform: JSONPATH_INVALID: path \"$.a[?(@.b > 1)]\": filters"},
		{"not a string", "[[transform]]\ntype = \"partial\"\npath = [\"$.a\"]\n", "transform[0].path", false, -1, "expected a string, got an array"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := load(t, c.src)
			componenttest.OneProblem(t, probs, c.path, c.atKey, c.offset, c.msg)
		})
	}
}

func TestSpec(t *testing.T) {
	r := component.NewRegistry()
	Register(r)
	spec, ok := r.Lookup(component.KindTransform, "partial")
	if !ok || spec.Summary == "" || spec.Description == "" {
		t.Fatal("spec incomplete")
	}
	cfg, probs := load(t, spec.Example)
	if len(probs) != 0 {
		t.Fatalf("example does not load: %+v", probs)
	}
	if got := run(t, newTransform(t, cfg, component.Env{}), kafkaEvent)[0]; got != `{"page":"/home","ms":31}` {
		t.Fatalf("example gives %q", got)
	}
	if _, err := spec.Build(&Config{}, component.Env{}); err == nil {
		t.Fatal("Build accepted a config without path")
	}
}

func TestLongValueWarns(t *testing.T) {
	var logs bytes.Buffer
	tr := newTransform(t, pathConfig(t, "$.v"), component.Env{Logger: zerolog.New(&logs)})
	long := strings.Repeat("é", 10241)
	ok := strings.Repeat("é", 10240)
	got := run(t, tr, `{"v": "`+ok+`"}`, `{"v": "`+long+`"}`, `{"v": "`+long+`"}`)
	if got[0] != ok || got[1] != long {
		t.Fatal("value truncated")
	}
	if n := strings.Count(logs.String(), "longer than 10240 characters"); n != 1 {
		t.Fatalf("%d warnings (want 1, sampled): %s", n, logs.String())
	}
}

func TestApplyDoesNotAllocate(t *testing.T) {
	for _, path := range []string{"$.data.key", "$.data.headers", "$.missing"} {
		tr := newTransform(t, pathConfig(t, path), component.Env{Metrics: metrics.New(), Task: "t"})
		in := []message.Message{{Payload: []byte(kafkaEvent)}, {Payload: []byte(`{"data":{"key":"a\"b"}}`)}}
		out := component.Output{Messages: make([]message.Message, 0, 8), Buf: make([]byte, 0, 1024)}
		if n := testing.AllocsPerRun(100, func() {
			out.Reset()
			_ = tr.Apply(context.Background(), in, &out)
		}); n != 0 {
			t.Errorf("%s: %v allocations per batch", path, n)
		}
	}
}

// TestConcurrentApply: workers share one Transform and its counter (run with
// -race).
func TestConcurrentApply(t *testing.T) {
	m := metrics.New()
	tr := newTransform(t, pathConfig(t, "$.data.key"), component.Env{Task: "c", Metrics: m})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			in := []message.Message{{Payload: []byte(`{"data": {"key": "k` + string(rune('0'+w)) + `"}}`)}, {Payload: []byte(`{}`)}}
			var out component.Output
			for range 250 {
				out.Reset()
				if err := tr.Apply(context.Background(), in, &out); err != nil || string(out.Messages[0].Payload) != "k"+string(rune('0'+w)) {
					t.Errorf("worker %d: %q %v", w, out.Messages[0].Payload, err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if n := counterValue(t, m, EmptyMetric, "c"); n != 1000 {
		t.Fatalf("%s = %v, want 1000", EmptyMetric, n)
	}
}
