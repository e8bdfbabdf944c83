package logx

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLimiter: a message repeated in a loop passes Burst times per period,
// the next line after the period reports how many were dropped, and other
// messages and levels are not held back by it.
func TestLimiter(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := NewLimiter(3, 10*time.Second)
	l.now = func() time.Time { return now }
	log := zerolog.New(&buf).Hook(l)
	child := log.With().Str("task", "a").Logger() // children share the hook
	for i := range 1000 {
		child.Warn().Str("file", fmt.Sprintf("f%d", i)).Msg("cannot open file; retrying at each poll")
		log.Warn().Msgf("read failed at offset %d", i) // digits do not make a new message
	}
	log.Info().Msg("cannot open file; retrying at each poll") // another level
	log.Warn().Msg("something else")
	now = now.Add(10 * time.Second)
	child.Warn().Msg("cannot open file; retrying at each poll")

	var lines []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, m)
	}
	count := func(msg, level string) int {
		n := 0
		for _, m := range lines {
			if strings.HasPrefix(m["message"].(string), msg) && m["level"] == level {
				n++
			}
		}
		return n
	}
	if n := count("cannot open file", "warn"); n != 4 {
		t.Errorf("%d warn lines of the looping message, want 3 + 1 after the period", n)
	}
	if n := count("read failed at offset", "warn"); n != 3 {
		t.Errorf("%d lines of a message with numbers, want 3", n)
	}
	if count("cannot open file", "info") != 1 || count("something else", "warn") != 1 {
		t.Errorf("other messages were held back: %v", lines)
	}
	last := lines[len(lines)-1]
	if last[Suppressed] != float64(997) || last["task"] != "a" {
		t.Errorf("line after the period: %v, want suppressed = 997", last)
	}
}

// TestLimiterBoundsKeys: distinct messages never grow the limiter past
// maxKeys.
func TestLimiterBoundsKeys(t *testing.T) {
	l := NewLimiter(1, time.Minute)
	log := zerolog.New(nilWriter{}).Hook(l)
	for i := range 3 * maxKeys {
		log.Warn().Msg(strings.Repeat("x", i%70) + fmt.Sprintf("%c", 'a'+i%26) + strings.Repeat("y", i/70))
	}
	if n := len(l.wins); n > maxKeys {
		t.Fatalf("%d keys remembered", n)
	}
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

func TestKeyOf(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"plain":                     "plain",
		"42 files":                  "# files",
		"from 10.1.2.3:5555: EOF":   "from #.#.#.#:#: EOF",
		strings.Repeat("a", 100):    strings.Repeat("a", 64),
		"offset 1" + "234567890123": "offset #",
	} {
		if got := keyOf(in); got != want {
			t.Errorf("keyOf(%q) = %q, want %q", in, got, want)
		}
	}
}
