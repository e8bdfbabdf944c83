// Package dlq is the `dlq` source: it reads a dead-letter file written by a
// task (one JSON record per line, docs/delivery.md) and emits each record's
// original event, so a fixed task can process them again. `sluice dlq
// replay` runs a task with this source in place of its own.
package dlq

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/deadletter"
	"github.com/sluicehq/sluice/builtins/internal/kafkaconf"
	"github.com/sluicehq/sluice/builtins/internal/lineformat"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/message"
)

// Config is the [source] table of a dlq task.
type Config struct {
	Path      string   `toml:"path" required:"true" doc:"Dead-letter file to read (a glob reads several, in name order), relative to the task file's folder; or a Kafka dead-letter topic as kafka://host:port[,host:port]/topic, read from its beginning to the end it has when the run starts."`
	Stages    []string `toml:"stages" doc:"Only records that failed at these stages: decode, filter, transform[N] (or transform for any), sink. Empty: all."`
	BatchSize int      `toml:"batch_size" min:"1" max:"100000" doc:"Most records per batch."`

	// A Kafka dead-letter topic's connection. Without them the source
	// borrows the task's Kafka [dead_letter] sink's (sluice dlq replay).
	ClientID string          `toml:"client_id" doc:"Kafka path only: client id sent to the brokers. Setting client_id, sasl or tls makes the source connect with these keys alone, not with the task's Kafka dead-letter sink's."`
	SASL     *kafkaconf.SASL `toml:"sasl" doc:"Kafka path only: SASL authentication (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) for the dead-letter topic's cluster."`
	TLS      *kafkaconf.TLS  `toml:"tls" doc:"Kafka path only: TLS settings for the dead-letter topic's cluster; the table's presence turns TLS on."`
}

// ownConn reports whether the config names a Kafka connection of its own.
func (c *Config) ownConn() bool { return c.ClientID != "" || c.SASL != nil || c.TLS != nil }

// Validate checks a Kafka address.
func (c *Config) Validate(p *component.Problems) {
	if strings.HasPrefix(c.Path, "kafka://") {
		if _, _, err := ParseKafkaURL(c.Path); err != nil {
			p.Addf([]string{"path"}, "%v", err)
		}
		return
	}
	for _, k := range []struct {
		key string
		set bool
	}{{"client_id", c.ClientID != ""}, {"sasl", c.SASL != nil}, {"tls", c.TLS != nil}} {
		if k.set {
			p.Addf([]string{k.key}, "applies only to a Kafka dead-letter topic (path = \"kafka://host:port/topic\"); a dead-letter file needs no connection: remove it")
		}
	}
}

// Register adds the dlq source to r.
func Register(r *component.Registry) {
	r.Register(component.Spec{
		Kind:    component.KindSource,
		Name:    "dlq",
		Summary: "Reads a dead-letter file and emits the original events it holds, for a replay.",
		Description: "Each line of the file is a dead-letter record `{\"event\", \"task\", \"stage\", \"error\", ...}`. " +
			"The source emits `event` unchanged when it is a CloudEvent; an event that failed to decode (the raw " +
			"input line, kept as a JSON string or value) is wrapped as the `auto` line format would. Lines that are " +
			"not dead-letter records, events over the task's `max_event_size` and lines over 8 x `max_event_size` + 64 KiB " +
			"(not read whole: they keep their first `max_event_size` bytes, whatever their stage) go to the dead-letter " +
			"queue at stage decode. A Kafka topic is read committed: records of aborted transactions are skipped, and a " +
			"transaction still open when the run starts holds the run until it commits or aborts; it connects with " +
			"the source's client_id, sasl and tls keys when any is set, otherwise with those of the task's Kafka dead-letter sink " +
			"that writes the topic on one of the address's brokers (`sluice dlq replay`). The run is finite.",
		Example: "[source]\ntype = \"dlq\"\npath = \"dlq/orders.jsonl\"\nstages = [\"sink\"]\n",
		New:     func() any { return &Config{BatchSize: 512} },
		Build: func(cfg any, env component.Env) (any, error) {
			c := *cfg.(*Config)
			if strings.HasPrefix(c.Path, "kafka://") {
				k, err := NewKafka(c.Path, c.Stages, c.BatchSize, env)
				if err == nil && c.ownConn() {
					k.conn = &kafkaconf.Conn{Brokers: k.brokers, ClientID: c.ClientID, SASL: c.SASL, TLS: c.TLS}
				}
				return k, err
			}
			if !filepath.IsAbs(c.Path) {
				c.Path = filepath.Join(env.Dir, c.Path)
			}
			return New(c, env), nil
		},
	})
}

// Source reads dead-letter records.
type Source struct {
	cfg   Config
	env   component.Env
	files []string
	f     *os.File
	r     *bufio.Reader
	name  string
	off   int64                 // byte offset of the next line in the current file
	line  int64                 // number of the next line in the current file, from 1
	lines lineformat.LineReader // of r, cut at maxLine
	w     lineformat.Wrapper

	// maxEvent is the task's event limit (the default limit when the
	// environment gives none); maxLine, the longest dead-letter line read
	// whole (lineLimit).
	maxEvent, maxLine int
}

// New returns a source for cfg (Path absolute).
func New(cfg Config, env component.Env) *Source {
	maxEvent := env.MaxEvent
	if maxEvent <= 0 {
		maxEvent = defaultMaxEvent
	}
	return &Source{cfg: cfg, env: env, maxEvent: maxEvent, maxLine: lineLimit(maxEvent), lines: lineformat.LineReader{Limit: lineLimit(maxEvent)},
		w: deadletter.NewWrapper(env.MaxEvent)}
}

