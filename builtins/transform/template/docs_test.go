package template_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/builtins/transform/complete"
	"github.com/sluicehq/sluice/builtins/transform/constant"
	"github.com/sluicehq/sluice/builtins/transform/partial"
	"github.com/sluicehq/sluice/builtins/transform/template"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

const docPath = "../../../docs/transforms.md"

// block is one fenced code block of the doc: ```lang role.
type block struct {
	lang, role string
	body       string
	line       int
}

// fencedBlocks returns the doc's fenced blocks. A block's body is its lines
// joined with "\n", without the final newline.
func fencedBlocks(t *testing.T, doc string) []block {
	t.Helper()
	var out []block
	var cur *block
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(doc))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		if cur == nil {
			if info, ok := strings.CutPrefix(l, "```"); ok && !strings.HasPrefix(info, "`") {
				f := strings.Fields(info)
				cur = &block{line: n}
				if len(f) > 0 {
					cur.lang = f[0]
				}
				if len(f) > 1 {
					cur.role = f[1]
				}
				lines = nil
			}
			continue
		}
		if l == "```" {
			cur.body = strings.Join(lines, "\n")
			out = append(out, *cur)
			cur = nil
			continue
		}
		lines = append(lines, l)
	}
	if cur != nil {
		t.Fatalf("%s:%d: unclosed code block", docPath, cur.line)
	}
	return out
}

func registry() *component.Registry {
	r := component.NewRegistry()
	complete.Register(r)
	constant.Register(r)
	partial.Register(r)
	template.Register(r)
	return r
}

// loadChain decodes, validates and builds every [[transform]] table of src the
// way the task loader does, returning the chain or the problems as
// "PATH: message" lines.
func loadChain(r *component.Registry, src string) ([]component.Transform, []string, error) {
	var doc map[string]any
	if _, err := toml.Decode(src, &doc); err != nil {
		return nil, nil, err
	}
	tables, ok := doc["transform"].([]map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("no [[transform]] table")
	}
	var chain []component.Transform
	p := component.NewProblems()
	for i, tree := range tables {
		tp := p.At("transform", component.Index(i))
		typ, _ := tree["type"].(string)
		spec, ok := r.Lookup(component.KindTransform, typ)
		if !ok {
			return nil, nil, fmt.Errorf("unknown transform type %q", typ)
		}
		cfg := spec.New()
		before := p.Len()
		component.Decode(tree, cfg, tp, "type")
		if p.Len() > before {
			continue
		}
		inst, err := spec.Build(cfg, component.Env{Task: "docs", Metrics: metrics.New(), Problems: tp})
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, inst.(component.Transform))
	}
	var probs []string
	for _, pr := range p.List() {
		probs = append(probs, pr.PathString()+": "+pr.Msg)
	}
	return chain, probs, nil
}

// runChain runs input through chain and returns the output, or the failure
// of the step that failed the record.
func runChain(t *testing.T, chain []component.Transform, input []byte) ([]byte, error) {
	t.Helper()
	msgs := []message.Message{{Payload: input, Event: input}}
	for _, tr := range chain {
		var out component.Output
		if err := tr.Apply(context.Background(), msgs, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Failures) == 1 && len(out.Messages) == 0 {
			return nil, out.Failures[0].Err
		}
		if len(out.Messages) != 1 || len(out.Failures) != 0 {
			t.Fatalf("%d outputs, %d failures", len(out.Messages), len(out.Failures))
		}
		msgs = out.Messages
	}
	return msgs[0].Payload, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	dx := json.NewDecoder(bytes.NewReader(a))
	dx.UseNumber()
	dy := json.NewDecoder(bytes.NewReader(b))
	dy.UseNumber()
	return dx.Decode(&x) == nil && dy.Decode(&y) == nil && reflect.DeepEqual(x, y)
}

// TestDocExamples runs every example of docs/transforms.md.
func TestDocExamples(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	r := registry()
	var input []byte
	var pending *block // the toml transform block awaiting its expectation
	examples := 0
	for _, b := range fencedBlocks(t, string(raw)) {
		where := fmt.Sprintf("%s:%d", docPath, b.line)
		switch {
		case b.role == "input":
			if pending != nil {
				t.Fatalf("%s: input block while the example at line %d has no output, failure or problems block", where, pending.line)
			}
			input = []byte(b.body)
			if b.lang == "json" && !json.Valid(input) {
				t.Fatalf("%s: json input is not valid JSON", where)
			}
		case b.lang == "toml" && b.role == "transform":
			if pending != nil {
				t.Fatalf("%s: new example while the example at line %d has no output or problems block", where, pending.line)
			}
			bb := b
			pending = &bb
		case b.role == "output" || b.role == "problems" || b.role == "failure":
			if pending == nil {
				t.Fatalf("%s: %s block without a toml transform block above it", where, b.role)
			}
			ex := pending
			pending = nil
			examples++
			t.Run(fmt.Sprintf("line%d", ex.line), func(t *testing.T) {
				chain, probs, err := loadChain(r, ex.body)
				if err != nil {
					t.Fatalf("%s:%d: %v", docPath, ex.line, err)
				}
				if b.role == "problems" {
					want := strings.Split(b.body, "\n")
					if !reflect.DeepEqual(probs, want) {
						t.Fatalf("%s:%d: problems\n%s\nwant\n%s", docPath, ex.line, strings.Join(probs, "\n"), b.body)
					}
					return
				}
				if len(probs) > 0 {
					t.Fatalf("%s:%d: unexpected problems:\n%s", docPath, ex.line, strings.Join(probs, "\n"))
				}
				if input == nil {
					t.Fatalf("%s:%d: no input block above the example", docPath, ex.line)
				}
				got, ferr := runChain(t, chain, input)
				if b.role == "failure" {
					// The record goes to the dead-letter queue with this
					// reason.
					if ferr == nil || ferr.Error() != b.body {
						t.Fatalf("%s:%d: got %q (failure %v), want the failure\n%s", docPath, ex.line, got, ferr, b.body)
					}
					return
				}
				if ferr != nil {
					t.Fatalf("%s:%d: the record failed: %v", docPath, ex.line, ferr)
				}
				switch b.lang {
				case "json":
					if !jsonEqual(got, []byte(b.body)) {
						t.Fatalf("%s:%d: output\n%s\nis not the JSON value\n%s", docPath, ex.line, got, b.body)
					}
				default:
					if string(got) != b.body {
						t.Fatalf("%s:%d: output\n%q\nwant\n%q", docPath, ex.line, got, b.body)
					}
				}
			})
		}
	}
	if pending != nil {
		t.Fatalf("%s:%d: example without an output or problems block", docPath, pending.line)
	}
	if examples < 20 {
		t.Fatalf("only %d examples found in %s; did the block format change?", examples, docPath)
	}
}

// TestSpecExamplesInRegistry checks every builtin's Example loads.
func TestSpecExamplesInRegistry(t *testing.T) {
	r := registry()
	for _, name := range []string{"complete", "constant", "partial", "template"} {
		spec, ok := r.Lookup(component.KindTransform, name)
		if !ok {
			t.Fatalf("%s not registered", name)
		}
		if _, probs, err := loadChain(r, spec.Example); err != nil || len(probs) > 0 {
			t.Errorf("%s example: %v %v", name, err, probs)
		}
	}
}
