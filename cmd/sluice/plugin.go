package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/sluicehq/sluice/runtime/wasmhost"
)

//go:generate go run plugin_sdk_gen.go

// pluginSDK is the Go SDK (../../sdk without tests), packed by
// plugin_sdk_gen.go. `sluice plugin new` writes it beside a scaffold made
// outside this repository, so the plugin builds offline with only Go.
//
//go:embed plugin_sdk.tgz
var pluginSDK []byte

// sdkModule is the Go SDK's module path.
const sdkModule = "github.com/sluicehq/sluice/sdk"

// pluginBuildFlags are the `go build` flags of a plugin, with GOOS=wasip1
// GOARCH=wasm: a reactor (-buildmode=c-shared), reproducible (-trimpath),
// without debug tables (-s -w: the host drops names anyway).
var pluginBuildFlags = []string{"-buildmode=c-shared", "-trimpath", "-ldflags=-s -w"}

// pluginCmd scaffolds, builds and inspects WASM plugins.
func pluginCmd(args []string, stdout, stderr io.Writer) int {
	const usage = "Usage: sluice plugin new NAME [--dir DIR] [--module PATH]\n" +
		"       sluice plugin build DIR [-o FILE.wasm]\n" +
		"       sluice plugin inspect [--json] FILE.wasm\n\n" +
		"Scaffolds a Go WASM transform, builds it, and shows what the host sees of a module.\n" +
		"Run 'sluice help plugin SUBCOMMAND' for a subcommand's options."
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "new":
		return pluginNew(args[1:], stdout, stderr)
	case "build":
		return pluginBuild(args[1:], stdout, stderr)
	case "inspect":
		return pluginInspect(args[1:], stdout, stderr)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "sluice plugin: unknown subcommand %q (want new, build or inspect)\n", args[0])
	return exitUsage
}

var pluginName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// pluginNew writes a Go plugin project: main.go with a handler, a native
// test, an example task and events, and the SDK beside it (or a replace
// to this repository's sdk/ when the folder is inside a checkout).
func pluginNew(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plugin new", stderr, "plugin new NAME [--dir DIR] [--module PATH]",
		"Writes a Go plugin project: a handler, its test, an example task and events, and the SDK.")
	dir := fs.String("dir", "", "folder to create (default: ./NAME)")
	module := fs.String("module", "", "Go module path of the plugin (default: NAME)")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 1, 1, "the plugin's NAME") {
		return exitUsage
	}
	name := pos[0]
	if !pluginName.MatchString(name) {
		fmt.Fprintf(stderr, "sluice plugin new: name %q: use lower-case letters, digits and dashes, starting with a letter (e.g. mask-emails)\n", name)
		return exitUsage
	}
	if *dir == "" {
		*dir = name
	}
	if *module == "" {
		*module = name
	}
	if err := writeScaffold(*dir, name, *module); err != nil {
		fmt.Fprintf(stderr, "sluice plugin new: %v\n", err)
		return exitFailed
	}
	fmt.Fprintf(stdout, `created plugin %[1]s in %[2]s
  cd %[2]s
  go test ./...                               # the native tests (no WASM)
  sluice plugin build .                       # -> %[1]s.wasm
  sluice test task.toml --input events.jsonl  # run it in a task
`, name, *dir)
	return exitOK
}