// defaultMaxEvent is the event limit the line bound derives from when the
// environment sets none (the loader's default, config.DefaultMaxEvent).
const defaultMaxEvent = 1 << 20

// lineLimit returns the longest dead-letter line the file replay reads
// whole for an event limit of maxEvent bytes: room for any record whose
// event is within the limit, however the record holds it (an event that is
// not JSON is a string whose control characters and bad bytes take up to 6
// bytes each, followed for bad bytes by its base64 copy: less than 7.5
// times its size), plus the record's other members. A longer line is cut
// there: the replay never holds more of one line in memory.
func lineLimit(maxEvent int) int {
	return int(min(8*int64(maxEvent)+64<<10, math.MaxInt/2))
}

// Open lists the files to read.
func (s *Source) Open(context.Context) error {
	m, err := filepath.Glob(s.cfg.Path)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("dead-letter path %q: %w", s.cfg.Path, err))
	}
	if len(m) == 0 {
		return component.TaskPermanent(fmt.Errorf("no dead-letter file matches %q", s.cfg.Path))
	}
	sort.Strings(m)
	s.files = m
	return nil
}

// Close closes the current file.
func (s *Source) Close(context.Context) error {
	if s.f != nil {
		return s.f.Close()
	}
	return nil
}

// Read returns the next records' events.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	var msgs []message.Message
	now := time.Now()
	for len(msgs) < s.cfg.BatchSize {
		if err := ctx.Err(); err != nil {
			return component.Batch{}, err
		}
		if s.r == nil {
			if len(s.files) == 0 {
				break
			}
			f, err := os.Open(s.files[0])
			if err != nil {
				return component.Batch{}, component.TaskPermanent(fmt.Errorf("open dead-letter file: %w", err))
			}
			s.f, s.r, s.name, s.off, s.line = f, bufio.NewReaderSize(f, 1<<20), s.files[0], 0, 1
			s.lines.R = s.r
			s.files = s.files[1:]
			if len(msgs) > 0 {
				break // one lane per batch
			}
		}
		line, size, n, err := s.lines.Next()
		pos := message.Position{Stream: s.name, Offset: s.off}
		if size > int64(len(line)) {
			msgs = append(msgs, s.cut(line, size, pos, now))
		} else if n > 0 {
			if m, ok := s.decode(trimNL(line), pos, now); ok {
				msgs = append(msgs, m)
			}
		}
		s.off += n
		s.line++
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return component.Batch{}, fmt.Errorf("read %s: %w", s.name, err)
			}
			s.f.Close()
			s.f, s.r = nil, nil
			if len(msgs) > 0 {
				break
			}
		}
	}
	if len(msgs) == 0 {
		return component.Batch{}, io.EOF
	}
	return component.Batch{Messages: msgs, Lane: msgs[0].Pos.Stream}, nil
}

// cut returns the message of a dead-letter line of size bytes (without its
// '\n') longer than the line limit, of which head holds the first: an
// error naming the line, with its first max_event_size bytes, so that the
// replay's own dead-letter queue keeps it. Its stage cannot be told (the
// record's "stage" follows its event), so the stages filter does not apply.
func (s *Source) cut(head []byte, size int64, pos message.Position, now time.Time) message.Message {
	raw := append([]byte(nil), head[:min(len(head), s.maxEvent)]...)
	return message.Message{Payload: raw, Event: raw, Pos: pos, Time: now,
		Err: fmt.Errorf("%s line %d: %w: the dead-letter record is %d bytes, the limit is %d (8 x max_event_size + 64 KiB); "+
			"replay it with a larger max_event_size (the task's, or sluice dlq replay --max-event-size when the task sets none); "+
			"the record holds its first %d bytes", s.name, s.line, lineformat.ErrTooLarge, size, s.maxLine, len(raw))}
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// decode turns one dead-letter line into the message of its event. ok is
// false for a record filtered out by stage or a blank line.
func (s *Source) decode(line []byte, pos message.Position, now time.Time) (message.Message, bool) {
	if jsonscan.SkipSpace(line, 0) == len(line) {
		return message.Message{}, false
	}
	bad := func(why string) (message.Message, bool) {
		raw := append([]byte(nil), line...)
		return message.Message{Payload: raw, Event: raw, Pos: pos, Time: now,
			Err: fmt.Errorf("%s line %d (byte %d) is not a dead-letter record: %s", s.name, s.line, pos.Offset, why)}, true
	}
	if !jsonscan.Valid(line) {
		return bad("not JSON")
	}
	event, stage, b64 := Fields(line)
	if event == nil {
		return bad(`no "event" member`)
	}
	if !stageWanted(s.cfg.Stages, string(stage)) {
		return message.Message{}, false
	}
	raw, err := deadletter.Raw(event, b64)
	if err != nil {
		return bad(err.Error())
	}
	out, err := s.w.Append(nil, raw, pos)
	if err != nil {
		return message.Message{Payload: raw, Event: raw, Pos: pos, Time: now, Err: fmt.Errorf("%s line %d: %w", s.name, s.line, err)}, true
	}
	return message.Message{Payload: out, Event: out, Pos: pos, Time: now}, true
}

// Fields returns the raw "event" value, the decoded "stage" and the decoded
// "event_base64" string (nil when absent) of a dead-letter record.
func Fields(rec []byte) (event, stage, eventBase64 []byte) { return deadletter.Fields(rec) }

func stageWanted(stages []string, stage string) bool {
	if len(stages) == 0 || slices.Contains(stages, stage) {
		return true
	}
	return len(stage) > 9 && stage[:9] == "transform" && slices.Contains(stages, "transform")
}

var _ component.Source = (*Source)(nil)
