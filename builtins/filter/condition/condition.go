// Package condition compiles and evaluates filter conditions: boolean
// expr-lang/expr expressions over the event, such as
//
//	data.value.amount > 100 && data.value.region startsWith "eu-"
//
// The event's top-level members are the variables (CloudEvents attributes
// and data). Reading a field or index that is not in the event makes the
// whole condition false instead of failing; optional chaining (a?.b) and
// nil coalescing (a.b ?? 0) read a missing field as nil instead. Any other
// run-time error is returned to the caller.
package condition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/conf"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/parser/lexer"
	"github.com/expr-lang/expr/vm"
	"github.com/expr-lang/expr/vm/runtime"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// Condition is a compiled condition. It is immutable and safe for
// concurrent use.
type Condition struct {
	src     string
	program *vm.Program
	limits  Limits
	need    *need // the part of the event the expression reads; nil: all
	// ops are the expression's operations by where they are reported
	// (their location's From): a run-time error names the one it
	// happened in.
	ops map[int]ast.Node
}

// need is the part of an event value a condition reads: the members named
// by constant paths (data.value.amount), or the whole value when it is
// used as a whole (len(data.items), "k" in data, data[k]).
type need struct {
	full bool
	kids map[string]*need
}

func (n *need) mark(path []string) {
	for _, k := range path {
		if n.full {
			return
		}
		if n.kids == nil {
			n.kids = map[string]*need{}
		}
		c := n.kids[k]
		if c == nil {
			c = &need{}
			n.kids[k] = c
		}
		n = c
	}
	n.full, n.kids = true, nil
}

// neededPaths finds what of the event the parsed expression reads. A
// constant member chain from a variable is a path; a path consumed only as
// the base of a longer constant chain needs just that member, any other
// use needs the whole value.
func neededPaths(tree *ast.Node, lets map[*ast.IdentifierNode]bool) *need {
	paths := map[ast.Node][]string{}
	consumed := map[ast.Node]bool{}
	ast.Walk(tree, visitFunc(func(node *ast.Node) {
		switch n := (*node).(type) {
		case *ast.IdentifierNode:
			if n.Value == "$env" {
				paths[n] = []string{}
			} else if !lets[n] {
				paths[n] = []string{n.Value}
			}
		case *ast.MemberNode:
			base, ok := paths[n.Node]
			if key, isStr := n.Property.(*ast.StringNode); ok && isStr && !n.Method {
				paths[n] = append(append([]string{}, base...), key.Value)
				consumed[n.Node] = true
			}
		}
	}))
	root := &need{}
	for n, p := range paths {
		if !consumed[n] {
			root.mark(p)
		}
	}
	if root.full {
		return nil
	}
	return root
}

// Limits bound the work and the memory of one evaluation, so that no event
// can make a condition run for hours or build gigabytes
// (docs/filters.md#limits). Passing one is a run-time error for that event.
type Limits struct {
	// Steps is the most steps one evaluation takes: one an instruction of
	// a loop's body (any, all, map, filter, ...) at each pass, plus one
	// per element of an array and per 64 bytes of a string that an
	// operation walks (`in`, `contains`, `==`, and builtins such as
	// indexOf, join, uniq, sort), and for `matches` one per byte of the
	// text and instruction of the pattern (docs/filters.md#limits).
	// 0 means DefaultSteps.
	Steps uint64
	// Bytes is the most bytes of strings one evaluation builds (`+` and
	// the builtins that make strings: upper, repeat, join, replace,
	// string, toJSON, ...), counted before they are built: a string's
	// bytes and 16 for its header. 0 means DefaultBytes.
	Bytes uint64
}

const (
	// DefaultSteps is the step budget of an evaluation ([filter]
	// condition_budget). A condition without a loop takes none, a loop
	// over an array of 100,000 elements about a million; 100 million take
	// 0.5 to 1 s of a core.
	DefaultSteps = 100_000_000
	// BytesPerEventByte is the string budget of an evaluation in bytes
	// per byte of the largest event (max_event_size): room for a few
	// copies of a whole event (lower(toJSON(data)) on the largest one),
	// never more than a few times what the event itself takes.
	BytesPerEventByte = 8
	// DefaultBytes is the string budget for the default max_event_size
	// (1 MiB).
	DefaultBytes = BytesPerEventByte << 20
)

