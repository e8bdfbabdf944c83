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
	"time"

	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics"
)

func bgCtx() context.Context { return context.Background() }

// testCmd is a unit test for a task: each input line becomes an event, runs
// through the filter and the transforms (not the sink), and each output
// payload prints on its own line as the stdout sink writes it.
//
// A line becomes the event the task's source makes of it in `sluice run`
// when the source reads lines (stdin, file, http: it is wrapped as a
// CloudEvent unless it already is one, following the source's format);
// with --raw, or for a source that does not read lines (kafka, generate,
// dlq), the line is taken as the event itself, so partial envelopes such as
// {"data": {...}} work. Which of the two applies is printed on stderr.
func testCmd(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("test", stderr, "test TASK.toml --input EVENTS.jsonl [--expect WANT.jsonl] [--raw]",
		"Runs each input line through the task's filter and transforms (not its sink) and prints each output",
		"as the stdout sink writes it. A line becomes the event the task's source makes of it in sluice run",
		"(stdin, file and http sources wrap lines that are not CloudEvents); with --raw, or a source that",
		"does not read lines, the line is the event itself. Failed events are reported on stderr (exit 1).")
	input := fs.String("input", "", "input lines, one event per line (required)")
	expect := fs.String("expect", "", "expected output payloads, one per line; equal when the texts are equal or both are equal JSON")
	raw := fs.Bool("raw", false, "take each input line as the event itself instead of decoding it as the task's source does")
	at := fs.String("time", "", "ingest time (RFC 3339) written into the events the source wraps; default: now. Fix it to compare outputs that hold the event's time")
	var s settings
	check := bindSettings(fs, &s, settingStateDir, settingMaxEventSize)
	pos, err := parseArgs(fs, args, stdout)
	if err != nil {
		return usageErr(err)
	}
	if err := check(); err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitUsage
	}
	if !wantArgs(fs, pos, 1, 1, "one task file") {
		return exitUsage
	}
	if *input == "" {
		fmt.Fprintln(stderr, "sluice test: --input is required")
		fs.Usage()
		return exitUsage
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339Nano, *at); err != nil {
			fmt.Fprintf(stderr, "sluice test: --time %q: want an RFC 3339 time such as 2024-05-01T10:00:00Z\n", *at)
			return exitUsage
		}
	}
	log, _ := newLogger(stderr, "warn", "console", false)
	shared := component.NewShared()
	defer shared.Close()
	loader := newLoader(s, log, metrics.New(), shared)
	loader.Trial = true // the input is not the task's: its saved state is neither read nor changed
	task, err := loader.LoadFile(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitFailed
	}
	ctx := context.Background()
	defer task.Discard(ctx)

	in, err := readInput(*input)
	if err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitFailed
	}
	decoder, _ := task.Source.Instance.(component.LineDecoder)
	switch {
	case *raw:
		fmt.Fprintln(stderr, "sluice test: --raw: each input line is taken as the event itself")
	case decoder == nil:
		fmt.Fprintf(stderr, "sluice test: the %s source does not read lines: each input line is taken as the event itself (write it as the source emits it)\n", task.Source.Type)
	default:
		fmt.Fprintf(stderr, "sluice test: each input line becomes the event the %s source makes of it in sluice run (--raw: take the line as the event itself)\n", task.Source.Type)
	}
	if *raw {
		decoder = nil
	}

	run, err := openTestRun(ctx, task)
	if err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitFailed
	}

	var got [][]byte // outputs as the stdout sink writes them, without the newline
	failed := 0
	const chunk = 256
	for start := 0; start < len(in.lines); start += chunk {
		end := min(start+chunk, len(in.lines))
		msgs := make([]message.Message, end-start)
		for i := range msgs {
			k := start + i
			line := in.lines[k]
			m := message.Message{Payload: line, Event: line, Ref: int32(i),
				Pos: message.Position{Stream: *input, Offset: in.offsets[k]}, Time: now}
			if decoder != nil {
				ev, err := decoder.DecodeLine(nil, line, k, in.offsets[k], now)
				if err != nil {
					m.Err = err
				} else {
					m.Payload, m.Event = ev, ev
				}
			}
			msgs[i] = m
		}
		outs, _, fails, err := run.run(ctx, msgs)
		if err != nil {
			fmt.Fprintf(stderr, "sluice test: %v\n", err)
			return exitFailed
		}
		got = append(got, outs...)
		for _, f := range fails {
			failed++
			fmt.Fprintf(stderr, "%s:%d: %s: %v\n", *input, in.numbers[start+f.index], f.stage, f.err)
		}
	}

	if *expect == "" {
		w := bufio.NewWriter(stdout)
		for _, p := range got {
			w.Write(p)
			w.WriteByte('\n')
		}
		w.Flush()
		if failed > 0 {
			return exitFailed
		}
		return exitOK
	}
	want, err := readInput(*expect)
	if err != nil {
		fmt.Fprintf(stderr, "sluice test: %v\n", err)
		return exitFailed
	}
	if diff := diffPayloads(got, want.lines, want.numbers, *expect); diff != "" {
		fmt.Fprint(stderr, diff)
		return exitFailed
	}
	if failed > 0 {
		return exitFailed
	}
	fmt.Fprintf(stdout, "ok: %d events in, %d outputs as expected\n", len(in.lines), len(got))
	return exitOK
}

// inputLines are the non-blank lines of a file with their line numbers
// (1-based) and byte offsets.
type inputLines struct {
	lines   [][]byte
	numbers []int
	offsets []int64
}

func readInput(path string) (inputLines, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return inputLines{}, err
	}
	var in inputLines
	off := 0
	for i, l := range bytes.SplitAfter(data, []byte("\n")) {
		start := off
		off += len(l)
		l = bytes.TrimRight(bytes.TrimSuffix(l, []byte("\n")), "\r")
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		in.lines = append(in.lines, l)
		in.numbers = append(in.numbers, i+1)
		in.offsets = append(in.offsets, int64(start))
	}
	return in, nil
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
