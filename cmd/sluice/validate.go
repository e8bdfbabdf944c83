package main

import (
	"fmt"
	"io"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
)

func validateCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("validate", stderr, "validate [options] FILE|DIR...")
	var s settings
	check := bindSettings(fs, &s)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice validate: %v\n", err)
		return exitUsage
	}
	if len(files) == 0 {
		fmt.Fprintln(stderr, "sluice validate: name at least one task file or folder")
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