// CompileError is a condition that does not compile or type-check.
type CompileError struct {
	// Offset is the byte offset in the expression where the problem is.
	Offset int
	// Line and Column (1-based line, 0-based column in characters) as
	// expr reports them.
	Line, Column int
	// Msg is expr's message.
	Msg string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("invalid condition at offset %d (line %d, column %d): %s", e.Offset, e.Line, e.Column, e.Msg)
}

// RuntimeError is a condition that failed on one event for a reason other
// than a missing field (a type mismatch, a non-boolean result).
type RuntimeError struct {
	Msg string
	Err error
}

func (e *RuntimeError) Error() string { return "condition failed: " + e.Msg }

func (e *RuntimeError) Unwrap() error { return e.Err }

// Function names the compiler rewrites field reads into. They start with
// '$' so they cannot clash with identifiers in an expression.
const (
	fetchName    = "$fetch"
	fetchOptName = "$fetchOpt"
)

// vmPool reuses expr VMs (their stacks) across evaluations.
var vmPool = sync.Pool{New: func() any { return new(vm.VM) }}

// errMissing aborts an evaluation that read a field the event lacks.
var errMissing = errors.New("missing field")

// Compile parses and type-checks src, with the default limits. The error
// is a *CompileError.
func Compile(src string) (*Condition, error) { return CompileLimits(src, Limits{}) }

// CompileLimits is Compile with the given limits for each evaluation.
func CompileLimits(src string, limits Limits) (*Condition, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &CompileError{Offset: 0, Line: 1, Msg: "the condition is empty; remove it or write a boolean expression"}
	}
	src = widenIntegers(src, strconv.IntSize)
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, compileError(src, err)
	}
	// Names bound by `let` are the expression's own, not event fields,
	// but only in the let's body: the same name elsewhere is a field.
	lets := map[*ast.IdentifierNode]bool{}
	bindLets(tree.Node, nil, lets)
	var callee *ast.IdentifierNode
	ast.Walk(&tree.Node, visitFunc(func(n *ast.Node) {
		switch v := (*n).(type) {
		case *ast.CallNode:
			// Only expr's builtins can be called (they parse as
			// BuiltinNode); a call of a name is a typo.
			if id, ok := v.Callee.(*ast.IdentifierNode); ok && callee == nil {
				callee = id
			}
		}
	}))
	if callee != nil {
		return nil, compileError(src, (&file.Error{Location: callee.Location(), Message: fmt.Sprintf("unknown function %s", callee.Value)}).Bind(file.NewSource(src)))
	}
	needed := neededPaths(&tree.Node, lets)
	// expr.Compile parses src again: the rewriter knows the identifiers
	// that read a let binding by where they start in it.
	rw := &rewriter{lets: map[int]bool{}}
	for id := range lets {
		rw.lets[id.Location().From] = true
	}
	prog, err := expr.Compile(src,
		expr.Env(map[string]any{}),
		expr.AllowUndefinedVariables(),
		expr.AsBool(),
		expr.Function(fetchName, fetch),
		expr.Function(fetchOptName, fetchOpt),
		expr.Patch(rw),
	)
	if err != nil {
		return nil, compileError(src, err)
	}
	if limits.Steps == 0 {
		limits.Steps = DefaultSteps
	}
	if limits.Bytes == 0 {
		limits.Bytes = DefaultBytes
	}
	return &Condition{src: src, program: prog, limits: limits, need: needed, ops: operations(&tree.Node)}, nil
}

// operations indexes the nodes of tree by the position expr reports for
// them: an operator's, the start of a call or a member chain. Where
// several start at the same place, the outermost wins (the walk is
// post-order).
func operations(tree *ast.Node) map[int]ast.Node {
	ops := map[int]ast.Node{}
	ast.Walk(tree, visitFunc(func(n *ast.Node) {
		switch (*n).(type) {
		case *ast.PredicateNode, *ast.SequenceNode, *ast.VariableDeclaratorNode:
			// not an operation: their errors are their parts'
		case *ast.MemberNode, *ast.SliceNode, *ast.ChainNode:
			// A value read from a chain is reported where the chain
			// starts: name the whole chain (data.s, not data).
			ops[(*n).Location().From] = *n
			ops[chainStart(*n)] = *n
		default:
			ops[(*n).Location().From] = *n
		}
	}))
	return ops
}

