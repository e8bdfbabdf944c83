package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

var (
	sharedOnce sync.Once
	shared     *component.Shared
)

// env returns an Env whose WASM host uses the repository-wide test cache.
func env(t *testing.T, dir, stateDir string) component.Env {
	t.Helper()
	sharedOnce.Do(func() {
		shared = component.NewShared()
		h, err := wasmhost.New(context.Background(), wasmhost.Options{CacheDir: wasmtest.CacheDir()})
		if err != nil {
			t.Fatal(err)
		}
		if err := wasmhost.Install(shared, "", h); err != nil {
			t.Fatal(err)
		}
	})
	if stateDir != "" {
		h, _ := wasmhost.Shared(component.Env{Shared: shared})
		wasmhost.Install(shared, stateDir, h)
	}
	return component.Env{Task: "t", Stage: "transform[0]", Dir: dir, StateDir: stateDir, Concurrency: 2, MaxEvent: 1 << 20,
		Logger: zerolog.New(zerolog.NewTestWriter(t)), Shared: shared, Metrics: metrics.New(),
		Problems: component.NewProblems("transform", "[0]")}
}

// decode decodes a [[transform]] body the way the loader does.
func decode(t *testing.T, src string) (*Config, *component.Problems) {
	t.Helper()
	cfg, p := componenttest.Decode(t, Register, component.KindTransform, "wasm", src, "transform", "[0]")
	return cfg.(*Config), p
}

func problems(p *component.Problems) string {
	var s []string
	for _, pr := range p.List() {
		s = append(s, pr.PathString()+": "+pr.Msg)
	}
	return strings.Join(s, "\n")
}

func writeModule(t *testing.T, dir, name string, wasm []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestBuildProblems(t *testing.T) {
	dir := t.TempDir()
	hostile, _ := wasmtest.GoGuest(t, "hostile")
	writeModule(t, dir, "hostile.wasm", hostile)
	writeModule(t, dir, "text.wasm", []byte("hello"))
	writeModule(t, dir, "v9.wasm", wasmtest.ABIModule{Version: 9}.Bytes())
	writeModule(t, dir, "net.wasm", wasmtest.ABIModule{Imports: []wasmtest.Import{{Module: "env", Name: "connect", Type: wasmtest.FuncType{}}}}.Bytes())
	writeModule(t, dir, "nodesc.wasm", wasmtest.ABIModule{NoDescribe: true}.Bytes())
	writeModule(t, dir, "keyed.wasm", wasmtest.ABIModule{InitError: `invalid config: key "any": must be lower-case`}.Bytes())
	// Things a module path must never be read from: a device that never
	// ends, a FIFO with no writer (opening it would block), a folder, and
	// a file over the size cap (sparse: it takes no disk space).
	fifo := filepath.Join(dir, "fifo.wasm")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.wasm")
	if err := os.WriteFile(huge, wasmtest.ABIModule{}.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(huge, wasmhost.MaxModuleSize+1); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.wasm"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src, want string
	}{
		{"dev zero", `module = "/dev/zero"`, "transform[0].module: WASM module /dev/zero is not a regular file (a character device): a module must be a .wasm file"},
		{"fifo", `module = "fifo.wasm"`, "transform[0].module: WASM module " + fifo + " is not a regular file (a FIFO)"},
		{"folder", `module = "folder.wasm"`, "is not a regular file (a folder)"},
		{"huge", `module = "huge.wasm"`, "transform[0].module: WASM module " + huge + " is 268435457 bytes, more than the 256 MiB a module may have"},
		{"missing file", `module = "nope.wasm"`, "transform[0].module: cannot read WASM module " + filepath.Join(dir, "nope.wasm") + ": no such file or directory"},
		{"not wasm", `module = "text.wasm"`, "transform[0].module: invalid WASM module " + filepath.Join(dir, "text.wasm") + ": not a WebAssembly module"},
		{"abi version", `module = "v9.wasm"`, "transform[0].module: WASM module " + filepath.Join(dir, "v9.wasm") + " failed to start: module speaks Sluice ABI version 9; this host speaks version 1"},
		{"import", `module = "net.wasm"`, "imports env.connect, which the sandbox does not grant"},
		{"missing export", `module = "nodesc.wasm"`, "does not export sluice_describe"},
		{"init rejects", `module = "hostile.wasm"
config = { reject = true }`, "transform[0].config: module rejected its config: reject is set"},
		{"unknown parameter", `module = "hostile.wasm"
config = { tga = "x" }`, `transform[0].config.tga: module hostile has no parameter "tga" (did you mean "tag"?); it accepts reject, tag`},
		{"declared type", `module = "hostile.wasm"
config = { tag = 5 }`, `transform[0].config.tag: module hostile expects a string, got integer 5`},
		{"keyed rejection", `module = "keyed.wasm"
config = { any = "X" }`, `transform[0].config.any: module rejected its config: must be lower-case`},
		{"memory too small", `module = "hostile.wasm"
memory_limit = "1MiB"`, "more than the memory limit of 1024 KiB; raise memory_limit"},
		{"bad timeout", `module = "x.wasm"
timeout = "0s"`, "transform[0].timeout: timeout 0s is out of range: use 1ms..1m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, p := decode(t, tc.src)
			if p.Len() == 0 {
				e := env(t, dir, "")
				_, err := build(cfg, e)
				if err == nil {
					t.Fatal("build succeeded")
				}
				p = e.Problems
			}
			if got := problems(p); !strings.Contains(got, tc.want) {
				t.Fatalf("problems:\n%s\nwant a line containing:\n%s", got, tc.want)
			}
		})
	}
}

