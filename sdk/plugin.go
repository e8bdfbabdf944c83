package sdk

import (
	"errors"
	"strconv"
	"unsafe"
)

// Plugin describes a transform module. Register one from an init function.
type Plugin struct {
	// Name and Version identify the module (sluice plugin inspect shows
	// them); Summary is one line about what it does.
	Name, Version, Summary string
	// Params lists the keys of the task's `config` table. A parameter with
	// Into (or Decode) says where its value goes: the SDK decodes the
	// config into them before Init runs, rejecting unknown keys, values of
	// the wrong type and missing required keys. The host checks task files
	// against the list at validation (a misspelt key, a wrong type).
	Params []Param
	// Config, when set, decodes the config instead of Params: an
	// sdk.ConfigDecoder, or a pointer to a struct decoded by its `json`
	// tags (`doc:"..."` describes a field, `required:"true"` makes it
	// mandatory, non-zero values are defaults) when the plugin imports
	// package sdk/structconfig. Params, when also set, replaces the
	// parameter list Config derives. Plugins that set Config to a struct
	// without importing sdk/structconfig panic in Register with what to
	// change: decoding by struct tags needs reflect, which the SDK leaves
	// out of plugins that do not ask for it (docs/edge.md, "What a Go
	// plugin links").
	Config any
	// Init runs once per instance after the config is decoded. An error rejects
	// the config: the task fails to load with the message.
	Init func() error
	// Handler transforms each record.
	Handler Handler
	// Close runs when the host retires an instance (optional).
	Close func()
}

// Param describes one config key.
type Param struct {
	Name string `json:"name"`
	// Type is the value's type as the host checks it: string, bool, int,
	// float, "list of T", table or any ("": any). Derived from Into when
	// empty.
	Type     string `json:"type,omitempty"`
	Required bool   `json:"required,omitempty"`
	Doc      string `json:"doc,omitempty"`
	// Default is shown in the self-description: a string, bool, number,
	// []string, []any, map[string]string, map[string]any or a value with a
	// MarshalJSON method (other values are left out). Derived from what
	// Into points to when it is not the zero value.
	Default any `json:"default,omitempty"`
	// Into points to where the key's value goes: a *string, *bool, *int,
	// *int64, *float64, *[]string or *map[string]string (a table of
	// strings, merged into a non-nil map). A key that is absent or null
	// leaves the value as it is, so what it holds at Register is the
	// default.
	Into any `json:"-"`
	// Decode, instead of Into, is given the key's raw JSON value (valid
	// JSON, not null) to decode any other shape, e.g. with package
	// jsonfield. Its error rejects the config (see ConfigTypeError).
	Decode func(value []byte) error `json:"-"`
}

var (
	plugin  *Plugin
	decoder ConfigDecoder // what decodes the config; nil: the plugin takes none
)

// Register installs p as the module's transform. Call it once, from an
// init function (a reactor module runs init functions, not main).
func Register(p Plugin) {
	if plugin != nil {
		panic("sdk: Register called twice")
	}
	if p.Handler == nil {
		panic("sdk: Plugin.Handler is nil")
	}
	if p.Params != nil { // copied: Register fills in types and defaults
		p.Params = append(make([]Param, 0, len(p.Params)), p.Params...)
	}
	checkParams(p.Params)
	if p.Config != nil && bindsValues(p.Params) {
		panic("sdk: Plugin.Config and Params with Into or Decode both decode the config: set one of them")
	}
	decoder = nil
	switch c := p.Config.(type) {
	case nil:
		if bindsValues(p.Params) {
			decoder = paramsDecoder(p.Params)
		}
	case ConfigDecoder:
		decoder = c
	default:
		if configAdapter == nil {
			panic(errNoAdapter)
		}
		d, err := configAdapter(c)
		if err != nil {
			panic("sdk: Plugin.Config: " + err.Error())
		}
		decoder = d
	}
	if p.Params == nil && decoder != nil {
		p.Params = decoder.ConfigParams() // defaults as registered, before any config
	}
	plugin = &p
}

// Handler transforms one record: it calls out's methods to pass the record
// on unchanged, emit outputs or drop it, and returns an error to fail it.
// A handler that neither emits nor passes drops the record.
type Handler interface {
	Handle(r *Record, out *Output) error
}