// chainStart is where the member chain n starts.
func chainStart(n ast.Node) int {
	for {
		switch v := n.(type) {
		case *ast.MemberNode:
			n = v.Node
		case *ast.SliceNode:
			n = v.Node
		case *ast.ChainNode:
			n = v.Node
		default:
			return n.Location().From
		}
	}
}

// MustCompile is Compile that panics on error.
func MustCompile(src string) *Condition {
	c, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return c
}

// String returns the expression source.
func (c *Condition) String() string { return c.src }

func compileError(src string, err error) *CompileError {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return &CompileError{Line: 1, Msg: err.Error()}
	}
	// expr counts From in characters; the loader wants bytes.
	off := len(src)
	n := 0
	for i := range src {
		if n == fe.From {
			off = i
			break
		}
		n++
	}
	if fe.From <= 0 {
		off = 0
	}
	return &CompileError{Offset: off, Line: fe.Line, Column: fe.Column, Msg: fe.Message}
}

// bindLets records in out the identifiers of n that read a name bound by
// an enclosing `let`: a let's name is visible in its body (the expression
// after the semicolon), not in its value nor anywhere else.
func bindLets(n ast.Node, scope []string, out map[*ast.IdentifierNode]bool) {
	switch v := n.(type) {
	case nil:
	case *ast.IdentifierNode:
		if slices.Contains(scope, v.Value) {
			out[v] = true
		}
	case *ast.VariableDeclaratorNode:
		bindLets(v.Value, scope, out)
		bindLets(v.Expr, append(scope[:len(scope):len(scope)], v.Name), out)
	case *ast.UnaryNode:
		bindLets(v.Node, scope, out)
	case *ast.BinaryNode:
		bindLets(v.Left, scope, out)
		bindLets(v.Right, scope, out)
	case *ast.ChainNode:
		bindLets(v.Node, scope, out)
	case *ast.MemberNode:
		bindLets(v.Node, scope, out)
		bindLets(v.Property, scope, out)
	case *ast.SliceNode:
		bindLets(v.Node, scope, out)
		bindLets(v.From, scope, out)
		bindLets(v.To, scope, out)
	case *ast.CallNode:
		bindLets(v.Callee, scope, out)
		for _, a := range v.Arguments {
			bindLets(a, scope, out)
		}
	case *ast.BuiltinNode:
		for _, a := range v.Arguments {
			bindLets(a, scope, out)
		}
	case *ast.PredicateNode:
		bindLets(v.Node, scope, out)
	case *ast.SequenceNode:
		for _, x := range v.Nodes {
			bindLets(x, scope, out)
		}
	case *ast.ConditionalNode:
		bindLets(v.Cond, scope, out)
		bindLets(v.Exp1, scope, out)
		bindLets(v.Exp2, scope, out)
	case *ast.ArrayNode:
		for _, x := range v.Nodes {
			bindLets(x, scope, out)
		}
	case *ast.MapNode:
		for _, x := range v.Pairs {
			bindLets(x, scope, out)
		}
	case *ast.PairNode:
		bindLets(v.Key, scope, out)
		bindLets(v.Value, scope, out)
	}
}

type visitFunc func(*ast.Node)

func (f visitFunc) Visit(n *ast.Node) { f(n) }

// rewriter turns every field read (identifier, a.b, a[i]) into a call of
// $fetch, which fails with errMissing on a missing field, or of $fetchOpt
// (nil instead) inside optional chains and on the left of ??. The walk is
// post-order, so a chain or ?? sees its operands already rewritten and
// relaxes them.
type rewriter struct {
	lets map[int]bool // where the identifiers reading a let binding start
}

func call(name string, args ...ast.Node) *ast.CallNode {
	return &ast.CallNode{Callee: &ast.IdentifierNode{Value: name}, Arguments: args}
}

