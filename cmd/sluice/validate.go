package main

import (
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
)

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr, "validate [options] FILE|DIR...",
		"Checks task files (a folder: its *.toml files) as sluice run would before starting, and reports",
		"every problem as FILE:LINE:COL: PATH: message. Reads local files only, never the network.")
	var s settings
	check := bindSettings(fs, &s, settingStateDir, settingTaskQuota, settingMaxEventSize)
	files, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice validate: %v\n", err)
		return exitUsage
	}
	if !wantArgs(fs, files, 1, -1, "task file or folder") {
		return exitUsage
	}
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, zerolog.Nop(), metrics.New(), shared)
	tasks, err := loader.LoadAll(files)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	for _, t := range tasks {
		fmt.Fprintf(stdout, "%s: task %q is valid\n", t.File, t.Name)
		t.Discard(bgCtx())
	}
	return exitOK
}
