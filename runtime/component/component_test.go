package component

import (
	"strings"
	"testing"
	"time"
)

type inner struct {
	Depth int `toml:"depth" min:"1" max:"3"`
}

type cfg struct {
	Name    string            `toml:"name" required:"true" doc:"the name"`
	Mode    string            `toml:"mode" enum:"fast,slow"`
	Wait    Duration          `toml:"wait"`
	Size    ByteSize          `toml:"size"`
	Ratio   float64           `toml:"ratio" min:"0" max:"1"`
	Tags    []string          `toml:"tags" elem_enum:"a,b"`
	Labels  map[string]string `toml:"labels"`
	Inner   inner             `toml:"inner"`
	Opt     *int              `toml:"opt"`
	Any     any               `toml:"any"`
	Skipped string
}

func decode(t *testing.T, tree map[string]any) (*cfg, []string) {
	t.Helper()
	c := &cfg{Mode: "fast"}
	p := NewProblems("sink")
	Decode(tree, c, p)
	var msgs []string
	for _, pr := range p.List() {
		msgs = append(msgs, pr.PathString()+": "+pr.Msg)
	}
	return c, msgs
}

func TestDecode(t *testing.T) {
	c, msgs := decode(t, map[string]any{
		"name": "x", "wait": "1m30s", "size": "64KiB", "ratio": int64(1), "tags": []any{"a", "b"},
		"labels": map[string]any{"k": "v"}, "inner": map[string]any{"depth": int64(2)}, "opt": int64(7), "any": []any{int64(1)},
	})
	if len(msgs) > 0 {
		t.Fatal(msgs)
	}
	if c.Name != "x" || c.Wait.D() != 90*time.Second || c.Size != 64<<10 || c.Ratio != 1 || c.Inner.Depth != 2 || *c.Opt != 7 || c.Labels["k"] != "v" || c.Mode != "fast" {
		t.Fatalf("%+v", c)
	}
}

func TestDecodeReportsEverything(t *testing.T) {
	c, msgs := decode(t, map[string]any{
		"nmae": "x", "mode": "fsat", "wait": "soon", "size": "lots", "ratio": 1.5, "tags": []any{"a", "c", int64(1)},
		"labels": "nope", "inner": map[string]any{"depth": int64(9), "deep": true}, "opt": "seven",
	})
	want := []string{
		`sink.inner.deep: unknown key "deep"`,
		`sink.inner.depth: value 9 is above the maximum 3 (allowed: 1..3)`,
		`sink.labels: expected a table of string, got string "nope"`,
		`sink.mode: invalid value "fsat": must be one of "fast", "slow" (did you mean "fast"?)`,
		`sink.nmae: unknown key "nmae" (did you mean "name"?)`,
		`sink.opt: expected an integer, got string "seven"`,
		`sink.ratio: value 1.5 is above the maximum 1 (allowed: 0..1)`,
		`sink.size: invalid size "lots" (want e.g. "512", "64KiB", "32MiB", "1GiB")`,
		`sink.tags[1]: invalid value "c": must be one of "a", "b"`,
		`sink.tags[2]: expected a string, got integer 1`,
		`sink.wait: invalid duration "soon" (want e.g. "500ms", "2s", "1m")`,
		`sink: missing required key "name"`,
	}
	if strings.Join(msgs, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(msgs, "\n"), strings.Join(want, "\n"))
	}
	if c.Opt != nil {
		t.Fatal("a pointer whose value failed to decode must stay nil")
	}
}

func TestFieldsOf(t *testing.T) {
	fs, err := FieldsOf(&cfg{Mode: "fast", Wait: Duration(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Field{}
	for _, f := range fs {
		byName[f.Name] = f
	}
	if len(fs) != 10 || !byName["name"].Required || byName["mode"].Default != `"fast"` || byName["wait"].Type != "duration" ||
		byName["wait"].Default != "1s" || len(byName["inner"].Fields) != 1 || byName["tags"].Type != "list of string" {
		t.Fatalf("%+v", fs)
	}
	if _, err := FieldsOf(cfg{}); err == nil {
		t.Fatal("a non-pointer config must be refused")
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]ByteSize{"512": 512, "64KiB": 64 << 10, "32MiB": 32 << 20, "1GiB": 1 << 30, "2MB": 2e6, "1 KiB": 1024} {
		var s ByteSize
		if err := s.UnmarshalText([]byte(in)); err != nil || s != want {
			t.Errorf("%q: %v %v", in, s, err)
		}
	}
	if ByteSize(32<<20).String() != "32MiB" || ByteSize(1000).String() != "1000" {
		t.Fatal("ByteSize.String")
	}
	var d Duration
	if d.UnmarshalText([]byte("-1s")) == nil {
		t.Fatal("negative duration accepted")
	}
}

func TestSuggest(t *testing.T) {
	cases := map[string]string{"timout": "timeout", "tiemout": "timeout", "brokers": "brokers", "xyz": ""}
	for in, want := range cases {
		got := Suggest(in, []string{"timeout", "brokers", "topic"})
		if (want == "") != (got == "") || (want != "" && !strings.Contains(got, `"`+want+`"`)) {
			t.Errorf("Suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegistryPanicsOnProgrammerErrors(t *testing.T) {
	r := NewRegistry()
	ok := Spec{Kind: KindSink, Name: "x", New: func() any { return &cfg{} }, Build: func(any, Env) (any, error) { return nil, nil }}
	r.Register(ok)
	for name, s := range map[string]Spec{
		"duplicate":   ok,
		"bad name":    {Kind: KindSink, Name: "Bad-Name", New: ok.New, Build: ok.Build},
		"no build":    {Kind: KindSink, Name: "y", New: ok.New},
		"not pointer": {Kind: KindSink, Name: "z", New: func() any { return cfg{} }, Build: ok.Build},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			r.Register(s)
		}()
	}
}