func (r *rewriter) Visit(node *ast.Node) {
	switch n := (*node).(type) {
	case *ast.IdentifierNode:
		if n.Value == "$env" || n.Value == fetchName || n.Value == fetchOptName || r.lets[n.Location().From] {
			return
		}
		ast.Patch(node, call(fetchName, &ast.IdentifierNode{Value: "$env"}, &ast.StringNode{Value: n.Value}))
	case *ast.MemberNode:
		if n.Method {
			return
		}
		name := fetchName
		if n.Optional {
			name = fetchOptName
		}
		ast.Patch(node, call(name, n.Node, n.Property))
	case *ast.ChainNode:
		relax(n.Node)
	case *ast.BinaryNode:
		if n.Operator == "??" {
			relax(n.Left)
		}
	}
}

// relax makes the reads along a chain's spine optional.
func relax(n ast.Node) {
	for {
		if ch, ok := n.(*ast.ChainNode); ok {
			n = ch.Node
			continue
		}
		c, ok := n.(*ast.CallNode)
		if !ok || len(c.Arguments) != 2 {
			return
		}
		id, ok := c.Callee.(*ast.IdentifierNode)
		if !ok || (id.Value != fetchName && id.Value != fetchOptName) {
			return
		}
		id.Value = fetchOptName
		n = c.Arguments[0]
	}
}

// fetch reads from[key]. A missing key or index, or a field of something
// that is not an object, is errMissing.
func fetch(params ...any) (any, error) {
	v, ok, err := lookup(params[0], params[1])
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errMissing
	}
	return v, nil
}

// fetchOpt is fetch that yields nil for a missing field.
func fetchOpt(params ...any) (any, error) {
	v, _, err := lookup(params[0], params[1])
	return v, err
}

func lookup(from, key any) (v any, ok bool, err error) {
	switch f := from.(type) {
	case nil:
		return nil, false, nil
	case map[string]any:
		k, isStr := key.(string)
		if !isStr {
			return nil, false, fmt.Errorf("cannot index an object with %v (%T); object keys are strings", key, key)
		}
		v, ok = f[k]
		return v, ok, nil
	case []any:
		i, isInt := toInt(key)
		if !isInt {
			if _, isStr := key.(string); isStr {
				return nil, false, nil // a field of an array: not there
			}
			return nil, false, fmt.Errorf("cannot index an array with %v (%T)", key, key)
		}
		if i < 0 {
			i += len(f)
		}
		if i < 0 || i >= len(f) {
			return nil, false, nil
		}
		return f[i], true, nil
	case string:
		if _, isStr := key.(string); isStr {
			return nil, false, nil
		}
		if i, isInt := toInt(key); isInt {
			if i < 0 {
				i += len(f)
			}
			if i < 0 || i >= len(f) {
				return nil, false, nil
			}
		}
	case bool, int, float64:
		return nil, false, nil // scalars have no fields
	}
	// Everything else (values built inside the expression: maps of other
	// types, structs) is expr's own business.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return runtime.Fetch(from, key), true, nil
}

func toInt(x any) (int, bool) {
	switch i := x.(type) {
	case int:
		return i, true
	case int64:
		return int(i), true
	case float64:
		if i == math.Trunc(i) && math.Abs(i) < 1<<53 {
			return int(i), true
		}
	}
	return 0, false
}

// Eval runs the condition on one event. A condition that reads a field
// the event lacks is false with a nil error. Malformed event JSON, a type
// error, a result that is not a boolean or a limit passed is a
// *RuntimeError. A null result counts as false.
func (c *Condition) Eval(event []byte) (result bool, err error) {
	return c.EvalContext(context.Background(), event)
}

// EvalContext is Eval that stops when ctx ends: the error then wraps
// ctx.Err(). The check comes every 1,024 steps (a condition without a loop
// runs to its end: its length bounds it).
func (c *Condition) EvalContext(ctx context.Context, event []byte) (result bool, err error) {
	env, ok := decodeEvent(event, c.need)
	if !ok {
		return false, &RuntimeError{Msg: "the event is not valid JSON"}
	}
	defer func() {
		if r := recover(); r != nil {
			result, err = false, &RuntimeError{Msg: fmt.Sprint(r)}
		}
	}()
	machine := vmPool.Get().(*vm.VM)
	machine.StepBudget, machine.ByteBudget, machine.Done = c.limits.Steps, c.limits.Bytes, ctx.Done()
	out, err := machine.Run(c.program, env)
	machine.Done = nil
	vmPool.Put(machine)
	if err != nil {
		if errors.Is(err, errMissing) {
			return false, nil
		}
		if errors.Is(err, vm.ErrStopped) {
			return false, &RuntimeError{Msg: "the condition was stopped: " + context.Cause(ctx).Error(), Err: ctx.Err()}
		}
		return false, &RuntimeError{Msg: c.describe(err), Err: err}
	}
	switch v := out.(type) {
	case bool:
		return v, nil
	case nil:
		return false, nil
	}
	return false, &RuntimeError{Msg: fmt.Sprintf("the condition gave %v (%T), want true or false", out, out)}
}

