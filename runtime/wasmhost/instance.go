package wasmhost

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/sluicehq/sluice/runtime/wasmhost/abi"
)

// initBudget bounds instantiation (a Go guest's runtime start) and the
// sluice_init, sluice_describe and sluice_close calls.
const initBudget = 5 * time.Second

// yieldEvery is how often a running guest hands its thread back to the Go
// scheduler, so that a garbage collection never waits on it for long.
const yieldEvery = time.Millisecond

// instance is one instantiated module. It is used by one goroutine at a
// time (the pool hands it out).
type instance struct {
	mod       *Module
	m         api.Module
	mem       api.Memory
	fnAlloc   api.Function
	fnProcess api.Function
	fnInit    api.Function
	fnDesc    api.Function
	fnClose   api.Function
	stack     []uint64
	state     *State
	memory    guestMemory // nil: wazero's own (memory.go)

	// The context handed to every call: it carries the instance to the
	// host functions without a context.WithValue allocation per call.
	cctx callCtx

	deadline  int64 // monotonic ns; past it the check looks at CPU time
	hardStop  int64 // monotonic ns; past it the check traps whatever the CPU time
	cpuStart  int64 // the thread's CPU time when the call began (cpuUnread, -1: unknown)
	started   int64 // monotonic ns at the call's start
	lastYield int64
	idleSince int64 // monotonic ns when the pool last got it back
	budget    time.Duration

	buf, bufCap uint32 // the guest's input buffer
	stdout      lineWriter
	stderr      lineWriter
}

// callCtx is the context of every call into an instance.
type callCtx struct {
	context.Context
	inst *instance
}

var epoch = time.Now()

func monotonic() int64 { return int64(time.Since(epoch)) }

// Errors that end a call. They are the reasons records fail with.
var (
	// ErrTimeout: the guest ran past its time budget.
	ErrTimeout = errors.New("wasm call exceeded its time budget")
	// ErrCanceled: the task is stopping.
	ErrCanceled = errors.New("wasm call canceled")
)

// hostCheck is the import instrumented code calls every few thousand loop
// iterations or calls. It traps (by panicking, which wazero turns into an
// error from the call) when the budget is spent, and yields to the Go
// scheduler about every millisecond so that a stop-the-world never waits
// on compiled guest code.
func hostCheck(ctx context.Context, _ []uint64) {
	c, ok := ctx.(*callCtx)
	if !ok {
		return
	}
	inst := c.inst
	now := monotonic()
	if inst.cpuStart == cpuUnread {
		inst.startCPU(now)
	}
	if now > inst.deadline && !inst.extend(now) {
		panic(ErrTimeout)
	}
	if now-inst.lastYield > int64(yieldEvery) {
		inst.lastYield = now
		if c.Context.Err() != nil {
			panic(ErrCanceled)
		}
		runtime.Gosched()
	}
}

// checkHost is called by the host functions of the sluice module after
// their work, so that time spent in them counts against the budget like
// the guest's own: a loop of slow host calls reaches hostCheck only every
// few thousand iterations. Like hostCheck, it reads the thread's CPU clock
// at its first check of a call (startCPU) and when the deadline has
// passed; otherwise it only reads the monotonic clock.
func checkHost(inst *instance) {
	if inst.cctx.Context == nil {
		return
	}
	now := monotonic()
	if inst.cpuStart == cpuUnread {
		inst.startCPU(now)
	}
	if now > inst.deadline && !inst.extend(now) {
		panic(ErrTimeout)
	}
}

// startCPU reads the thread's CPU clock at a call's first check (a system
// call of about a microsecond, so only calls long enough to reach a check
// pay it) and estimates its value when the call began, assuming the thread
// ran since then. A first check that comes late means the thread mostly
// waited for a core: work of the guest reaches a check within microseconds
// (loops, calls, bulk operations and host calls are all counted), so the
// time before it counts for at most half the budget. Counting it all
// stopped short calls on a loaded machine.
func (inst *instance) startCPU(now int64) {
	cpu := threadCPU()
	if cpu < 0 {
		inst.cpuStart = -1
		return
	}
	inst.cpuStart = cpu - min(now-inst.started, int64(inst.budget)/2)
}

// maxStretch bounds how far a starved call may run past its budget in
// wall time: a call stops at budget*maxStretch whatever its CPU time.
const maxStretch = 10

const cpuUnread = -2

