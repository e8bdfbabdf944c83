// Package wasm is the `wasm` transform: it runs a WebAssembly module that
// speaks the Sluice transform ABI (docs/abi.md) over each batch, in a
// sandbox with bounded memory, time and output. The host is
// runtime/wasmhost; Go modules are written with the sdk module.
package wasm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// Config is the wasm transform's configuration.
type Config struct {
	Module        string             `toml:"module" required:"true" doc:"Path of the .wasm module, relative to the task file's folder."`
	Config        map[string]any     `toml:"config" doc:"Table handed to the module once per instance, as JSON, at start; the module checks it and a rejection fails validation."`
	Timeout       component.Duration `toml:"timeout" doc:"Time budget of one call into the module (one batch of at most max_batch records). A call past it is stopped, and the record that caused it goes to the dead-letter queue. 1ms..1m."`
	MemoryLimit   component.ByteSize `toml:"memory_limit" doc:"Most linear memory one instance may use. A module that needs more at start fails validation; one that grows past it traps, failing the record it was processing. 1MiB..4GiB."`
	MaxBatch      int                `toml:"max_batch" min:"1" max:"65536" doc:"Records per call into the module."`
	MaxOutput     component.ByteSize `toml:"max_output" doc:"Most output bytes (payloads, keys, headers) one call may return; a record whose outputs exceed it goes to the dead-letter queue."`
	MaxOutputs    int                `toml:"max_outputs" min:"1" max:"16777216" doc:"Most outputs one call may return, empty ones included (each costs the host a message of about 170 bytes); a record whose outputs exceed it goes to the dead-letter queue."`
	StateMaxKeys  int                `toml:"state_max_keys" min:"1" max:"1073741824" doc:"Most entries in the module's key-value state (shared by the transform's instances). A put of a new key past it fails with FULL; the module decides what to do (the Go SDK returns ErrStateFull)."`
	StateMaxBytes component.ByteSize `toml:"state_max_bytes" doc:"Most bytes of the module's key-value state, counting keys, values and 64 bytes per entry. The state lives in the host's memory, outside memory_limit; a put past it fails with FULL. 1KiB..64GiB."`
	PersistState  bool               `toml:"persist_state" doc:"Save the module's key-value state in the state directory at stop and load it at start (needs a state directory)."`
}

// Defaults.
const (
	DefaultTimeout     = 100 * time.Millisecond
	DefaultMemoryLimit = 32 << 20
)

// Validate checks the bounds that tags cannot express.
func (c *Config) Validate(p *component.Problems) {
	if d := c.Timeout.D(); d < time.Millisecond || d > time.Minute {
		p.Addf([]string{"timeout"}, "timeout %s is out of range: use 1ms..1m", d)
	}
	if c.MemoryLimit < 1<<20 || c.MemoryLimit > 4<<30 {
		p.Addf([]string{"memory_limit"}, "memory_limit %s is out of range: use 1MiB..4GiB", c.MemoryLimit)
	}
	if c.StateMaxBytes < 1<<10 || c.StateMaxBytes > 64<<30 {
		p.Addf([]string{"state_max_bytes"}, "state_max_bytes %s is out of range: use 1KiB..64GiB", c.StateMaxBytes)
	}
	if c.MaxOutput < 1<<10 {
		p.Addf([]string{"max_output"}, "max_output %s is too small: use at least 1KiB", c.MaxOutput)
	}
}