// describe makes the reason of a run-time error: expr's message, made
// readable when it is Go's text for a failed type assertion, and the
// operation it happened in, as written and where (the column, 1-based,
// and the line when the condition has several).
func (c *Condition) describe(err error) string {
	var fe *file.Error
	if !errors.As(err, &fe) {
		return err.Error()
	}
	op := c.ops[fe.From]
	msg := fe.Message
	switch {
	case errors.Is(err, vm.ErrStepBudget):
		msg = fmt.Sprintf("the condition exceeded its budget of %d steps on this event ([filter] condition_budget)", c.limits.Steps)
	case errors.Is(err, vm.ErrByteBudget):
		msg = fmt.Sprintf("the condition exceeded its memory budget: it would build more than %s of strings on this event (%d × max_event_size)", sizeText(c.limits.Bytes), BytesPerEventByte)
	case errors.Is(err, vm.ErrMemoryBudget):
		msg = fmt.Sprintf("the condition exceeded its memory budget: it would build more than %d array elements on this event", conf.DefaultMemoryBudget)
	case msg == vm.ErrMemoryBudget.Error():
		msg = "the condition exceeded its memory budget: repeat() makes at most 1000000 copies"
	}
	if m := typeAssertion.FindStringSubmatch(msg); m != nil {
		what := "the condition"
		switch n := op.(type) {
		case *ast.BuiltinNode:
			what = n.Name + "()"
		case *ast.UnaryNode:
			what = "`" + n.Operator + "`"
		case *ast.BinaryNode:
			what = "`" + n.Operator + "`"
		}
		msg = fmt.Sprintf("%s needs %s, got %s", what, kindName(m[2]), kindName(m[1]))
	} else if m := boolCast.FindStringSubmatch(msg); m != nil {
		msg = "a boolean is needed, got " + kindName(m[1])
	}
	if op != nil {
		msg += " in `" + shorten(nodeText(op), 80) + "`"
	}
	if strings.Contains(c.src, "\n") {
		return fmt.Sprintf("%s (line %d, column %d)", msg, fe.Line, fe.Column+1)
	}
	return fmt.Sprintf("%s (column %d)", msg, fe.Column+1)
}

// typeAssertion is Go's message for an interface value of the wrong type,
// which expr passes on when a builtin or an operator gets one.
var typeAssertion = regexp.MustCompile(`^interface conversion: interface \{\} is (.+), not (.+)$`)

// sizeText writes n bytes in the largest binary unit that divides it.
func sizeText(n uint64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d %s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%d bytes", n)
}

// boolCast is expr's message for a value used as a boolean that is not one.
var boolCast = regexp.MustCompile(`^invalid operation: bool\((.+)\)$`)

// kindName names a Go type of an expression value as JSON and expr do.
func kindName(goType string) string {
	switch goType {
	case "nil":
		return "null"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "time.Time":
		return "a time"
	case "time.Duration":
		return "a duration"
	}
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	}
	return "a " + goType
}

// nodeText prints an operation as expr reads it.
func nodeText(n ast.Node) (s string) {
	defer func() {
		if recover() != nil {
			s = "?"
		}
	}()
	return n.String()
}

