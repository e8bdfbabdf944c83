package engine_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/source/stdin"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/config"
	"github.com/sluicehq/sluice/runtime/engine"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// logLines keeps the log lines of a task.
type logLines struct{ testkit.LogBuffer }

// message returns the message of the first line whose message starts with
// prefix.
func (l *logLines) message(prefix string) string {
	for _, line := range strings.Split(l.String(), "\n") {
		var rec struct{ Message string }
		if json.Unmarshal([]byte(line), &rec) == nil && strings.HasPrefix(rec.Message, prefix) {
			return rec.Message
		}
	}
	return ""
}

// TestBlockLogSaysWhatBlockedTheTask: a task under errors.tolerance =
// "all" whose dead-letter queue refuses a record blocks; its log line
// said it was blocked by errors.tolerance = "none", sending the operator
// to the wrong setting. It now names the dead-letter queue, and a block
// under "none" still names that setting.
func TestBlockLogSaysWhatBlockedTheTask(t *testing.T) {
	for _, tc := range []struct {
		tolerance, want string
	}{
		{"all", "dead-letter queue"},
		{"none", `errors.tolerance = "none"`},
	} {
		t.Run(tc.tolerance, func(t *testing.T) {
			in := `{"k":"ok"}` + "\n" + `{"k":"bad"}` + "\n"
			src := stdin.New(io.NopCloser(strings.NewReader(in)), &stdin.Config{Format: "json", BatchSize: 10, Source: "s", Type: "t"}, component.Env{})
			sink := &memSink{reject: func(p []byte) error {
				if bytes.Contains(p, []byte("bad")) {
					return component.EventPermanent(errors.New("422 refused"))
				}
				return nil
			}}
			dlq := &memSink{reject: func([]byte) error { return component.EventPermanent(errors.New("the dead-letter queue refuses")) }}
			cfg := task(src, sink, func(c *config.Task) {
				c.Tolerance = tc.tolerance
				c.DeadLetter = &config.Component{Type: "mem", Instance: dlq}
			})
			logs := &logLines{}
			o := opts(t)
			o.Logger = zerolog.New(logs)
			run := engine.New(cfg, o)
			if err := run.Run(context.Background()); !errors.Is(err, engine.ErrBlocked) {
				t.Fatalf("run: %v, want blocked", err)
			}
			msg := logs.message("task blocked")
			if !strings.Contains(msg, tc.want) || tc.tolerance == "all" && strings.Contains(msg, "tolerance") {
				t.Fatalf("log line %q, want it to name %s", msg, tc.want)
			}
		})
	}
}