// MapFunc returns one payload per record. dst is empty scratch space owned
// by the SDK: append the new payload to it to avoid allocating. Returning
// r.Payload() itself passes the record on unchanged, without a copy;
// returning nil drops the record.
type MapFunc func(r *Record, dst []byte) ([]byte, error)

// Handle implements Handler.
func (f MapFunc) Handle(r *Record, out *Output) error {
	p, err := f(r, out.Scratch())
	if err != nil {
		return err
	}
	switch {
	case p == nil:
	case len(p) == len(r.payload) && (len(p) == 0 || unsafe.SliceData(p) == unsafe.SliceData(r.payload)):
		out.Pass()
	default:
		out.Emit(p)
	}
	return nil
}

// FilterFunc keeps the records it returns true for, unchanged.
type FilterFunc func(r *Record) (bool, error)

// Handle implements Handler.
func (f FilterFunc) Handle(r *Record, out *Output) error {
	keep, err := f(r)
	if err == nil && keep {
		out.Pass()
	}
	return err
}

// FlatMapFunc emits any number of outputs per record (split, fan-out) with
// out.Emit or out.EmitRecord.
type FlatMapFunc func(r *Record, out *Output) error

// Handle implements Handler.
func (f FlatMapFunc) Handle(r *Record, out *Output) error { return f(r, out) }

// Out is an output with its metadata.
type Out struct {
	Payload []byte
	// Key replaces the input's key when SetKey is true (nil or empty: no
	// key).
	Key    []byte
	SetKey bool
	// Headers replace the input's headers when SetHeaders is true.
	Headers    []Header
	SetHeaders bool
}

// Output collects what a handler produces for one record.
type Output struct {
	b     *batchState
	pass  bool
	first int // index in b.outs of this record's first output
}

// Pass sends the record on unchanged (without copying it).
func (o *Output) Pass() { o.pass = true }

// Scratch returns empty space to append an output to; Emit of a slice
// appended to it costs no allocation. Valid until the handler returns.
func (o *Output) Scratch() []byte { return o.b.arena[len(o.b.arena):] }

// Emit adds an output with payload, keeping the input's key and headers.
func (o *Output) Emit(payload []byte) { o.EmitRecord(Out{Payload: payload}) }

// EmitRecord adds an output.
func (o *Output) EmitRecord(out Out) {
	o.b.claim(out.Payload)
	o.b.outs = append(o.b.outs, out)
}

// Error codes the SDK reports (guests may use any others).
const (
	// CodeError is a handler's plain error.
	CodeError = 1
	// CodePanic is a handler that panicked.
	CodePanic = 2
	// CodeNoHandler is a module that registered no plugin.
	CodeNoHandler = 3
)

// CodedError is an error with a code the host records with the failure.
type CodedError struct {
	Code  uint32
	Err   error
	retry bool
}

func (e *CodedError) Error() string { return e.Err.Error() }
func (e *CodedError) Unwrap() error { return e.Err }

// Retry marks err so that the record is retried on the task's retry policy
// instead of going to the dead-letter queue.
func Retry(err error) error { return &CodedError{Code: CodeError, Err: err, retry: true} }

// Fail returns an error carrying code.
func Fail(code uint32, err error) error { return &CodedError{Code: code, Err: err} }

// outcome is the fate of one record.
type outcome struct {
	kind     uint32
	first, n int
	code     uint32
	msg      string
}

// batchState is reused across batches.
type batchState struct {
	rec      Record
	out      Output
	outcomes []outcome
	outs     []Out
	arena    []byte
	grow     bool
	cur      int // the record being handled
}

var state batchState

// claim advances the arena past p when p lies in the arena's spare
// capacity (it was appended to Scratch, possibly after other scratch
// bytes), so that later scratch space does not overwrite it.
func (b *batchState) claim(p []byte) {
	a := b.arena
	if len(p) == 0 || cap(a) == len(a) {
		return
	}
	free := a[len(a):cap(a)]
	start := uintptr(unsafe.Pointer(unsafe.SliceData(p)))
	lo := uintptr(unsafe.Pointer(unsafe.SliceData(free)))
	if start >= lo && start+uintptr(len(p)) <= lo+uintptr(len(free)) {
		b.arena = a[:len(a)+int(start-lo)+len(p)]
	} else if len(p) > len(free)/2 {
		b.grow = true // outputs outgrow the arena: double it next batch
	}
}