// extend is called when the wall-clock deadline has passed. The budget is
// CPU time of the calling thread (calls run with their OS thread locked),
// so that a loaded machine, where the guest waits for a core, does not
// stop it early: while the guest has used less CPU than its budget, the
// deadline moves to when it could have used it all.
func (inst *instance) extend(now int64) bool {
	if inst.cpuStart < 0 || now > inst.hardStop {
		return false
	}
	used := threadCPU() - inst.cpuStart
	if used < 0 || used >= int64(inst.budget) {
		return false
	}
	inst.deadline = now + int64(inst.budget) - used
	return true
}

// newInstance instantiates the module, checks its ABI version and hands it
// config (when config is not nil).
func (m *Module) newInstance(ctx context.Context, state *State, config []byte) (*instance, error) {
	if state == nil {
		state = newState(nil, "", m.Name, nil, nil)
	}
	inst := &instance{mod: m, state: state, stack: make([]uint64, 4)}
	inst.cctx.inst = inst
	inst.stdout = lineWriter{log: state.guest, stream: "stdout", inst: inst}
	inst.stderr = lineWriter{log: state.guest, stream: "stderr", inst: inst}
	cctx := inst.enter(inst.memoryContext(ctx), initBudget)
	am, err := m.host.rt.InstantiateModule(cctx, m.c.cm, moduleConfig(m.hasInitialize, inst))
	inst.leave()
	if err != nil {
		inst.releaseMemory()
		return nil, fmt.Errorf("start module: %s", shortError(err))
	}
	inst.m = am
	inst.mem = am.Memory()
	inst.fnAlloc = am.ExportedFunction(ExportAlloc)
	inst.fnProcess = am.ExportedFunction(ExportProcess)
	inst.fnDesc = am.ExportedFunction(ExportDescribe)
	inst.fnInit = am.ExportedFunction(ExportInit)
	inst.fnClose = am.ExportedFunction(ExportClose)
	v, err := inst.call(ctx, am.ExportedFunction(ExportVersion), initBudget)
	if err != nil {
		inst.discard() // it trapped: sluice_close is not called
		return nil, fmt.Errorf("call %s: %w", ExportVersion, err)
	}
	if uint32(v) != abi.Version {
		inst.close(ctx)
		return nil, fmt.Errorf("module speaks Sluice ABI version %d; this host speaks version %d: rebuild the module with an SDK for version %d", int32(v), abi.Version, abi.Version)
	}
	if config != nil {
		if err := inst.init(ctx, config); err != nil {
			// Only a module that rejected its config is healthy; one that
			// trapped or broke the ABI is not closed (docs/abi.md 2).
			var ce *ConfigError
			if errors.As(err, &ce) {
				inst.close(ctx)
			} else {
				inst.discard()
			}
			return nil, err
		}
	}
	// What the guest ran to start (a Go runtime's initialisation: most of
	// its code) need not stay resident; what it runs next comes back.
	m.host.releaseCode(m.c)
	return inst, nil
}

// ConfigError is a config the module's sluice_init rejected.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return "module rejected its config: " + e.Msg }

func (inst *instance) init(ctx context.Context, config []byte) error {
	if inst.fnInit == nil {
		if len(config) > 0 && string(config) != "{}" && string(config) != "null" {
			return &ConfigError{"the module takes no config (it does not export " + ExportInit + ")"}
		}
		return nil
	}
	ptr, err := inst.write(ctx, config)
	if err != nil {
		return err
	}
	inst.stack[0], inst.stack[1] = uint64(ptr), uint64(len(config))
	res, err := inst.callStack(ctx, inst.fnInit, initBudget)
	if err != nil {
		return fmt.Errorf("call %s: %w", ExportInit, err)
	}
	if res != 0 {
		// The message is kept as RETRY and FAIL messages are: its first
		// 4 KiB, cut between characters, as valid UTF-8. (A longer one
		// was taken for a broken module, and its text was lost.)
		n := min(uint32(res), abi.MaxMessage+1)
		msg, err := inst.read(res>>32<<32|uint64(n), abi.MaxMessage+1)
		if err != nil {
			return err
		}
		return &ConfigError{abi.MessageText(msg)}
	}
	return nil
}

func (inst *instance) describe(ctx context.Context) (Description, error) {
	var d Description
	res, err := inst.call(ctx, inst.fnDesc, initBudget)
	if err != nil {
		return d, fmt.Errorf("call %s: %w", ExportDescribe, err)
	}
	b, err := inst.read(res, 1<<20)
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("%s returned invalid JSON: %v", ExportDescribe, err)
	}
	if d.Name == "" {
		return d, fmt.Errorf("%s returned no \"name\"", ExportDescribe)
	}
	return d, nil
}