func writeScaffold(dir, name, module string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if ents, err := os.ReadDir(abs); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty: choose another --dir", dir)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return err
	}
	// Inside a checkout of Sluice the plugin uses its sdk/; elsewhere a
	// copy of the SDK this binary carries goes beside it.
	sdkDir := "./sluice-sdk"
	if repo := findSDK(abs); repo != "" {
		rel, err := filepath.Rel(abs, repo)
		if err == nil {
			sdkDir = filepath.ToSlash(rel)
			if !strings.HasPrefix(sdkDir, ".") {
				sdkDir = "./" + sdkDir
			}
		}
	} else if err := unpackSDK(filepath.Join(abs, "sluice-sdk")); err != nil {
		return fmt.Errorf("write the SDK: %w", err)
	}
	fill := strings.NewReplacer("@NAME@", name, "@MODULE@", module, "@SDKDIR@", sdkDir, "@SDK@", sdkModule, "@BT@", "`")
	for _, f := range scaffoldFiles {
		if err := os.WriteFile(filepath.Join(abs, f.name), []byte(fill.Replace(f.text)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// findSDK returns this repository's sdk/ folder when dir lies inside a
// checkout of Sluice, else "".
func findSDK(dir string) string {
	for d := dir; ; {
		gomod, err := os.ReadFile(filepath.Join(d, "sdk", "go.mod"))
		if err == nil && strings.HasPrefix(string(gomod), "module "+sdkModule+"\n") {
			return filepath.Join(d, "sdk")
		}
		parent := filepath.Dir(d)
		if parent == d {
			return ""
		}
		d = parent
	}
}

// unpackSDK writes the embedded SDK to dir.
func unpackSDK(dir string) error {
	files, err := sdkFiles()
	if err != nil {
		return err
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// sdkFiles returns the embedded SDK's files by slash path.
func sdkFiles() (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(pluginSDK))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg || strings.Contains(h.Name, "..") || strings.HasPrefix(h.Name, "/") {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[h.Name] = b
	}
}

// scaffoldFile is a file of a new plugin; @NAME@, @MODULE@, @SDK@ (the
// SDK's module path), @SDKDIR@ (its folder) and @BT@ (a backquote) are
// filled in.
type scaffoldFile struct{ name, text string }

var scaffoldFiles = []scaffoldFile{
	{"go.mod", `module @MODULE@

go 1.24

require @SDK@ v0.0.0

replace @SDK@ => @SDKDIR@
`},
	{"main.go", `// Command @NAME@ is a Sluice WASM transform. Build it with
//
//	sluice plugin build .
//
// (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o @NAME@.wasm .)
package main

import (
	"bytes"

	"@SDK@"
	"@SDK@/jsonfield"
)

// Config is the plugin's config table (the task's config = { ... }).
type Config struct {
	Field string
}

var cfg = Config{Field: "name"} // defaults

func init() { // a WASM reactor runs init functions, not main
	sdk.Register(sdk.Plugin{
		Name:    "@NAME@",
		Version: "0.1.0",
		Summary: "upper-cases one field of data",
		// The config's keys, where each value goes and what it is for: the
		// SDK decodes them (unknown keys and wrong types are rejected) and
		// the host checks task files against them.
		Params: []sdk.Param{
			{Name: "field", Into: &cfg.Field, Doc: "field of data to upper-case"},
		},
		Handler: sdk.MapFunc(upper),
	})
}

// upper returns the record's payload with data.<field> upper-cased. The
// string is unescaped before it changes and quoted again after, so escapes
// (\n, \u00e9, \") and non-ASCII text stay valid JSON: upper-casing the
// raw JSON text would turn \u00e9 into the invalid \U00E9. It appends the
// new payload to dst (scratch space) and returns the input itself to pass a
// record on unchanged, without a copy.
func upper(r *sdk.Record, dst []byte) ([]byte, error) {
	doc := r.Payload()
	s, ok := jsonfield.GetString(doc, "data", cfg.Field)
	if !ok {
		return doc, nil // no such field, or not a string
	}
	return jsonfield.SetString(dst, doc, bytes.ToUpper(s), "data", cfg.Field)
}

func main() {}
`},
	{"main_test.go", `package main

import (
	"encoding/json"
	"testing"

	"@SDK@/sdktest"
)

func TestUpper(t *testing.T) {
	h := sdktest.New(t, @BT@{"field": "name"}@BT@)
	res := h.Process(
		sdktest.Event(@BT@{"id":"1","data":{"name":"ada"}}@BT@),
		sdktest.Event(@BT@{"id":"2","data":{"other":1}}@BT@),
		sdktest.Event(@BT@{"id":"3","data":{"name":"caf\u00e9 \"\u00fcber\"\n\t\/ok"}}@BT@),
		sdktest.Event(@BT@{"id":"4","data":{"name":"straße ǆ ﬁ 😀"}}@BT@),
		sdktest.Event(@BT@{"id":"5","data":{"name":7}}@BT@),
	)
	want := map[int]string{
		0: @BT@{"id":"1","data":{"name":"ADA"}}@BT@,
		2: @BT@{"id":"3","data":{"name":"CAFÉ \"ÜBER\"\n\t/OK"}}@BT@,
		3: @BT@{"id":"4","data":{"name":"STRAßE Ǆ ﬁ 😀"}}@BT@, // simple case mapping: ß and ﬁ have no one-rune upper case
	}
	for i, r := range res {
		w, changed := want[i]
		if !changed {
			if r.Kind != "pass" {
				t.Errorf("record %d: %+v, want it passed on unchanged", i, r)
			}
			continue
		}
		if r.Kind != "emit" || len(r.Outputs) != 1 {
			t.Fatalf("record %d: %+v", i, r)
		}
		got := r.Outputs[0].Payload
		if !json.Valid(got) {
			t.Errorf("record %d: invalid JSON %s", i, got)
		}
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal([]byte(w), &b)
		if gs, ws := fmtJSON(a), fmtJSON(b); gs != ws {
			t.Errorf("record %d: got %s, want %s", i, got, w)
		}
	}
}

func fmtJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
`},
	{"task.toml", `# A task running the plugin: events from stdin, through @NAME@.wasm, to
# stdout. Try it:
#   sluice plugin build .
#   sluice test task.toml --input events.jsonl
#   sluice run task.toml < events.jsonl
name = "@NAME@-demo"

[source]
type = "stdin"

[[transform]]
type = "wasm"
module = "@NAME@.wasm"          # relative to this file
config = { field = "name" }

[sink]
type = "stdout"
`},
	{"events.jsonl", `{"specversion":"1.0","id":"1","source":"demo","type":"user","data":{"name":"ada lovelace"}}
{"specversion":"1.0","id":"2","source":"demo","type":"user","data":{"name":"grace hopper"}}
{"specversion":"1.0","id":"3","source":"demo","type":"user","data":{"name":"\u00e9mile \"the ace\" zola"}}
`},
	{".gitignore", "*.wasm\n.sluice/\n"},
	{"README.md", `# @NAME@

A Sluice WASM transform written in Go with the Sluice SDK.

    go test ./...                               # native tests, no WASM
    sluice plugin build .                       # builds @NAME@.wasm
    sluice plugin inspect @NAME@.wasm        # what the host sees
    sluice test task.toml --input events.jsonl  # run it in a task

The SDK is in @SDKDIR@ (a replace directive in go.mod points at it), so the
plugin builds offline with only Go installed.
`},
}

// pluginBuild compiles a Go plugin to WASM and checks the result loads.
func pluginBuild(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plugin build", stderr, "plugin build DIR [-o FILE.wasm]",
		"Compiles the Go plugin in DIR to a WASM reactor with GOOS=wasip1 GOARCH=wasm and checks it loads.")
	out := fs.String("o", "", "output file (default: DIR/NAME.wasm, NAME being DIR's name)")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 1, 1, "the plugin's folder DIR") {
		return exitUsage
	}
	path, shell, err := buildPlugin(pos[0], *out, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin build: %v\n", err)
		return exitFailed
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin build: %v\n", err)
		return exitFailed
	}
	in, err := wasmhost.InspectModule(context.Background(), filepath.Base(path), wasm, wasmhost.Options{CacheDir: wasmhost.CacheDir("")})
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin build: %s does not load: %v\n", path, err)
		return exitFailed
	}
	d := in.Description
	fmt.Fprintf(stdout, "built %s (%.1f MB): %s %s, %d parameter(s)\n", path, float64(len(wasm))/1e6, d.Name, d.Version, len(d.Parameters))
	fmt.Fprintf(stdout, "the same by hand: %s\n", shell)
	return exitOK
}

// shellQuote quotes args for a POSIX shell, so a printed command can be
// pasted as it is.
func shellQuote(args ...string) string {
	out := make([]string, len(args))
	for i, a := range args {
		safe := a != ""
		for _, c := range a {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_-./,:=@%+", c)) {
				safe = false
				break
			}
		}
		if safe {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}

// buildPlugin runs go build for the plugin in dir and returns the output
// path and the same build as a shell command a user can paste. The module
// is written next to its final name and renamed, so a reader never sees
// half a file.
func buildPlugin(dir, out string, stderr io.Writer) (path, shell string, err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", "", err
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return "", "", fmt.Errorf("%s is not a folder with a Go plugin (create one with sluice plugin new NAME)", dir)
	}
	if out == "" {
		out = filepath.Join(abs, filepath.Base(abs)+".wasm")
	}
	if out, err = filepath.Abs(out); err != nil {
		return "", "", err
	}
	env := []string{"GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0"}
	buildArgs := append(append([]string{"go", "build"}, pluginBuildFlags...), "-o")
	shell = "cd " + shellQuote(abs) + " && " + shellQuote(env...) + " " + shellQuote(append(buildArgs, out, ".")...)
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", "", errors.New("the Go toolchain (1.24 or later) is not on PATH: install it from go.dev/dl")
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		return "", "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(gobin, append(buildArgs[1:], tmp.Name(), ".")...)
	cmd.Dir = abs
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Run(); err != nil {
		return "", "", fmt.Errorf("go build failed (%v); the same by hand:\n  %s", err, shell)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return "", "", err
	}
	return out, shell, nil
}

// pluginInspect prints what the host sees of a module.
func pluginInspect(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("plugin inspect", stderr, "plugin inspect [--json] FILE.wasm",
		"Shows what the host sees of a module: ABI version, description, parameters, memory, imports, exports.")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 1, 1, "one FILE.wasm") {
		return exitUsage
	}
	wasm, err := wasmhost.ReadModule(pos[0]) // regular files only: /dev/zero or a FIFO would never end
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin inspect: %v\n", err)
		return exitFailed
	}
	in, err := wasmhost.InspectModule(context.Background(), filepath.Base(pos[0]), wasm, wasmhost.Options{CacheDir: wasmhost.CacheDir("")})
	if err != nil {
		fmt.Fprintf(stderr, "sluice plugin inspect: %s: %v\n", pos[0], err)
		return exitFailed
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(in)
		return exitOK
	}
	d := in.Description
	fmt.Fprintf(stdout, "module       %s (%d bytes)\n", pos[0], in.Size)
	fmt.Fprintf(stdout, "ABI version  %d\n", in.ABIVersion)
	fmt.Fprintf(stdout, "name         %s %s\n", d.Name, d.Version)
	if d.Summary != "" {
		fmt.Fprintf(stdout, "summary      %s\n", d.Summary)
	}
	fmt.Fprintf(stdout, "memory       %d KiB initial, %d KiB maximum\n", in.MemoryPages*64, in.MemoryMaxPages*64)
	fmt.Fprintf(stdout, "protection   %d runaway checks in %d functions\n", in.InstrumentedLoops, in.InstrumentedFuncs)
	switch {
	case d.Parameters == nil:
		fmt.Fprintln(stdout, "parameters   (not declared: the module checks its config itself)")
	case len(d.Parameters) == 0:
		fmt.Fprintln(stdout, "parameters   none")
	default:
		fmt.Fprintln(stdout, "parameters")
		for _, p := range d.Parameters {
			req := ""
			if p.Required {
				req = ", required"
			}
			def := ""
			if len(p.Default) > 0 {
				def = ", default " + string(p.Default)
			}
			fmt.Fprintf(stdout, "  %-12s %s%s%s\n", p.Name, p.Type, req, def)
			if p.Doc != "" {
				fmt.Fprintf(stdout, "  %-12s %s\n", "", p.Doc)
			}
		}
	}
	fmt.Fprintln(stdout, "imports")
	for _, im := range in.Imports {
		fmt.Fprintf(stdout, "  %s\n", im)
	}
	fmt.Fprintln(stdout, "exports")
	for _, ex := range in.Exports {
		if slices.Contains(in.Memories, ex) {
			fmt.Fprintf(stdout, "  %s (memory)\n", ex)
			continue
		}
		fmt.Fprintf(stdout, "  %s\n", ex)
	}
	return exitOK
}
