package builtins_test

import (
	"encoding/json"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
)

// keyExemptions are config keys that no builtin code reads through their
// field, each with the reason that is fine. Keys are "kind name path".
var keyExemptions = map[string]string{}

// TestEverySpecKeyIsRead checks that every key a registered component
// decodes is used: its config field is read by the builtins' code
// somewhere other than a Validate method (which only checks it). A key that
// the loader accepts and nothing reads is a key the user sets for nothing.
// Engine keys a component declares (concurrency, order, batch) are the
// engine's: runtime/runner's TestEveryTaskKeyReachesTheEngine covers them.
//
// The check is static: the builtins' packages are type-checked from source
// and every read of a struct field is noted by the struct's type and the
// field's name.
func TestEverySpecKeyIsRead(t *testing.T) {
	reads := fieldReads(t)
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	engineKeys := map[component.Kind]map[string]bool{component.KindSource: {}, component.KindSink: {}}
	for table, fs := range config.EngineFields() {
		kind := component.KindSink
		if table == "source" {
			kind = component.KindSource
		}
		for _, p := range leafPaths("", fs) {
			engineKeys[kind][p] = true
		}
	}
	checked, used := 0, map[string]bool{}
	for _, s := range r.Specs() {
		cfg := reflect.TypeOf(s.New()).Elem()
		walkFields(cfg, "", func(st reflect.Type, f reflect.StructField, path string) {
			key := string(s.Kind) + " " + s.Name + " " + path
			if engineKeys[s.Kind][path] {
				return
			}
			if _, ok := keyExemptions[key]; ok {
				used[key] = true
				return
			}
			checked++
			if !reads[st.PkgPath()+"."+st.Name()+"."+f.Name] {
				t.Errorf("%s %s: key %q (%s.%s) is decoded but never read outside Validate: use it, reject it, or add an exemption with the reason",
					s.Kind, s.Name, path, st.Name(), f.Name)
			}
		})
	}
	for k := range keyExemptions {
		if !used[k] {
			t.Errorf("exemption %q names no key", k)
		}
	}
	if checked < 100 {
		t.Fatalf("only %d keys checked", checked)
	}
}

func leafPaths(prefix string, fs []component.Field) []string {
	var out []string
	for _, f := range fs {
		if len(f.Fields) > 0 {
			out = append(out, leafPaths(prefix+f.Name+".", f.Fields)...)
			continue
		}
		out = append(out, prefix+f.Name)
	}
	return out
}

// walkFields calls fn for every key of the config struct t, descending
// into tables (struct fields) but not into leaf types (durations, sizes,
// text types).
func walkFields(t reflect.Type, prefix string, fn func(owner reflect.Type, f reflect.StructField, path string)) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()) && ft.PkgPath() != "time" {
			// A table: its own field counts as read when any of its keys is.
			walkFields(ft, prefix+name+".", fn)
			continue
		}
		fn(t, f, prefix+name)
	}
}

type listed struct {
	ImportPath string
	Dir        string
	GoFiles    []string
	Export     string
	Module     *struct{ Path string }
}

// fieldReads type-checks every package of builtins/ from source (their
// dependencies from export data) and returns the struct fields read outside
// Validate methods, as "pkgpath.Type.Field".
func fieldReads(t *testing.T) map[string]bool {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-export", "-json", "./...")
	cmd.Dir = "." // builtins/
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	exports := map[string]string{}
	var mine []listed
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listed
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		exports[p.ImportPath] = p.Export
		if strings.HasPrefix(p.ImportPath, "github.com/sluicehq/sluice/builtins") && len(p.GoFiles) > 0 {
			mine = append(mine, p)
		}
	}
	sort.Slice(mine, func(i, j int) bool { return mine[i].ImportPath < mine[j].ImportPath })
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, os.ErrNotExist
		}
		return os.Open(f)
	})
	reads := map[string]bool{}
	for _, p := range mine {
		var files []*ast.File
		for _, name := range p.GoFiles {
			f, err := parser.ParseFile(fset, filepath.Join(p.Dir, name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		info := &types.Info{Selections: map[*ast.SelectorExpr]*types.Selection{}}
		conf := types.Config{Importer: imp}
		if _, err := conf.Check(p.ImportPath, fset, files, info); err != nil {
			t.Fatalf("type-check %s: %v", p.ImportPath, err)
		}
		for _, f := range files {
			noteReads(f, info, reads)
		}
	}
	if len(reads) < 100 {
		t.Fatalf("only %d field reads found", len(reads))
	}
	return reads
}

// noteReads adds the fields f reads outside Validate methods.
func noteReads(f *ast.File, info *types.Info, reads map[string]bool) {
	written := map[*ast.SelectorExpr]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.FuncDecl:
			if n.Recv != nil && n.Name.Name == "Validate" {
				return false // checks, not uses
			}
		case *ast.AssignStmt:
			if n.Tok == token.ASSIGN || n.Tok == token.DEFINE {
				for _, l := range n.Lhs {
					if se, ok := l.(*ast.SelectorExpr); ok {
						written[se] = true
					}
				}
			}
		case *ast.SelectorExpr:
			sel, ok := info.Selections[n]
			if !ok || sel.Kind() != types.FieldVal || written[n] {
				return true
			}
			if key := fieldKey(sel); key != "" {
				reads[key] = true
			}
		}
		return true
	})
}

// fieldKey names the field sel selects as "pkgpath.Type.Field", following
// embedded fields to the struct that declares it.
func fieldKey(sel *types.Selection) string {
	typ := sel.Recv()
	idx := sel.Index()
	for _, i := range idx[:len(idx)-1] {
		st, ok := deref(typ).Underlying().(*types.Struct)
		if !ok {
			return ""
		}
		typ = st.Field(i).Type()
	}
	named, ok := deref(typ).(*types.Named)
	if !ok || named.Obj().Pkg() == nil {
		return ""
	}
	return named.Obj().Pkg().Path() + "." + named.Obj().Name() + "." + sel.Obj().Name()
}

func deref(t types.Type) types.Type {
	t = types.Unalias(t)
	if p, ok := t.(*types.Pointer); ok {
		return types.Unalias(p.Elem())
	}
	return t
}