func TestApplyThroughBuiltin(t *testing.T) {
	dir := t.TempDir()
	hostile, _ := wasmtest.GoGuest(t, "hostile")
	writeModule(t, dir, "hostile.wasm", hostile)
	stateDir := t.TempDir()
	cfg, p := decode(t, `module = "hostile.wasm"
config = { tag = "builtin" }
timeout = "200ms"
persist_state = true`)
	if p.Len() > 0 {
		t.Fatal(problems(p))
	}
	run := func(want string) {
		t.Helper()
		e := env(t, dir, stateDir)
		inst, err := build(cfg, e)
		if err != nil {
			t.Fatalf("%v\n%s", err, problems(e.Problems))
		}
		tr := inst.(*Transform)
		ctx := context.Background()
		if err := tr.Open(ctx); err != nil {
			t.Fatal(err)
		}
		// State side effects of a batch that fails are repeated when the
		// host re-runs it to isolate the culprit (at-least-once), so the
		// counting record travels alone.
		var out component.Output
		if err := tr.Apply(ctx, []message.Message{{Payload: []byte(`{"do":"count","key":"k"}`)}}, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 1 || string(out.Messages[0].Payload) != want {
			t.Fatalf("count outputs %+v failures %+v", out.Messages, out.Failures)
		}
		in := []message.Message{
			{Payload: []byte(`{"do":"loop"}`), Ref: 0},
			{Payload: []byte(`{"do":"fail"}`), Ref: 1},
			{Payload: []byte(`{"do":"ok"}`), Ref: 2},
		}
		out.Reset()
		if err := tr.Apply(ctx, in, &out); err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) != 1 || out.Messages[0].Ref != 2 {
			t.Fatalf("outputs %+v", out.Messages)
		}
		if len(out.Failures) != 2 || out.Failures[0].Ref != 0 || out.Failures[1].Ref != 1 {
			t.Fatalf("failures %+v", out.Failures)
		}
		if err := tr.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run("1")
	run("2") // the state was saved at Close and loaded at the next build
}

func TestSpecExampleDecodes(t *testing.T) {
	reg := component.NewRegistry()
	Register(reg)
	spec, _ := reg.Lookup(component.KindTransform, "wasm")
	var doc struct {
		Transform []map[string]any `toml:"transform"`
	}
	if _, err := toml.Decode(spec.Example, &doc); err != nil {
		t.Fatal(err)
	}
	cfg := spec.New()
	p := component.NewProblems()
	component.Decode(doc.Transform[0], cfg, p, "type")
	if p.Len() > 0 {
		t.Fatal(problems(p))
	}
}

func TestRejectionPath(t *testing.T) {
	for msg, want := range map[string]string{
		`invalid config: key "limits.max[1]": expected an integer, got string`: `limits.max.[1]|expected an integer, got string`,
		`key "a": bad`:                      `a|bad`,
		`key "t[0][2]": bad`:                `t.[0].[2]|bad`,
		`invalid config: unknown field "x"`: `|invalid config: unknown field "x"`,
		`key "a[x]": bad`:                   `|key "a[x]": bad`,
	} {
		path, rest, _ := rejectionPath(msg)
		if got := strings.Join(path, ".") + "|" + rest; got != want {
			t.Errorf("%s: got %s, want %s", msg, got, want)
		}
	}
}

// docs/abi.md 4.2: the dead-letter reason of a FAIL or RETRY outcome reads
// "wasm module NAME: module failed the record (code C): MESSAGE", NAME
// the module file's name without its folder, like a trap's.
func TestFailOutcomeReasonNamesTheModule(t *testing.T) {
	dir := t.TempDir()
	hostile, _ := wasmtest.GoGuest(t, "hostile")
	if err := os.Mkdir(filepath.Join(dir, "plugins"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeModule(t, dir, "plugins/hostile.wasm", hostile)
	cfg, p := decode(t, `module = "plugins/hostile.wasm"`)
	if p.Len() > 0 {
		t.Fatal(problems(p))
	}
	e := env(t, dir, "")
	inst, err := build(cfg, e)
	if err != nil {
		t.Fatalf("%v\n%s", err, problems(e.Problems))
	}
	tr := inst.(*Transform)
	ctx := context.Background()
	defer tr.Close(ctx)
	var out component.Output
	in := []message.Message{{Payload: []byte(`{"do":"fail"}`), Ref: 0}, {Payload: []byte(`{"do":"retry"}`), Ref: 1}, {Payload: []byte(`{"do":"exit"}`), Ref: 2}}
	if err := tr.Apply(ctx, in, &out); err != nil {
		t.Fatal(err)
	}
	want := map[int32]string{
		0: "wasm module hostile.wasm: module failed the record (code 42): told to fail",
		1: "wasm module hostile.wasm: module asked to retry the record (code 1): told to retry",
		2: "wasm module hostile.wasm: wasm trap: module exited with code 7",
	}
	if len(out.Failures) != len(want) {
		t.Fatalf("failures %+v", out.Failures)
	}
	for _, f := range out.Failures {
		if f.Err.Error() != want[f.Ref] {
			t.Errorf("record %d: reason %q, want %q", f.Ref, f.Err, want[f.Ref])
		}
	}
}

// persistent opens the persist_state transform of hostile.wasm in dir at
// stage (as [[transform]] N of task "t"); count counts key k and returns
// the count.
type persistent struct {
	t             *testing.T
	dir, stateDir string
}

func (p persistent) open(stage string) *Transform {
	p.t.Helper()
	tr := p.build(stage, false)
	if err := tr.Open(context.Background()); err != nil {
		p.t.Fatal(err)
	}
	return tr
}

// build builds the transform without opening it, as `sluice validate` and
// a reload's validation do; trial builds it for a trial run.
func (p persistent) build(stage string, trial bool) *Transform {
	p.t.Helper()
	cfg, pr := decode(p.t, "module = \"hostile.wasm\"\npersist_state = true")
	if pr.Len() > 0 {
		p.t.Fatal(problems(pr))
	}
	e := env(p.t, p.dir, p.stateDir)
	e.Stage = stage
	e.Trial = trial
	inst, err := build(cfg, e)
	if err != nil {
		p.t.Fatalf("%v\n%s", err, problems(e.Problems))
	}
	return inst.(*Transform)
}

func (p persistent) count(tr *Transform) string {
	p.t.Helper()
	var out component.Output
	if err := tr.Apply(context.Background(), []message.Message{{Payload: []byte(`{"do":"count","key":"k"}`)}}, &out); err != nil {
		p.t.Fatal(err)
	}
	if len(out.Messages) != 1 {
		p.t.Fatalf("outputs %+v failures %+v", out.Messages, out.Failures)
	}
	return string(out.Messages[0].Payload)
}

func (p persistent) close(tr *Transform) {
	p.t.Helper()
	if err := tr.Close(context.Background()); err != nil {
		p.t.Fatal(err)
	}
}

func newPersistent(t *testing.T) persistent {
	dir := t.TempDir()
	hostile, _ := wasmtest.GoGuest(t, "hostile")
	writeModule(t, dir, "hostile.wasm", hostile)
	return persistent{t: t, dir: dir, stateDir: t.TempDir()}
}

// A build that never ran (`sluice validate`, a reload's validation of an
// unchanged task) saves nothing when it is released: it saved the state it
// had loaded, over what the running task saved meanwhile.
func TestPersistedStateIsNotSavedByABuildThatNeverRan(t *testing.T) {
	p := newPersistent(t)
	running := p.open("transform[0]")
	p.count(running) // k=1
	validated := p.build("transform[0]", false)
	p.count(running) // k=2
	p.close(running)
	p.close(validated)
	a := p.open("transform[0]")
	defer p.close(a)
	if got := p.count(a); got != "3" {
		t.Errorf("counted %s after a restart, want 3: the running task's state was overwritten", got)
	}
}

// A trial run (`sluice test`, the admin API's playground) runs events that
// are not the task's: it starts from an empty state and saves nothing, so
// it neither reads nor changes the state of a task of the same name.
func TestPersistedStateIsNeitherReadNorSavedByATrialRun(t *testing.T) {
	p := newPersistent(t)
	a := p.open("transform[0]")
	p.count(a)
	p.close(a) // k=1 saved
	trial := p.build("transform[0]", true)
	if err := trial.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := p.count(trial); got != "1" {
		t.Errorf("a trial run counted %s, want 1: it started from the task's saved state", got)
	}
	p.count(trial)
	p.close(trial)
	a = p.open("transform[0]")
	defer p.close(a)
	if got := p.count(a); got != "2" {
		t.Errorf("counted %s after a trial run, want 2: the trial run saved its state", got)
	}
}

// Two [[transform]]s of one task that run the same module with
// persist_state keep separate stores (docs/abi.md 7.3: "The store belongs
// to one [[transform]] of one task"): they saved to one file, the last
// to close overwriting the other's state.
func TestPersistedStateIsPerTransform(t *testing.T) {
	p := newPersistent(t)
	a, b := p.open("transform[0]"), p.open("transform[1]")
	p.count(a) // a: k=1
	p.count(b)
	p.count(b) // b: k=2
	p.close(a)
	p.close(b)
	a, b = p.open("transform[0]"), p.open("transform[1]")
	defer p.close(a)
	defer p.close(b)
	if got := p.count(a); got != "2" {
		t.Errorf("transform[0] counted %s after a restart, want 2", got)
	}
	if got := p.count(b); got != "3" {
		t.Errorf("transform[1] counted %s after a restart, want 3", got)
	}
}

// A state file saved before the files were per [[transform]] (its name
// holds no stage) is loaded by the transforms that have no file of their
// own, each then saving under its own name; the old file is removed.
func TestPersistedStateOfBeforeIsKept(t *testing.T) {
	p := newPersistent(t)
	old := p.open("") // an Env without a stage names the file as before
	p.count(old)
	p.close(old) // k=1 in the file of before
	_, legacy := statePaths(p.stateDir, "t", "transform[0]", "hostile.wasm", filepath.Join(p.dir, "hostile.wasm"))
	if _, err := os.Stat(legacy); err != nil {
		t.Fatalf("the file of before: %v", err)
	}
	saved, err := os.ReadFile(legacy)
	if err != nil {
		t.Fatal(err)
	}

	// One transform: it goes on from the old file, which is then renamed.
	a := p.open("transform[0]")
	if got := p.count(a); got != "2" {
		t.Errorf("transform[0] counted %s, want 2: the state saved under the name of before was not loaded", got)
	}
	p.close(a)
	if _, err := os.Stat(legacy); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the file of before is still there: %v", err)
	}
	a = p.open("transform[0]")
	if got := p.count(a); got != "3" {
		t.Errorf("transform[0] counted %s after a second restart, want 3", got)
	}
	p.close(a)

	// Two transforms that shared the old file: each starts from it.
	p.stateDir = t.TempDir()
	_, legacy = statePaths(p.stateDir, "t", "transform[0]", "hostile.wasm", filepath.Join(p.dir, "hostile.wasm"))
	if err := os.MkdirAll(filepath.Dir(legacy), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, saved, 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := p.open("transform[0]"), p.open("transform[1]")
	p.count(a)
	if got := p.count(a); got != "3" {
		t.Errorf("transform[0] counted %s, want 3", got)
	}
	if got := p.count(b); got != "2" {
		t.Errorf("transform[1] counted %s, want 2", got)
	}
	p.close(a)
	p.close(b)
	a, b = p.open("transform[0]"), p.open("transform[1]")
	defer p.close(a)
	defer p.close(b)
	if got := p.count(a); got != "4" {
		t.Errorf("transform[0] counted %s after a restart, want 4", got)
	}
	if got := p.count(b); got != "3" {
		t.Errorf("transform[1] counted %s after a restart, want 3", got)
	}
}

func TestStatePaths(t *testing.T) {
	file, legacy := statePaths("/s", "orders", "transform[12]", "mask.wasm", "/tasks/plugins/mask.wasm")
	sum := sha256.Sum256([]byte("/tasks/plugins/mask.wasm"))
	base := filepath.Join("/s", "wasm-state", "orders", "mask-"+hex.EncodeToString(sum[:4]))
	if file != base+".transform-12.kv" || legacy != base+".kv" {
		t.Errorf("statePaths = %s, %s", file, legacy)
	}
	if file, legacy := statePaths("/s", "orders", "", "mask.wasm", "/tasks/plugins/mask.wasm"); file != base+".kv" || legacy != "" {
		t.Errorf("without a stage: %s, %s", file, legacy)
	}
}
