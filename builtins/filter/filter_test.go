package filter

import (
	"bufio"
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/builtins/filter/condition"
	"github.com/sluicehq/sluice/builtins/filter/pattern"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestNilAndEmptyFiltersPassEverything(t *testing.T) {
	var nilFilter *Filter
	for _, f := range []*Filter{nilFilter, New(nil, nil), New(pattern.MustCompileJSON(`{}`), nil)} {
		for _, ev := range []string{`{"a":1}`, `not json`, ``} {
			if ok, err := f.Match(t.Context(), []byte(ev)); !ok || err != nil {
				t.Errorf("%v on %q: got %v, %v", f, ev, ok, err)
			}
		}
	}
}

func TestPatternThenCondition(t *testing.T) {
	f := New(pattern.MustCompileJSON(`{"type":["a"]}`), condition.MustCompile(`data.n > 1`))
	for _, c := range []struct {
		ev      string
		want    bool
		wantErr bool
	}{
		{`{"type":"a","data":{"n":2}}`, true, false},
		{`{"type":"a","data":{"n":1}}`, false, false},
		{`{"type":"a","data":{}}`, false, false},        // missing field: false
		{`{"type":"a","data":{"n":"x"}}`, false, true},  // runtime error
		{`{"type":"b","data":{"n":"x"}}`, false, false}, // the pattern decides first
		{`{"type":"a","data":{"n":2}`, false, false},    // malformed: the pattern drops it
	} {
		got, err := f.Match(t.Context(), []byte(c.ev))
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: got %v, %v; want %v, error %v", c.ev, got, err, c.want, c.wantErr)
		}
		var re *condition.RuntimeError
		if err != nil && !errors.As(err, &re) {
			t.Errorf("%s: error %T, want *condition.RuntimeError", c.ev, err)
		}
	}
	// Condition alone on malformed JSON: an error, not a silent drop.
	if _, err := New(nil, condition.MustCompile(`true`)).Match(t.Context(), []byte(`{`)); err == nil {
		t.Error("a condition on malformed JSON must fail")
	}
}

func TestBuildProblems(t *testing.T) {
	p := component.NewProblems("filter")
	text := `{"data": {"amount": [{"numeric": [">", "100"]}]}}`
	f := Build(nil, text, `data.x >`, condition.Limits{}, p)
	if f != nil {
		t.Fatal("Build returned a filter despite problems")
	}
	list := p.List()
	if len(list) != 2 {
		t.Fatalf("problems: %+v", list)
	}
	if got := component.FormatPath(list[0].Path); got != "filter.pattern_json" || list[0].Offset != strings.Index(text, `"100"`) ||
		!strings.Contains(list[0].Msg, "invalid event pattern at $.data.amount[0].numeric[1]: NUMERIC_SYNTAX: ") {
		t.Errorf("pattern_json problem: %s %+v", got, list[0])
	}
	if got := component.FormatPath(list[1].Path); got != "filter.condition" || list[1].Offset != 7 ||
		!strings.HasPrefix(list[1].Msg, "invalid condition: ") {
		t.Errorf("condition problem: %s %+v", got, list[1])
	}

	p = component.NewProblems("filter")
	Build(map[string]any{"data": map[string]any{"amount": []any{map[string]any{"numeric": []any{">", "100"}}}}}, "", "", condition.Limits{}, p)
	if list := p.List(); len(list) != 1 || component.FormatPath(list[0].Path) != "filter.pattern.data.amount[0].numeric[1]" || list[0].Offset != -1 {
		t.Errorf("pattern problem: %+v", list)
	}

	p = component.NewProblems("filter")
	Build(map[string]any{"a": []any{"x"}}, `{"a":["x"]}`, "", condition.Limits{}, p)
	if list := p.List(); len(list) != 1 || !list[0].AtKey {
		t.Errorf("pattern and pattern_json together: %+v", list)
	}

	p = component.NewProblems("filter")
	if f := Build(map[string]any{"a": []any{"x"}}, "", `a == "x"`, condition.Limits{}, p); f == nil || p.Len() != 0 {
		t.Fatalf("valid filter: %v %+v", f, p.List())
	} else if ok, _ := f.Match(t.Context(), []byte(`{"a":"x"}`)); !ok {
		t.Error("valid filter does not match")
	}
}

