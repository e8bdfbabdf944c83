package component

import (
	"fmt"
	"regexp"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/metrics"
)

// Kind is the role a component plays in a task.
type Kind string

const (
	KindSource    Kind = "source"
	KindSink      Kind = "sink"
	KindTransform Kind = "transform"
)

// Spec describes one builtin: its name, its docs and how to build it. The
// config struct returned by New is the single source of truth for the
// component's keys: the loader decodes into it by its `toml` tags, the docs
// and `sluice list` read its `doc`, `enum` and `required` tags, and its
// initial values are the documented defaults.
type Spec struct {
	Kind    Kind
	Name    string // matches ^[a-z][a-z0-9_]*$
	Summary string // one line
	// Description is Markdown shown in generated docs.
	Description string
	// Example is a TOML snippet that loads cleanly (tested).
	Example string
	// New returns a pointer to a config struct with defaults set. No side
	// effects.
	New func() any
	// Build turns a decoded, validated config into a Source, Sink or
	// Transform. It may read local files; it must not touch the network.
	Build func(cfg any, env Env) (any, error)
}

// Env is what Build receives from the loader.
type Env struct {
	Task        string // task name
	Stage       string // the component's place in the task: "source", "transform[N]", "sink", "dead_letter"; may be empty
	Dir         string // folder of the task file; relative paths resolve against it
	StateDir    string // process state directory (checkpoints, caches); may be empty
	Concurrency int    // the task's worker count
	MaxInFlight int    // source batches in flight per task (max_in_flight)
	ExactlyOnce bool   // the task runs in transactions (exactly_once = true)
	MaxEvent    int    // largest event accepted, in bytes
	// Trial marks a trial run (`sluice test`, the admin API's playground):
	// its events are not the task's own, so a component keeps no state of
	// the task's (it neither reads nor writes the task's saved state).
	Trial   bool
	Logger  zerolog.Logger // carries the task and component names
	Shared  *Shared        // process-wide singletons (WASM runtime, caches)
	Metrics *metrics.Set   // label everything with the task name
	// Problems collects load-time errors that Build finds (a module whose
	// init rejects its config), scoped to the component's path.
	Problems *Problems
}

// Validator is implemented by config structs that check themselves after
// decoding. It must not do I/O.
type Validator interface {
	Validate(p *Problems)
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Registry holds the specs of the components a process knows.
type Registry struct {
	specs map[Kind]map[string]*Spec
}

// NewRegistry returns an empty registry (tests use it to isolate components).
func NewRegistry() *Registry {
	return &Registry{specs: map[Kind]map[string]*Spec{}}
}

// Register adds s. It panics on programmer errors: a bad or duplicate name,
// a missing New or Build, a New that does not return a pointer.
func (r *Registry) Register(s Spec) {
	if !nameRE.MatchString(s.Name) {
		panic(fmt.Sprintf("component: invalid name %q", s.Name))
	}
	if s.Kind != KindSource && s.Kind != KindSink && s.Kind != KindTransform {
		panic(fmt.Sprintf("component %q: invalid kind %q", s.Name, s.Kind))
	}
	if s.New == nil || s.Build == nil {
		panic(fmt.Sprintf("component %s %q: New and Build are required", s.Kind, s.Name))
	}
	if _, err := FieldsOf(s.New()); err != nil {
		panic(fmt.Sprintf("component %s %q: %v", s.Kind, s.Name, err))
	}
	m := r.specs[s.Kind]
	if m == nil {
		m = map[string]*Spec{}
		r.specs[s.Kind] = m
	}
	if _, dup := m[s.Name]; dup {
		panic(fmt.Sprintf("component %s %q registered twice", s.Kind, s.Name))
	}
	sp := s
	m[s.Name] = &sp
}

// Lookup returns the spec of kind k named name.
func (r *Registry) Lookup(k Kind, name string) (*Spec, bool) {
	s, ok := r.specs[k][name]
	return s, ok
}

// Names lists the registered names of kind k, sorted.
func (r *Registry) Names(k Kind) []string {
	var out []string
	for n := range r.specs[k] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Specs lists every spec, sorted by kind then name.
func (r *Registry) Specs() []*Spec {
	var out []*Spec
	for _, k := range []Kind{KindSource, KindTransform, KindSink} {
		for _, n := range r.Names(k) {
			out = append(out, r.specs[k][n])
		}
	}
	return out
}

// Shared holds process-wide singletons, created on first use.
type Shared struct {
	mu     sync.Mutex
	values map[any]any
	closes []func() error
}

// NewShared returns an empty Shared.
func NewShared() *Shared { return &Shared{values: map[any]any{}} }

// Get returns the value stored under key, creating it with create on first
// use. close, if not nil, is called by Close.
func (s *Shared) Get(key any, create func() (any, func() error, error)) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[key]; ok {
		return v, nil
	}
	v, closeFn, err := create()
	if err != nil {
		return nil, err
	}
	s.values[key] = v
	if closeFn != nil {
		s.closes = append(s.closes, closeFn)
	}
	return v, nil
}

// Close releases every value, newest first.
func (s *Shared) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for i := len(s.closes) - 1; i >= 0; i-- {
		if err := s.closes[i](); err != nil && first == nil {
			first = err
		}
	}
	s.closes = nil
	s.values = map[any]any{}
	return first
}