// shorten cuts s to at most max characters, marking the cut.
func shorten(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// decodeEvent decodes what the condition reads of the event (all of it
// when need is nil) into the expression's variables. Integers that fit
// int64 become int, other numbers float64, so `amount > 100` works for both
// and large IDs compare exactly.
func decodeEvent(event []byte, need *need) (map[string]any, bool) {
	if !jsonscan.Valid(event) {
		return nil, false
	}
	i := jsonscan.SkipSpace(event, 0)
	if event[i] != '{' {
		return map[string]any{}, true // not an object: there are no fields to read
	}
	env, _ := decodePart(event[i:], need).(map[string]any)
	return env, true
}

// decodePart decodes the valid JSON value d, only the members need names
// when it is an object (the whole value when need is nil or full).
func decodePart(d []byte, need *need) any {
	if need == nil || need.full || d[0] != '{' {
		return decodeValue(d)
	}
	out := make(map[string]any, len(need.kids))
	it := jsonscan.MembersOf(d, 0)
	for it.Next() {
		var k string
		raw := it.Key()
		if bytes.IndexByte(raw, '\\') < 0 {
			if _, ok := need.kids[string(raw)]; !ok { // no allocation for skipped keys
				continue
			}
			k = string(raw)
		} else {
			k = memberKey(&it)
		}
		sub, ok := need.kids[k]
		if !ok {
			continue
		}
		s, e := it.Value()
		out[k] = decodePart(d[s:e], sub)
	}
	return out
}

// memberKey decodes the current member's key.
func memberKey(it *jsonscan.Members) string {
	raw := it.Key()
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	b, _ := jsonscan.AppendString(nil, quoted(raw))
	return string(b)
}

func quoted(raw []byte) []byte {
	q := make([]byte, 0, len(raw)+2)
	q = append(q, '"')
	q = append(q, raw...)
	return append(q, '"')
}

// decodeValue decodes one valid JSON value.
func decodeValue(d []byte) any {
	switch jsonscan.KindOf(d[0]) {
	case jsonscan.Null:
		return nil
	case jsonscan.True:
		return true
	case jsonscan.False:
		return false
	case jsonscan.String:
		if s, ok := jsonscan.StringContent(d); ok {
			return string(s)
		}
		s, _ := jsonscan.AppendString(nil, d)
		return string(s)
	case jsonscan.Number:
		return number(d)
	case jsonscan.Array:
		out := []any{}
		it := jsonscan.ElementsOf(d, 0)
		for it.Next() {
			s, e := it.Value()
			out = append(out, decodeValue(d[s:e]))
		}
		return out
	case jsonscan.Object:
		out := map[string]any{}
		it := jsonscan.MembersOf(d, 0)
		for it.Next() {
			k := memberKey(&it)
			s, e := it.Value()
			out[k] = decodeValue(d[s:e])
		}
		return out
	}
	return nil
}

// number keeps integers exact when they fit int (64 bits but on 32-bit
// platforms) and uses binary64 otherwise (a number beyond binary64 becomes
// ±Inf). On 32-bit platforms (armv7) an epoch in milliseconds is thus a
// float, exact up to 2^53.
func number(tok []byte) any {
	s := string(tok)
	if !strings.ContainsAny(s, ".eE") {
		if i, err := strconv.ParseInt(s, 10, strconv.IntSize); err == nil {
			return int(i)
		}
	}
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// widenIntegers rewrites decimal integer literals that do not fit a Go int
// of intSize bits into float literals (1655952591000 becomes
// 1655952591000.0). expr's integers are Go ints, 32 bits on armv7, where it
// rejects such a literal; as a float it compares with the event's numbers
// (floats there too, see number), exactly up to 2^53. On 64-bit platforms
// nothing changes. Error offsets after a rewritten literal are off by two.
func widenIntegers(src string, intSize int) string {
	if intSize >= 64 {
		return src
	}
	tokens, err := lexer.Lex(file.NewSource(src))
	if err != nil {
		return src // the parser reports it
	}
	runes := []rune(src)
	var b strings.Builder
	last := 0
	for _, t := range tokens {
		if t.Kind != lexer.Number || t.From < last || t.To > len(runes) || string(runes[t.From:t.To]) != t.Value {
			continue
		}
		digits := strings.ReplaceAll(t.Value, "_", "")
		if strings.Trim(digits, "0123456789") != "" || (len(digits) > 1 && digits[0] == '0') {
			continue // not a plain decimal integer (a float, hex, octal, binary)
		}
		if _, err := strconv.ParseInt(digits, 10, intSize); err == nil {
			continue
		}
		b.WriteString(string(runes[last:t.To]))
		b.WriteString(".0")
		last = t.To
	}
	if last == 0 {
		return src
	}
	b.WriteString(string(runes[last:]))
	return b.String()
}