// read returns a copy of the packed (address<<32 | length) region.
func (inst *instance) read(packed uint64, limit int) ([]byte, error) {
	addr, n := uint32(packed>>32), uint32(packed)
	if uint64(n) > uint64(limit) { // as uint64: int(n) is negative past 2^31 on 32-bit platforms
		return nil, fmt.Errorf("module returned %d bytes where at most %d are accepted", n, limit)
	}
	b, ok := inst.mem.Read(addr, n)
	if !ok {
		return nil, &abi.ResultError{Msg: fmt.Sprintf("returned region %d+%d is outside memory", addr, n)}
	}
	return append([]byte(nil), b...), nil
}

// reserve makes the guest's input buffer hold at least n bytes.
func (inst *instance) reserve(ctx context.Context, n int) error {
	if uint32(n) <= inst.bufCap && inst.bufCap > 0 {
		return nil
	}
	// int64: on 32-bit platforms (GOARCH=arm) 1<<31 does not fit an int.
	if int64(n) > 1<<31 {
		return fmt.Errorf("batch of %d bytes is too large", n)
	}
	want := max(n, 64<<10, int(inst.bufCap)*2)
	inst.stack[0] = uint64(want)
	ptr, err := inst.callStack(ctx, inst.fnAlloc, initBudget)
	if err != nil {
		return fmt.Errorf("call %s(%d): %w", ExportAlloc, want, err)
	}
	if uint64(uint32(ptr))+uint64(want) > uint64(inst.mem.Size()) || ptr == 0 {
		return &abi.ResultError{Msg: fmt.Sprintf("%s(%d) returned %d, not a buffer inside memory", ExportAlloc, want, uint32(ptr))}
	}
	inst.buf, inst.bufCap = uint32(ptr), uint32(want)
	return nil
}

func (inst *instance) write(ctx context.Context, b []byte) (uint32, error) {
	if err := inst.reserve(ctx, len(b)); err != nil {
		return 0, err
	}
	inst.mem.Write(inst.buf, b)
	return inst.buf, nil
}

// enter prepares the call context for a call with the given budget and
// locks the goroutine to its OS thread, whose CPU time measures the call.
func (inst *instance) enter(ctx context.Context, budget time.Duration) context.Context {
	runtime.LockOSThread()
	now := monotonic()
	inst.cctx.Context = ctx
	inst.deadline = now + int64(budget)
	inst.hardStop = now + maxStretch*int64(budget)
	inst.cpuStart = cpuUnread
	inst.started = now
	inst.lastYield = now
	inst.budget = budget
	return &inst.cctx
}

func (inst *instance) leave() {
	inst.cctx.Context = nil
	runtime.UnlockOSThread()
}

func (inst *instance) call(ctx context.Context, fn api.Function, budget time.Duration) (uint64, error) {
	return inst.callStack(ctx, fn, budget)
}

// callStack calls fn with the parameters already in inst.stack and returns
// its first result. It does not allocate.
func (inst *instance) callStack(ctx context.Context, fn api.Function, budget time.Duration) (uint64, error) {
	cctx := inst.enter(ctx, budget)
	err := fn.CallWithStack(cctx, inst.stack)
	inst.leave()
	inst.stdout.flush()
	inst.stderr.flush()
	if err != nil {
		return 0, inst.callError(err)
	}
	return inst.stack[0], nil
}

// callError turns a call failure into the short reason a record fails with.
func (inst *instance) callError(err error) error {
	switch {
	case errors.Is(err, ErrTimeout):
		return fmt.Errorf("%w of %s", ErrTimeout, inst.budget)
	case errors.Is(err, ErrCanceled):
		return ErrCanceled
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return &TrapError{Msg: fmt.Sprintf("module exited with code %d", exit.ExitCode())}
	}
	return &TrapError{Msg: shortError(err)}
}

// TrapError is a guest that trapped (unreachable, out-of-bounds access, a
// Go panic that escaped the SDK, out of memory).
type TrapError struct{ Msg string }

func (e *TrapError) Error() string { return "wasm trap: " + e.Msg }

// shortError keeps the first line of a wazero error (the rest is a stack
// trace, logged at debug level by the caller).
func shortError(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, " (recovered by wazero)")
}

func (inst *instance) close(ctx context.Context) {
	if inst.m == nil {
		inst.releaseMemory()
		return
	}
	if inst.fnClose != nil {
		if _, err := inst.call(ctx, inst.fnClose, initBudget); err != nil {
			inst.state.logger.Debug().Err(err).Msg("module close failed")
		}
	}
	inst.m.Close(context.Background())
	inst.m = nil
	inst.releaseMemory()
}

// discard drops an instance that failed: no close call, since its state
// is unknown.
func (inst *instance) discard() {
	if inst.m != nil {
		inst.m.Close(context.Background())
		inst.m = nil
	}
	inst.releaseMemory()
}
