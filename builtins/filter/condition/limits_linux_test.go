package condition

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// One event of less than 1 MiB (the default max_event_size) killed the
// process: a map of namespaced tags asked for 60 GB, and Go's "out of
// memory" is fatal, not a panic Eval could recover. The child runs under an
// address-space limit (RLIMIT_AS) of 2 GiB more than it had at start, so
// that the test does not take the machine's memory; the condition must
// fail on its memory budget and the child live on (found in review).
func TestConditionOneEventCannotKillTheProcess(t *testing.T) {
	if os.Getenv("SLUICE_CONDITION_CHILD") == "1" {
		// the address space the process has now, plus 2 GiB for the event
		// and the evaluation
		var vm uint64
		if st, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				if strings.HasPrefix(l, "VmSize:") {
					fmt.Sscanf(strings.TrimSpace(l[len("VmSize:"):]), "%d", &vm)
				}
			}
		}
		lim := &syscall.Rlimit{Cur: vm<<10 + 2<<30, Max: vm<<10 + 2<<30}
		if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(3)
		}
		ev := namespacedTags(500<<10, 120000)
		if len(ev) > 1<<20 {
			fmt.Println("event too large", len(ev))
			os.Exit(3)
		}
		c := MustCompile(`any(map(data.tags, data.ns + "/" + #), # in data.allowed)`)
		fmt.Println("evaluating")
		ok, err := c.Eval([]byte(ev))
		fmt.Printf("survived: %v %v\n", ok, err)
		os.Exit(0)
	}
	if testing.Short() {
		t.Skip("-short: starts a process under RLIMIT_AS, which qemu-user (make test-arm-ci) does not apply")
	}
	cmd := testkit.Command(os.Args[0], "-test.run=^TestConditionOneEventCannotKillTheProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "SLUICE_CONDITION_CHILD=1")
	out, err := cmd.CombinedOutput()
	if !strings.Contains(string(out), "evaluating") {
		t.Fatalf("the child failed before the evaluation: %v\n%.2000s", err, out)
	}
	if err != nil || !strings.Contains(string(out), "survived: false condition failed: the condition exceeded its memory budget") {
		first := string(out)
		if i := strings.Index(first, "\ngoroutine "); i > 0 {
			first = first[:i]
		}
		t.Fatalf("a condition on one event under 1 MiB killed the process or did not fail on its memory budget (%v):\n%s", err, first)
	}
}
