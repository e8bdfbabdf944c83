// Command sluice runs stream-processing tasks declared in TOML files.
//
//	sluice run FILE|DIR...        run tasks until their sources end or SIGTERM
//	sluice validate FILE|DIR...   check task files and exit
//	sluice test TASK.toml --input EVENTS.jsonl [--expect WANT.jsonl]
//	sluice list [--kind KIND]     list the components this build knows
//	sluice version
//	sluice help COMMAND           a command's options (as COMMAND --help)
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/sluicehq/sluice/builtins"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailed  = 1 // a task failed, a file is invalid, a test did not pass
	exitUsage   = 2 // the command line is wrong
	exitSignals = 1
)

// version is set by the linker (-X main.version=...).
var version = "dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run tasks until their sources end or the process is stopped", runCmd},
		{"validate", "check task files and report every problem", validateCmd},
		{"test", "run events through a task's filter and transforms", testCmd},
		{"dlq", "inspect (show) or replay dead-letter files", dlqCmd},
		{"top", "watch the tasks of a running process: state, events/s, counters, lag", topCmd},
		{"tap", "print a sample of the events leaving a stage of a running task", tapCmd},
		{"dev", "serve a local in-memory Kafka for trying pipelines (dev kafka)", devCmd},
		{"plugin", "scaffold (new), build and inspect WASM plugins", pluginCmd},
		{"list", "list the sources, transforms and sinks of this build", listCmd},
		{"bench", "measure a stdin task end to end: events/s, MB/s, peak RSS", benchCmd},
		{"install", "install as a systemd service running a folder of tasks", installCmd},
		{"docs", "write the component reference (docs/reference.md) from the specs", docsCmd},
		{"version", "print the version", versionCmd},
	}
}

func main() {
	os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the CLI with args (without the program name).
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "-help":
		usage(stdout)
		return exitOK
	case "help":
		return helpCmd(args[1:], stdout, stderr)
	}
	if c, ok := lookupCommand(args[0]); ok {
		return c.run(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func lookupCommand(name string) (command, bool) {
	for _, c := range commands() {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// helpCmd prints the usage of a command (and subcommand) to stdout, as
// `sluice CMD [SUB] --help` does.
func helpCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	c, ok := lookupCommand(args[0])
	if !ok {
		fmt.Fprintf(stderr, "sluice help: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	if len(args) > 2 {
		fmt.Fprintf(stderr, "sluice help: unexpected argument %q: want sluice help COMMAND [SUBCOMMAND]\n", args[2])
		return exitUsage
	}
	return c.run(append(args[1:], "--help"), stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: sluice COMMAND [ARGS]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'sluice help COMMAND' (or 'sluice COMMAND --help') for a command's options.")
}

func versionCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", stderr, "version", "Prints the version of this build.")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 0, 0, "") {
		return exitUsage
	}
	fmt.Fprintf(stdout, "sluice %s\n", version)
	if o := builtins.Omitted(); len(o) > 0 {
		// A task naming one of their types fails as an unknown type.
		fmt.Fprintf(stdout, "built without the connector families: %s (build tags; docs/edge.md)\n", strings.Join(o, ", "))
	}
	for _, n := range buildNotes {
		fmt.Fprintln(stdout, n)
	}
	return exitOK
}

// buildNotes are lines sluice version adds for what build tags left out
// besides connector families.
var buildNotes []string