// Register adds the wasm transform to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindTransform,
		Name:    "wasm",
		Summary: "Run a sandboxed WebAssembly module over each batch (custom logic in any language).",
		Description: "Loads `module` (core WebAssembly with WASI preview 1, built as a reactor, speaking the Sluice ABI " +
			"of docs/abi.md; Go modules use the `sdk` module), compiles it once (the compiled code is cached in the " +
			"state directory), hands it `config` as JSON, then calls it once per batch. For each record the module " +
			"passes it on, replaces it, emits several outputs, drops it, asks for a retry (the task's retry policy " +
			"applies) or fails it (the record goes to the dead-letter queue with the module's message); outputs may " +
			"change the payload, key and headers. The sandbox grants no files, sockets or environment (the clock is " +
			"readable), bounds memory (`memory_limit`), time per call (`timeout`), output (`max_output`, `max_outputs`) " +
			"and key-value state (`state_max_keys`, `state_max_bytes`); a trap, " +
			"a timeout or a limit breach fails only the offending record, the instance is replaced and the rest of " +
			"the batch goes on. Modules may log, count, and keep key-value state shared by their instances.",
		Example: "[[transform]]\ntype = \"wasm\"\nmodule = \"plugins/mask-pii/mask-pii.wasm\"\n" +
			"config = { fields = [\"email\"] }\ntimeout = \"100ms\"\nmemory_limit = \"32MiB\"\n",
		New: func() any {
			return &Config{
				Timeout:       component.Duration(DefaultTimeout),
				MemoryLimit:   DefaultMemoryLimit,
				MaxBatch:      wasmhost.DefaultMaxBatch,
				MaxOutput:     wasmhost.DefaultMaxOutput,
				MaxOutputs:    wasmhost.DefaultMaxOutputs,
				StateMaxKeys:  wasmhost.DefaultKVEntries,
				StateMaxBytes: wasmhost.DefaultKVBytes,
			}
		},
		Build: build,
	})
}

// Transform is a built wasm transform.
type Transform struct {
	tr        *wasmhost.Transformer
	statePath string
	// legacyPath is the file the state was loaded from, named as before
	// the name held the stage; Close removes it once the state is saved
	// under statePath.
	legacyPath string
	logger     zerolog.Logger
	// opened: the transform ran (Open was called). Only a run saves the
	// state at Close: a build that never ran (`sluice validate`, a
	// reload's validation) saved the state it had loaded over what the
	// running task saved meanwhile.
	opened bool
}

var (
	_ component.Transform = (*Transform)(nil)
	_ component.Opener    = (*Transform)(nil)
	_ component.Closer    = (*Transform)(nil)
)