// process runs the handler over a batch and fills b.outcomes and b.outs.
// Before each record it writes the record's index to the batch's cursor
// field, where the host looks should the call die.
func (b *batchState) process(batch []byte) {
	n := int(le.Uint32(batch[4:]))
	b.outcomes = b.outcomes[:0]
	clear(b.outs)
	b.outs = b.outs[:0]
	if b.grow || b.arena == nil {
		b.arena = make([]byte, 0, max(2*cap(b.arena), 64<<10))
		b.grow = false
	}
	b.arena = b.arena[:0]
	for i := 0; i < n; {
		i = b.run(batch, i, n)
	}
}

// run handles records i..n-1 and returns n, or, when a handler panics,
// fails that record and returns the index after it. The recover is set up
// once per run rather than once per record: in WASM a deferred call per
// record is a measurable part of the SDK's cost.
func (b *batchState) run(batch []byte, i, n int) (next int) {
	defer func() {
		if v := recover(); v != nil {
			b.finish(&CodedError{Code: CodePanic, Err: errors.New("panic in handler: " + panicText(v))})
			next = b.cur + 1
		}
	}()
	if plugin == nil {
		for ; i < n; i++ {
			b.outcomes = append(b.outcomes, outcome{kind: outcomeFail, code: CodeNoHandler, msg: "module registered no plugin (call sdk.Register from an init function)"})
		}
		return n
	}
	// A MapFunc is called directly: one indirect call per record, not two.
	mf, isMap := plugin.Handler.(MapFunc)
	for ; i < n; i++ {
		b.cur = i
		le.PutUint32(batch[12:16], uint32(i))
		b.rec.reset(batch, i)
		b.out = Output{b: b, first: len(b.outs)}
		if isMap {
			b.finish(mf.Handle(&b.rec, &b.out))
		} else {
			b.finish(plugin.Handler.Handle(&b.rec, &b.out))
		}
	}
	return n
}

// finish records the outcome of the current record from what its handler
// did and returned.
func (b *batchState) finish(err error) {
	switch {
	case err != nil:
		clear(b.outs[b.out.first:])
		b.outs = b.outs[:b.out.first]
		oc := outcome{kind: outcomeFail, code: CodeError, msg: err.Error()}
		if ce := codedError(err); ce != nil {
			oc.code = ce.Code
			if ce.retry {
				oc.kind = outcomeRetry
			}
		}
		b.outcomes = append(b.outcomes, oc)
	case b.out.pass && len(b.outs) == b.out.first:
		b.outcomes = append(b.outcomes, outcome{kind: outcomePass})
	case b.out.pass:
		// Pass plus emits: the input goes on too, as an output.
		b.outs = append(b.outs, Out{Payload: b.rec.payload})
		fallthrough
	default:
		if k := len(b.outs) - b.out.first; k == 0 {
			b.outcomes = append(b.outcomes, outcome{kind: outcomeDrop})
		} else {
			b.outcomes = append(b.outcomes, outcome{kind: outcomeEmit, first: b.out.first, n: k})
		}
	}
}

// codedError finds a *CodedError in err's chain, as errors.As does but
// without the reflection errors.As brings into every module.
func codedError(err error) *CodedError {
	for depth := 0; err != nil && depth < 100; depth++ {
		switch e := err.(type) {
		case *CodedError:
			return e
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				if ce := codedError(x); ce != nil {
					return ce
				}
			}
			return nil
		default:
			return nil
		}
	}
	return nil
}

// panicText is a recovered value as a message: what fmt's %v prints for
// the values panics carry (runtime errors, errors, strings, numbers),
// without the formatter, which would be in every module.
func panicText(v any) string {
	switch x := v.(type) {
	case error:
		return x.Error()
	case string:
		return x
	case interface{ String() string }:
		return x.String()
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return "(a value the SDK does not print)"
}
