package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"reflect"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/lines"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

func bgCtx() context.Context { return context.Background() }

// testCmd is a unit test for a task (design.md §6): each input line is an
// event as it is, run through the filter and the transforms (not the source
// or the sink); each output payload prints on its own line.
func testCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test", stderr, "test TASK.toml --input EVENTS.jsonl [--expect WANT.jsonl]")
	input := fs.String("input", "", "events, one JSON event per line (required)")
	expect := fs.String("expect", "", "expected output payloads, one per line")
	var s settings
	check := bindSettings(fs, &s)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return exitUsage
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitUsage
	}
	if len(pos) != 1 || *input == "" {
		fmt.Fprintln(stderr, "sluice test: want one task file and --input")
		fs.Usage()
		return exitUsage
	}
	log, _ := newLogger(stderr, "warn", "console", false)
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, log, metrics.New(), shared)
	task, err := loader.LoadFile(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	ctx := context.Background()
	defer task.Discard(ctx)

	events, lineNos, err := readLines(*input)
	if err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitFailed
	}
	var trs []component.Transform
	for _, c := range task.Transforms {
		tr := c.Instance.(component.Transform)
		if o, ok := tr.(component.Opener); ok {
			if err := o.Open(ctx); err != nil {
				fmt.Fprintf(stderr, "sluice test: open %s: %v\n", component.FormatPath(c.Path), err)
				return exitFailed
			}
		}
		trs = append(trs, tr)
	}
	proc := engine.NewProcessor(task.Filter, trs, task.Engine.MaxEvent, engine.PolicyOf(task.Retry))

	var got [][]byte
	failed := 0
	const chunk = 256
	for start := 0; start < len(events); start += chunk {
		end := min(start+chunk, len(events))
		msgs := make([]message.Message, end-start)
		for i := range msgs {
			ev := events[start+i]
			msgs[i] = message.Message{Payload: ev, Event: ev, Ref: int32(i),
				Pos: message.Position{Stream: *input, Offset: int64(lineNos[start+i])}}
		}
		fates := make([]engine.Fate, len(msgs))
		outs, err := proc.Process(ctx, msgs, fates)
		if err != nil {
			fmt.Fprintf(stderr, "sluice test: %v\n", err)
			return exitFailed
		}
		for i := range outs {
			got = append(got, append([]byte(nil), outs[i].Payload...))
		}
		for i, f := range fates {
			if f.Failed() {
				failed++
				fmt.Fprintf(stderr, "%s:%d: %s: %v\n", *input, lineNos[start+i], f.Stage, f.Err)
			}
		}
		proc.Reset()
	}

	if *expect == "" {
		w := bufio.NewWriter(stdout)
		for _, p := range got {
			line, err := lines.Append(nil, p)
			if err != nil {
				line = append(p, '\n')
			}
			w.Write(line)
		}
		w.Flush()
		if failed > 0 {
			return exitFailed
		}
		return exitOK
	}
	want, wantLines, err := readLines(*expect)
	if err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitFailed
	}
	if diff := diffPayloads(got, want, wantLines, *expect); diff != "" {
		fmt.Fprint(stderr, diff)
		return exitFailed
	}
	if failed > 0 {
		return exitFailed
	}
	fmt.Fprintf(stdout, "ok: %d events in, %d outputs as expected\n", len(events), len(got))
	return exitOK
}

// readLines returns the non-blank lines of a file and their line numbers.
func readLines(path string) ([][]byte, []int, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	var out [][]byte
	var nos []int
	for i, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimRight(l, "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		out = append(out, l)
		nos = append(nos, i+1)
	}
	return out, nos, nil
}

// samePayload: equal texts, or both JSON and equal as values (numbers by
// value).
func samePayload(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	va, errA := decodeJSON(a)
	vb, errB := decodeJSON(b)
	return errA == nil && errB == nil && reflect.DeepEqual(va, vb)
}

func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return normalizeNumbers(v), nil
}

func normalizeNumbers(v any) any {
	switch t := v.(type) {
	case json.Number:
		if f, ok := new(big.Float).SetString(t.String()); ok {
			return f.Text('g', -1)
		}
		return t.String()
	case map[string]any:
		for k, e := range t {
			t[k] = normalizeNumbers(e)
		}
	case []any:
		for i, e := range t {
			t[i] = normalizeNumbers(e)
		}
	}
	return v
}

// diffPayloads shows, line by line, where got and want differ.
func diffPayloads(got, want [][]byte, wantLines []int, wantFile string) string {
	var b bytes.Buffer
	n := max(len(got), len(want))
	bad := 0
	for i := range n {
		switch {
		case i >= len(got):
			fmt.Fprintf(&b, "output %d missing\n  want (%s:%d): %s\n", i+1, wantFile, wantLines[i], want[i])
		case i >= len(want):
			fmt.Fprintf(&b, "output %d not expected\n  got: %s\n", i+1, got[i])
		case !samePayload(got[i], want[i]):
			fmt.Fprintf(&b, "output %d differs\n  want (%s:%d): %s\n  got:  %s\n", i+1, wantFile, wantLines[i], want[i], got[i])
		default:
			continue
		}
		bad++
	}
	if bad > 0 {
		fmt.Fprintf(&b, "FAIL: %d of %d outputs differ (got %d outputs, want %d)\n", bad, n, len(got), len(want))
	}
	return b.String()
}

var _ = zerolog.Nop