func build(cfg any, env component.Env) (any, error) {
	c := cfg.(*Config)
	p := env.Problems
	if p == nil {
		p = component.NewProblems()
	}
	before := p.Len()
	failed := func() (any, error) {
		if p != env.Problems || env.Problems == nil {
			return nil, errors.New(p.List()[before].Msg)
		}
		return nil, fmt.Errorf("wasm module %s not loaded (%d problem(s) above)", c.Module, p.Len()-before)
	}
	path := c.Module
	if !filepath.IsAbs(path) {
		path = filepath.Join(env.Dir, path)
	}
	// The time of each start-up step is logged at debug level (hash: the
	// file's content; load: read, check, rewrite and compile, or take the
	// rewrite and the code from the compilation cache; start: first
	// instance, describe, init). docs/performance.md, "The code run from
	// wazero's cache", has what a second start spends.
	began := time.Now()
	readFailed := func(err error) (any, error) {
		var fe *wasmhost.ModuleFileError
		if errors.As(err, &fe) {
			p.Addf([]string{"module"}, "WASM module %v", err)
			return failed()
		}
		hint := ""
		if errors.Is(err, fs.ErrNotExist) {
			hint = " (build it with 'sluice plugin build DIR'; the first-party plugins with 'make plugins')"
		}
		if u := errors.Unwrap(err); u != nil {
			err = u
		}
		p.Addf([]string{"module"}, "cannot read WASM module %s: %v%s", path, err, hint)
		return failed()
	}
	// The module is hashed here; its bytes are read only if the host has
	// not rewritten it before (a second start reads them from its cache).
	file, err := wasmhost.OpenModule(path)
	if err != nil {
		return readFailed(err)
	}
	host, err := wasmhost.Shared(env)
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	name := filepath.Base(path)
	read := time.Now()
	mod, err := host.LoadFile(ctx, name, file, wasmhost.LoadOptions{MemoryLimit: int64(c.MemoryLimit)})
	if err != nil {
		if re := (*wasmhost.ModuleReadError)(nil); errors.As(err, &re) {
			return readFailed(re.Err)
		}
		p.Addf([]string{"module"}, "invalid WASM module %s: %v", path, err)
		return failed()
	}
	var configJSON []byte
	if c.Config != nil {
		configJSON, err = json.Marshal(c.Config)
		if err != nil {
			p.Addf([]string{"config"}, "config cannot be handed to the module as JSON: %v", err)
			return failed()
		}
	}
	kv := wasmhost.NewKVQuota(wasmhost.KVQuota{Keys: c.StateMaxKeys, Bytes: int64(c.StateMaxBytes)})
	t := &Transform{}
	// A trial run's events are not the task's: its state starts empty and
	// is not saved (persist_state is accepted, so a task file's transforms
	// can be tried as they are).
	if c.PersistState && !env.Trial {
		if env.StateDir == "" {
			p.Addf([]string{"persist_state"}, "persist_state needs a state directory (sluice run --state-dir)")
			return failed()
		}
		var legacy string
		t.statePath, legacy = statePaths(env.StateDir, env.Task, env.Stage, name, path)
		from := t.statePath
		if legacy != "" && missing(t.statePath) && !missing(legacy) {
			from, t.legacyPath = legacy, legacy
			env.Logger.Info().Str("from", legacy).Str("to", t.statePath).
				Msg("wasm state: loading the file saved before state files were per [[transform]]; it is saved under its new name at stop")
		}
		if err := kv.Load(from); err != nil {
			p.Addf([]string{"persist_state"}, "%v", err)
			return failed()
		}
	}
	lg := env.Logger
	t.logger = lg
	loaded := time.Now()
	t.tr = mod.NewTransformer(wasmhost.TransformerConfig{
		Task:       env.Task,
		Config:     configJSON,
		Instances:  env.Concurrency,
		Timeout:    c.Timeout.D(),
		MaxBatch:   c.MaxBatch,
		MaxOutput:  c.MaxOutput.Int(),
		MaxOutputs: c.MaxOutputs,
		Logger:     &lg,
		Metrics:    env.Metrics,
		KV:         kv,
	})
	desc, err := t.tr.Start(ctx)
	if desc != nil {
		checkParams(p, desc, c.Config)
	}
	if err != nil {
		var ce *wasmhost.ConfigError
		switch {
		case p.Len() > before:
			// The parameter check already said what is wrong with config.
		case errors.As(err, &ce):
			if sub, msg, ok := rejectionPath(ce.Msg); ok {
				p.Addf(append([]string{"config"}, sub...), "module rejected its config: %s", msg)
			} else {
				p.Addf([]string{"config"}, "%v", err)
			}
		default:
			p.Addf([]string{"module"}, "WASM module %s failed to start: %v", path, err)
		}
		t.tr.Close(ctx)
		return failed()
	}
	if p.Len() > before {
		t.tr.Close(ctx)
		return failed()
	}
	lg.Debug().Str("module", name).Int64("bytes", file.Size()).
		Dur("hash", read.Sub(began)).Dur("load", loaded.Sub(read)).Dur("start", time.Since(loaded)).
		Msg("wasm module started")
	return t, nil
}

// statePaths returns the file of the transform's saved state,
// STATE_DIR/wasm-state/TASK/MODULE-HASH.STAGE.kv (HASH: of the module's
// path; STAGE: "transform-N" for [[transform]] N), and legacy, the file of
// before the name held the stage, MODULE-HASH.kv, which the task's
// transforms running the module shared ("" without a stage).
func statePaths(stateDir, task, stage, name, path string) (file, legacy string) {
	sum := sha256.Sum256([]byte(path))
	base := filepath.Join(stateDir, "wasm-state", task, strings.TrimSuffix(name, ".wasm")+"-"+hex.EncodeToString(sum[:4]))
	if stage == "" {
		return base + ".kv", ""
	}
	return base + "." + fileSafe(stage) + ".kv", base + ".kv"
}

