package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/sluicehq/sluice/runtime/component"
)

func listCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("list", stderr, "list [--kind source|transform|sink] [--fields]",
		"Lists the sources, transforms and sinks of this build.")
	kind := fs.String("kind", "", "only this kind: source, transform or sink")
	fields := fs.Bool("fields", false, "also list each component's config keys")
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if !wantArgs(fs, pos, 0, 0, "") {
		return exitUsage
	}
	switch *kind {
	case "", "source", "transform", "sink":
	default:
		fmt.Fprintf(stderr, "sluice list: --kind %q: want source, transform or sink\n", *kind)
		return exitUsage
	}
	var last component.Kind
	for _, s := range registry().Specs() {
		if *kind != "" && string(s.Kind) != *kind {
			continue
		}
		if s.Kind != last {
			if last != "" {
				fmt.Fprintln(stdout)
			}
			fmt.Fprintf(stdout, "%ss:\n", strings.ToUpper(string(s.Kind[:1]))+string(s.Kind[1:]))
			last = s.Kind
		}
		fmt.Fprintf(stdout, "  %-12s %s\n", s.Name, s.Summary)
		if *fields {
			fs, _ := component.FieldsOf(s.New())
			printFields(stdout, fs, "      ")
		}
	}
	return exitOK
}

func printFields(w io.Writer, fs []component.Field, indent string) {
	for _, f := range fs {
		extra := f.Type
		if f.Required {
			extra += ", required"
		}
		if f.Default != "" {
			extra += ", default " + f.Default
		}
		if len(f.Enum) > 0 {
			extra += ", one of " + strings.Join(f.Enum, "|")
		}
		fmt.Fprintf(w, "%s%s (%s): %s\n", indent, f.Name, extra, f.Doc)
		printFields(w, f.Fields, indent+"  ")
	}
}
