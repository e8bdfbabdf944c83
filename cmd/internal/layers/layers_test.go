package layers

import (
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sluicehq/sluice"

// layer is one row of docs/architecture.md's table: the packages it holds
// and the packages of this module they may import (their own subtree is
// always allowed). Patterns are paths relative to the module; "x/..." is x
// and everything below it.
type layer struct {
	name string
	pkgs []string
	may  []string
	why  string
}

var foundations = []string{"runtime/message", "runtime/jsonscan", "runtime/logx", "runtime/metrics", "runtime/statedir"}

// layers, lowest first. A package belongs to the first layer that names it.
var layers = []layer{
	{"foundations", foundations, foundations,
		"the vocabulary every layer shares (records, JSON scanning, log fields, metrics): it depends on nothing above it"},
	{"contracts", []string{"runtime/component"}, foundations,
		"the component contract (Source, Sink, Transform, Spec, Env, error classes) sits below everything that implements or runs it"},
	{"mechanisms", []string{"runtime/delivery", "runtime/buffer", "runtime/wasmhost/..."}, append([]string{"runtime/component"}, foundations...),
		"retries and dead-letter records, the disk buffer and the WASM host work on records and contracts, not on tasks"},
	{"engine", []string{"runtime/engine"}, append([]string{"runtime/component", "runtime/delivery", "runtime/buffer"}, foundations...),
		"the engine runs an engine.Definition: it knows the contracts, never task files (runtime/config), the components (builtins) or the CLI"},
	{"loader", []string{"runtime/config"}, append([]string{"runtime/component", "runtime/buffer"}, foundations...),
		"the loader reads task files and builds components through the registry; it never runs them"},
	{"adapter", []string{"runtime/runner"}, append([]string{"runtime/config", "runtime/engine", "runtime/component", "runtime/delivery"}, foundations...),
		"the one place that maps a loaded task file to the engine's Definition"},
	{"operations", []string{"runtime/admin/..."}, append([]string{"runtime/engine"}, foundations...),
		"the admin API (and its web console, runtime/admin/console) reads and steers running tasks"},
	{"test kit", []string{"runtime/testkit"}, nil,
		"test helpers shared by every layer's tests import nothing of the module"},
	{"metrics test kit", []string{"runtime/metrics/metricstest"}, []string{"runtime/metrics"},
		"reads a metrics.Set's exposition as a scraper does; only tests import it"},
	{"component packages", []string{"builtins/source/...", "builtins/sink/...", "builtins/transform/...", "builtins/filter/..."},
		append([]string{"runtime/component", "runtime/delivery", "runtime/wasmhost", "builtins/internal/...", "builtins/lines"}, foundations...),
		"a builtin implements the contracts with shared connector code (builtins/internal); it never reaches into the engine, the loader or another component"},
	{"test helpers", []string{"builtins/internal/componenttest", "builtins/internal/doctest", "builtins/internal/kafkae2e", "builtins/internal/pgcluster"},
		append([]string{"runtime/component", "runtime/testkit", "builtins/internal/..."}, foundations...),
		"helpers only tests import (conformance suites, doc tests): the contracts and the test kit"},
	{"shared connector code", []string{"builtins/internal/...", "builtins/lines", "builtins/kafkadev"},
		append([]string{"runtime/component", "runtime/delivery", "builtins/internal/..."}, foundations...),
		"code the builtins share, below them"},
	{"registration", []string{"builtins"}, append([]string{"builtins/...", "runtime/component", "runtime/config"}, foundations...),
		"the one list of builtins (RegisterAll), the loader's hooks (BuildFilter, TaskChecks) and what the command hands the admin API of them (DeadLetterEvent)"},
	{"repository checks", []string{"cmd/internal/..."}, nil,
		"tests of the repository as a whole (import rules, documentation); they hold no code"},
	{"commands", []string{"cmd/..."},
		[]string{"runtime/...", "builtins", "builtins/kafkadev", "builtins/lines"},
		"the CLI builds components only through the registry (builtins.RegisterAll); it uses the dev Kafka and the line framing of line sinks (to print sluice test's outputs as stdout writes them)"},
}

// exceptions are production imports a layer's rule does not allow, each with
// its reason.
var exceptions = map[[2]string]string{
	{"builtins/internal/kafkaconf", "runtime/config"}: "CheckExactlyOnce is a loader task check (config.Loader.TaskChecks): it reads the loaded task to reject what cannot be exactly once",
}

// Tests are not restricted: they run real things together (a task made of
// real builtins through the engine, a connector end to end with kill -9)
// rather than mocks, which production layering does not forbid. Their
// imports never reach a binary.

type pkg struct {
	ImportPath string
	Imports    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = "../../.."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(out)
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func rel(p string) (string, bool) {
	if p == module {
		return "", true
	}
	r, ok := strings.CutPrefix(p, module+"/")
	return r, ok
}

func match(pattern, p string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return p == base || strings.HasPrefix(p, base+"/")
	}
	return p == pattern
}

func matchAny(patterns []string, p string) bool {
	return slices.ContainsFunc(patterns, func(pat string) bool { return match(pat, p) })
}

func layerOf(p string) *layer {
	// Shared test code is named for it: builtins/internal/*test and *e2e
	// (amqptest, mqtttest, kafkae2e) hold helpers only tests import.
	if rest, ok := strings.CutPrefix(p, "builtins/internal/"); ok && !strings.Contains(rest, "/") &&
		(strings.HasSuffix(rest, "test") || strings.HasSuffix(rest, "e2e")) {
		for i := range layers {
			if layers[i].name == "test helpers" {
				return &layers[i]
			}
		}
	}
	for i := range layers {
		if matchAny(layers[i].pkgs, p) {
			return &layers[i]
		}
	}
	return nil
}

// allowed reports whether p (in layer l) may import imp.
func allowed(l *layer, p, imp string) bool {
	if imp == p || strings.HasPrefix(imp, p+"/") {
		return true // its own subtree
	}
	if l.name == "component packages" {
		// The rest of its own component (builtins/filter/pattern may
		// import builtins/filter/...).
		parts := strings.Split(p, "/")
		if len(parts) > 3 && match(strings.Join(parts[:3], "/")+"/...", imp) {
			return true
		}
	}
	return matchAny(l.may, imp)
}

func TestImportRules(t *testing.T) {
	for _, p := range listPackages(t) {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		l := layerOf(name)
		if l == nil {
			t.Errorf("%s belongs to no layer: add it to a layer of internal/layers (and docs/architecture.md)", name)
			continue
		}
		for _, im := range p.Imports {
			imp, ok := rel(im)
			if !ok || allowed(l, name, imp) {
				continue
			}
			if _, ok := exceptions[[2]string{name, imp}]; ok {
				continue
			}
			t.Errorf("%s (%s) imports %s: not allowed, because %s", name, l.name, imp, l.why)
		}
	}
}

// TestRulesCatchViolations checks the checker on the violations the rules
// exist for, so a rule that stopped matching anything fails here.
func TestRulesCatchViolations(t *testing.T) {
	for _, c := range []struct{ from, to string }{
		{"runtime/engine", "runtime/config"},
		{"runtime/engine", "builtins/source/stdin"},
		{"runtime/config", "runtime/engine"},
		{"runtime/component", "runtime/engine"},
		{"builtins/source/kafka", "runtime/engine"},
		{"builtins/sink/http", "runtime/config"},
		{"builtins/source/kafka", "builtins/sink/kafka"},
		{"cmd/sluice", "builtins/source/generate"},
		{"cmd/sluice", "builtins/sink/file"},
		{"runtime/message", "runtime/component"},
	} {
		l := layerOf(c.from)
		if l == nil {
			t.Fatalf("%s has no layer", c.from)
		}
		if allowed(l, c.from, c.to) {
			t.Errorf("%s may import %s, but the rules exist to forbid it", c.from, c.to)
		}
	}
	for _, c := range []struct{ from, to string }{
		{"runtime/engine", "runtime/component"},
		{"builtins/source/kafka", "builtins/internal/kafkaconf"},
		{"builtins/filter", "builtins/filter/pattern"},
		{"cmd/sluice", "builtins"},
		{"runtime/runner", "runtime/engine"},
	} {
		if l := layerOf(c.from); !allowed(l, c.from, c.to) {
			t.Errorf("%s may not import %s, but the design allows it", c.from, c.to)
		}
	}
}