// fileSafe turns a stage ("transform[2]") into a file name part
// ("transform-2").
func fileSafe(stage string) string {
	var b strings.Builder
	for _, r := range stage {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// missing reports whether path does not exist (an error other than that
// counts as existing: loading it reports the error).
func missing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// checkParams reports config keys the module does not declare and
// required ones that are missing, when the module lists its parameters.
func checkParams(p *component.Problems, d *wasmhost.Description, config map[string]any) {
	if d.Parameters == nil {
		return
	}
	names := make([]string, 0, len(d.Parameters))
	for _, prm := range d.Parameters {
		names = append(names, prm.Name)
	}
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		found := false
		for _, n := range names {
			found = found || n == k
		}
		if !found {
			valid := "it takes no config"
			if len(names) > 0 {
				valid = "it accepts " + strings.Join(names, ", ")
			}
			p.KeyErrorf([]string{"config", k}, "module %s has no parameter %q%s; %s", d.Name, k, component.Suggest(k, names), valid)
		}
	}
	for _, prm := range d.Parameters {
		v, ok := config[prm.Name]
		if prm.Required && !ok {
			p.KeyErrorf([]string{"config"}, "module %s needs config key %q (%s)", d.Name, prm.Name, prm.Doc)
		}
		if ok {
			checkType(p, []string{"config", prm.Name}, prm.Type, v, d.Name)
		}
	}
}

// checkType reports a config value whose TOML type is not the parameter's
// declared type (string, bool, int, float, list of T, table, any), at the
// value's own path.
func checkType(p *component.Problems, path []string, typ string, v any, module string) {
	ok := true
	switch {
	case typ == "" || typ == "any":
	case typ == "string":
		_, ok = v.(string)
	case typ == "bool":
		_, ok = v.(bool)
	case typ == "int":
		_, ok = v.(int64)
	case typ == "float":
		switch v.(type) {
		case int64, float64:
		default:
			ok = false
		}
	case typ == "table":
		_, ok = v.(map[string]any)
	case strings.HasPrefix(typ, "list of "):
		elem := strings.TrimPrefix(typ, "list of ")
		switch l := v.(type) {
		case []any:
			for i, e := range l {
				checkType(p, append(slices.Clone(path), component.Index(i)), elem, e, module)
			}
		case []map[string]any:
			for i, e := range l {
				checkType(p, append(slices.Clone(path), component.Index(i)), elem, e, module)
			}
		default:
			ok = false
		}
	}
	if !ok {
		p.Addf(path, "module %s expects %s, got %s", module, withArticle(typ), component.Describe(v))
	}
}

func withArticle(typ string) string {
	switch {
	case strings.HasPrefix(typ, "list"):
		return "a " + typ
	case typ == "int":
		return "an integer"
	case typ == "float":
		return "a number"
	}
	return "a " + typ
}

// keyedRejection matches a rejection that names the config key at fault:
// `key "a.b[2]": message` (docs/abi.md, sluice_init).
var keyedRejection = regexp.MustCompile(`^(?:invalid config: )?key "([^"]+)": (.*)$`)

// rejectionPath splits a keyed rejection into the key's path below config
// and the message; ok is false when msg names no key.
func rejectionPath(msg string) (path []string, rest string, ok bool) {
	m := keyedRejection.FindStringSubmatch(msg)
	if m == nil {
		return nil, msg, false
	}
	for _, part := range strings.Split(m[1], ".") {
		name, idx, _ := strings.Cut(part, "[")
		if name != "" {
			path = append(path, name)
		}
		for idx != "" {
			var n string
			n, idx, _ = strings.Cut(idx, "]")
			if _, err := strconv.Atoi(n); err != nil {
				return nil, msg, false
			}
			path = append(path, "["+n+"]")
			idx = strings.TrimPrefix(idx, "[")
		}
	}
	return path, m[2], len(path) > 0
}

// Open implements component.Opener: the first instance already runs.
func (t *Transform) Open(context.Context) error {
	t.opened = true
	return nil
}

// Apply implements component.Transform.
func (t *Transform) Apply(ctx context.Context, in []message.Message, out *component.Output) error {
	return t.tr.Process(ctx, in, out)
}

// Close implements component.Closer: it retires the instances and saves
// the state when persist_state is set.
//
// State loaded from the file of before state files were per [[transform]]
// is saved under the transform's own name, and the old file removed: every
// transform of the task that ran the module and had no file of its own
// started from it (they all read it before), and each now keeps its own.
func (t *Transform) Close(ctx context.Context) error {
	err := t.tr.Close(ctx)
	if t.statePath != "" && t.opened {
		serr := t.tr.KV().Save(t.statePath)
		if serr == nil && t.legacyPath != "" {
			if rerr := os.Remove(t.legacyPath); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				t.logger.Warn().Err(rerr).Str("file", t.legacyPath).Msg("wasm state: cannot remove the file of before state files were per [[transform]]; remove it by hand")
			}
			t.legacyPath = ""
		}
		if err == nil {
			err = serr
		}
	}
	return err
}

// Describe returns the module's self-description.
func (t *Transform) Describe() *wasmhost.Description { return t.tr.Description() }
