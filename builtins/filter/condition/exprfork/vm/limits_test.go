package vm_test

// Sluice's limits of a run (SLUICE.md): StepBudget, ByteBudget, Done.

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

func run(t *testing.T, m *vm.VM, src string, env map[string]any) (any, error) {
	t.Helper()
	program, err := expr.Compile(src, expr.Env(env))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	return m.Run(program, env)
}

// Loops nested over a range run 10^12 iterations; the step budget stops
// them at the budget, and a closed Done at once.
func TestStepBudgetAndDoneStopARun(t *testing.T) {
	const endless = `let r = 1..1000; all(r, all(r, all(r, all(r, true))))`
	if _, err := run(t, &vm.VM{StepBudget: 100_000}, endless, nil); !errors.Is(err, vm.ErrStepBudget) {
		t.Fatalf("with a budget of 100000 steps: %v, want ErrStepBudget", err)
	}
	done := make(chan struct{})
	close(done)
	if _, err := run(t, &vm.VM{Done: done}, endless, nil); !errors.Is(err, vm.ErrStopped) {
		t.Fatalf("with Done closed: %v, want ErrStopped", err)
	}
	// The budget is exact, and a run within it is untouched.
	m := &vm.VM{StepBudget: 10}
	if out, err := run(t, m, `1 + 2 == 3`, nil); err != nil || out != true {
		t.Fatalf("a small run: %v, %v", out, err)
	}
	if _, err := run(t, m, `len(map(1..20, # + 1)) > 0`, nil); !errors.Is(err, vm.ErrStepBudget) {
		t.Fatalf("20 iterations within 10 steps: %v, want ErrStepBudget", err)
	}
}

// Operations that walk an array or a string count their length: an `in`
// over a 100,000-element array is 100,000 steps, not one.
func TestStepsCountWhatAnOperationWalks(t *testing.T) {
	big := make([]any, 100_000)
	for i := range big {
		big[i] = i
	}
	long := strings.Repeat("x", 64*100_000)
	for _, src := range []string{
		`-1 in big`, `long contains "y"`, `long matches "y"`, `long == long + ""`,
		`indexOf(long, "y") < 0`, `len(uniq(big[:1000])) > 0`, `len(sort(big)) > 0`, `max(big) > 0`,
	} {
		env := map[string]any{"big": big, "long": long}
		if _, err := run(t, &vm.VM{StepBudget: 50_000}, src, env); !errors.Is(err, vm.ErrStepBudget) {
			t.Errorf("%s within 50000 steps: %v, want ErrStepBudget", src, err)
		}
		if _, err := run(t, &vm.VM{StepBudget: 2_000_000, ByteBudget: 1 << 30}, src, env); err != nil {
			t.Errorf("%s within 2000000 steps: %v", src, err)
		}
	}
}

// Strings are charged before they are built: a run past its byte budget
// stops without having allocated the string (repeat counted its bytes
// after strings.Repeat, + not at all).
func TestByteBudgetIsChargedBeforeBuilding(t *testing.T) {
	env := map[string]any{"s": strings.Repeat("a", 1<<20), "l": []any{strings.Repeat("b", 1<<20), "c"}}
	for _, src := range []string{
		`s + s != ""`, `reduce(1..30, #acc + #acc, "x") != ""`, `repeat(s, 10) != ""`, `upper(s) != ""`,
		`join([s, s, s]) != ""`, `replace(s, "a", "aa") != ""`, `string(l) != ""`, `toJSON(l) != ""`,
		`toBase64(s) != ""`, `len(split(s, "")) > 0`,
	} {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		_, err := run(t, &vm.VM{ByteBudget: 1 << 19}, src, env)
		runtime.ReadMemStats(&m1)
		if !errors.Is(err, vm.ErrByteBudget) {
			t.Errorf("%s within 512 KiB: %v, want ErrByteBudget", src, err)
		}
		if got := m1.TotalAlloc - m0.TotalAlloc; got > 4<<20 {
			t.Errorf("%s: allocated %d KiB before stopping", src, got>>10)
		}
		if _, err := run(t, &vm.VM{ByteBudget: 64 << 20}, src, env); err != nil && !strings.Contains(src, "reduce") {
			t.Errorf("%s within 64 MiB: %v", src, err)
		}
	}
}