func TestConcurrentUse(t *testing.T) {
	f := New(pattern.MustCompileJSON(`{"data":{"n":[{"numeric":[">",1]}],"s":[{"prefix":"a"}]}}`), condition.MustCompile(`data.n < 100`))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				ok, err := f.Match(t.Context(), []byte(`{"data":{"n":5,"s":"ab\u0063"}}`))
				if !ok || err != nil {
					t.Errorf("got %v, %v", ok, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// --- docs/filters.md --------------------------------------------------------

type docBlock struct {
	info string
	body string
	line int
}

func docBlocks(t *testing.T, path string) []docBlock {
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var blocks []docBlock
	var cur *docBlock
	var body strings.Builder
	sc := bufio.NewScanner(fh)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if cur == nil {
				cur = &docBlock{info: strings.TrimSpace(strings.TrimPrefix(line, "```")), line: n}
				body.Reset()
			} else {
				cur.body = body.String()
				blocks = append(blocks, *cur)
				cur = nil
			}
			continue
		}
		if cur != nil {
			body.WriteString(line)
			body.WriteByte('\n')
		}
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated fenced block", path, cur.line)
	}
	return blocks
}

func buildFromTOML(t *testing.T, b docBlock) (*Filter, *component.Problems) {
	t.Helper()
	var doc struct {
		Filter struct {
			Pattern     map[string]any `toml:"pattern"`
			PatternJSON string         `toml:"pattern_json"`
			Condition   string         `toml:"condition"`
			Budget      uint64         `toml:"condition_budget"`
		} `toml:"filter"`
	}
	md, err := toml.Decode(b.body, &doc)
	if err != nil {
		t.Fatalf("docs/filters.md:%d: %v", b.line, err)
	}
	for _, k := range md.Undecoded() {
		// Keys inside the pattern are the pattern's; others are typos.
		if len(k) < 2 || k[0] != "filter" || k[1] != "pattern" {
			t.Fatalf("docs/filters.md:%d: unknown key %v", b.line, k)
		}
	}
	p := component.NewProblems("filter")
	return Build(doc.Filter.Pattern, doc.Filter.PatternJSON, doc.Filter.Condition, condition.Limits{Steps: doc.Filter.Budget}, p), p
}

// TestDocExamples runs every example of docs/filters.md (format described
// at the top of that page).
func TestDocExamples(t *testing.T) {
	blocks := docBlocks(t, "../../docs/filters.md")
	examples, events, invalid := 0, 0, 0
	for i := 0; i < len(blocks); i++ {
		b := blocks[i]
		switch b.info {
		case "toml example":
			if i+1 >= len(blocks) || blocks[i+1].info != "text events" {
				t.Fatalf("docs/filters.md:%d: an example must be followed by a text events block", b.line)
			}
			ev := blocks[i+1]
			i++
			if strconv.IntSize == 32 && regexp.MustCompile(`\d{16,}`).MatchString(b.body) {
				t.Logf("docs/filters.md:%d: skipped on a 32-bit platform: integers past 2^53 are not exact there", b.line)
				continue
			}
			examples++
			f, p := buildFromTOML(t, b)
			if p.Len() > 0 {
				t.Errorf("docs/filters.md:%d: example does not load: %+v", b.line, p.List())
				continue
			}
			for j, line := range strings.Split(strings.TrimRight(ev.body, "\n"), "\n") {
				verdict, event, _ := strings.Cut(line, " ")
				event = strings.TrimSpace(event)
				events++
				ok, err := f.Match(t.Context(), []byte(event))
				var got string
				switch {
				case err != nil:
					got = "error"
				case ok:
					got = "match"
				default:
					got = "no-match"
				}
				if verdict != "match" && verdict != "no-match" && verdict != "error" {
					t.Errorf("docs/filters.md:%d: unknown verdict %q", ev.line+1+j, verdict)
				}
				if got != verdict {
					t.Errorf("docs/filters.md:%d: %s: got %s (%v), the page says %s", ev.line+1+j, event, got, err, verdict)
				}
			}
		case "toml invalid":
			if i+1 >= len(blocks) || blocks[i+1].info != "text problems" {
				t.Fatalf("docs/filters.md:%d: an invalid example must be followed by a text problems block", b.line)
			}
			want := blocks[i+1]
			i++
			invalid++
			f, p := buildFromTOML(t, b)
			if f != nil || p.Len() == 0 {
				t.Errorf("docs/filters.md:%d: the example is accepted", b.line)
				continue
			}
			lines := strings.Split(strings.TrimRight(want.body, "\n"), "\n")
			if len(lines) != p.Len() {
				t.Errorf("docs/filters.md:%d: %d problems, the page lists %d: %+v", b.line, p.Len(), len(lines), p.List())
			}
			for j, line := range lines {
				path, word, _ := strings.Cut(line, " ")
				found := false
				for _, pr := range p.List() {
					found = found || (component.FormatPath(pr.Path) == path && strings.Contains(pr.Msg, word))
				}
				if !found {
					t.Errorf("docs/filters.md:%d: no problem at %s mentioning %q in %+v", want.line+1+j, path, word, p.List())
				}
			}
		}
	}
	if examples < 30 || events < 100 || invalid < 3 {
		t.Errorf("only %d examples, %d events, %d invalid examples found: did the format change?", examples, events, invalid)
	}
	t.Logf("%d examples, %d events, %d invalid examples", examples, events, invalid)
}
