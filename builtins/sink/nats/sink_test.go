package nats

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

func openSink(t *testing.T, src string) *Sink {
	t.Helper()
	s := buildSink(t, src)
	if err := s.Open(natstest.Ctx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func record(id, region string, payload string, headers ...message.Header) message.Message {
	ev := fmt.Sprintf(`{"specversion":"1.0","id":%q,"data":{"region":%q,"order":"o-%s"}}`, id, region, id)
	return message.Message{Payload: []byte(payload), Event: []byte(ev), Headers: headers, Pos: message.Position{Stream: "in", Offset: 7}}
}

// TestReplayIsDropped writes the same records twice, as a replay after a
// crash does: the stream keeps one copy of each. Two outputs of one event
// (a transform that fans out) both stay with dedup = "event_payload", and
// collapse into one with dedup = "event".
func TestReplayIsDropped(t *testing.T) {
	srv := natstest.Local(t)
	for _, c := range []struct {
		dedup string
		want  int
	}{{DedupEventPayload, 3}, {DedupEvent, 2}, {DedupNone, 6}} {
		t.Run(c.dedup, func(t *testing.T) {
			stream := natstest.StreamName(t, "dedup")
			subject := "sluice.test." + stream
			srv.Stream(t, stream, subject)
			s := openSink(t, fmt.Sprintf("url = %q\nsubject = %q\ndedup = %q\n", srv.URL, subject, c.dedup))
			msgs := []message.Message{record("e1", "eu", `{"n":1}`), record("e2", "eu", `{"n":2}`), record("e2", "eu", `{"n":3}`)}
			for range 2 {
				if err := s.Write(natstest.Ctx(t), msgs); err != nil {
					t.Fatal(err)
				}
			}
			got := srv.ReadAll(t, stream)
			if len(got) != c.want {
				t.Fatalf("the stream holds %d messages, want %d", len(got), c.want)
			}
			id := got[0].Header.Get("Nats-Msg-Id")
			switch c.dedup {
			case DedupEventPayload:
				if !strings.HasPrefix(id, "e1:") || len(id) != len("e1:")+16 {
					t.Fatalf("Nats-Msg-Id %q", id)
				}
			case DedupEvent:
				if id != "e1" {
					t.Fatalf("Nats-Msg-Id %q", id)
				}
			case DedupNone:
				if id != "" {
					t.Fatalf("Nats-Msg-Id %q", id)
				}
			}
		})
	}
}

func TestMsgIDFallsBackToPosition(t *testing.T) {
	m := message.Message{Payload: []byte("x"), Event: []byte(`{"no":"id"}`), Pos: message.Position{Stream: "s", Partition: 2, Offset: 9}}
	if got := string(appendMsgID(nil, &m, false)); got != "s-2-9" {
		t.Fatalf("%q", got)
	}
	m.Event = []byte(`{"id":"a\"b"}`)
	if got := string(appendMsgID(nil, &m, false)); got != `a"b` {
		t.Fatalf("%q", got)
	}
}

func TestTemplatesAndHeaders(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "tpl")
	subject := "sluice.test." + stream
	srv.Stream(t, stream, subject+".*")
	s := openSink(t, fmt.Sprintf(`url = %q
subject = "%s.${region}"
headers = { order = "${order}", fixed = "yes" }
variables = { region = "$.data.region", order = "$.data.order" }
`, srv.URL, subject))
	in := record("e1", "eu", `{"n":1}`,
		message.Header{Key: "trace", Value: []byte("t-1")},
		message.Header{Key: "Nats-Msg-Id", Value: []byte("upstream")},
		message.Header{Key: "order", Value: []byte("overridden")})
	if err := s.Write(natstest.Ctx(t), []message.Message{in, record("e2", "us", `{"n":2}`)}); err != nil {
		t.Fatal(err)
	}
	got := srv.ReadAll(t, stream)
	if len(got) != 2 || got[0].Subject != subject+".eu" || got[1].Subject != subject+".us" {
		t.Fatalf("%+v", got)
	}
	h := got[0].Header
	if h.Get("trace") != "t-1" || h.Get("order") != "o-e1" || h.Get("fixed") != "yes" || len(h.Values("order")) != 1 || !strings.HasPrefix(h.Get("Nats-Msg-Id"), "e1:") {
		t.Fatalf("headers %v", h)
	}
}

func TestSubjectWithoutStream(t *testing.T) {
	srv := natstest.Local(t)
	subject := "sluice.test.nostream." + natstest.StreamName(t, "x")
	s := buildSink(t, fmt.Sprintf("url = %q\nsubject = %q\n", srv.URL, subject))
	err := s.Open(natstest.Ctx(t))
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "no JetStream stream captures subject") {
		t.Fatalf("Open: %v", err)
	}
	// A templated subject can only be checked per record.
	s = openSink(t, fmt.Sprintf("url = %q\nsubject = \"%s.${r}\"\nvariables = { r = \"$.data.region\" }\n", srv.URL, subject))
	err = s.Write(natstest.Ctx(t), []message.Message{record("e1", "eu", "1")})
	var re *component.RecordErrors
	if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassEventPermanent {
		t.Fatalf("Write: %v", err)
	}
	// A subject that renders invalid fails its record only.
	err = s.Write(natstest.Ctx(t), []message.Message{record("e1", "a b", "1")})
	if !errors.As(err, &re) || component.ClassOf(re.Errs[0]) != component.ClassEventPermanent || !strings.Contains(re.Errs[0].Error(), "whitespace") {
		t.Fatalf("Write: %v", err)
	}
}

func TestCreatesStream(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "made")
	subject := "sluice.test." + stream
	srv.DeleteAtEnd(t, stream)
	s := openSink(t, fmt.Sprintf("url = %q\nsubject = %q\nstream = %q\nduplicate_window = \"5m\"\n", srv.URL, subject, stream))
	st, err := srv.JS.Stream(natstest.Ctx(t), stream)
	if err != nil {
		t.Fatalf("stream not created: %v", err)
	}
	cfg := st.CachedInfo().Config
	if cfg.Duplicates != 5*time.Minute || len(cfg.Subjects) != 1 || cfg.Subjects[0] != subject || cfg.Storage != jetstream.FileStorage {
		t.Fatalf("stream config %+v", cfg)
	}
	if err := s.Write(natstest.Ctx(t), []message.Message{record("e1", "eu", "1")}); err != nil {
		t.Fatal(err)
	}
	// create = false and a missing stream stop the task.
	s2 := buildSink(t, fmt.Sprintf("url = %q\nsubject = %q\nstream = %q\ncreate = false\n", srv.URL, subject, natstest.StreamName(t, "nope")))
	err = s2.Open(natstest.Ctx(t))
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "create it, or set create = true") {
		t.Fatalf("Open: %v", err)
	}
}

func TestBadCredentials(t *testing.T) {
	auth := natstest.AuthServer(t, "sluice", "right")
	s := buildSink(t, fmt.Sprintf("url = %q\ntoken = \"nope\"\nsubject = \"a\"\nmode = \"core\"\n", auth.URL))
	err := s.Open(natstest.Ctx(t))
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "refused the credentials") || strings.Contains(err.Error(), "nope") {
		t.Fatalf("Open: %v", err)
	}
	s = openSink(t, fmt.Sprintf("url = %q\nuser = \"sluice\"\npassword = \"right\"\nsubject = \"a\"\nmode = \"core\"\n", auth.URL))
	if err := s.Write(natstest.Ctx(t), []message.Message{record("e1", "eu", "1")}); err != nil {
		t.Fatal(err)
	}
}

func TestConfigProblems(t *testing.T) {
	for src, want := range map[string]string{
		`subject = "a.*"`:       `sink.subject: invalid subject "a.*": a subject to publish to cannot hold the wildcards`,
		`subject = "a.${nope}"`: `sink.subject: unknown variable "nope"`,
		"subject = \"a\"\nmode = \"core\"\nstream = \"S\"": `sink.stream: stream is used only with mode = "jetstream"`,
		"subject = \"a\"\nsubjects = [\"a\"]":              `sink.subjects: subjects describe the stream Sluice creates: set stream too`,
		"subject = \"a\"\nuser = \"u\"\ntoken = \"t\"":     `sink: user, token, credentials_file and nkey_file are exclusive`,
		"subject = \"a\"\nstream = \"a.b\"":                `sink.stream: invalid name "a.b"`,
	} {
		_, p := componenttest.Decode(t, Register, component.KindSink, "nats", "url = \"nats://127.0.0.1:4222\"\n"+src)
		var msgs []string
		for _, pr := range p.List() {
			msgs = append(msgs, pr.PathString()+": "+pr.Msg)
		}
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0], want) {
			t.Errorf("%s:\n got %q\nwant %s", src, msgs, want)
		}
	}
}

// TestStreamSetRefusesOtherStream: with stream set, a templated subject
// that another stream captures is refused by the server (the publish
// expects the configured stream): that record fails event-permanent, the
// others are stored, and the other stream receives nothing.
func TestStreamSetRefusesOtherStream(t *testing.T) {
	srv := natstest.Local(t)
	mine := natstest.StreamName(t, "mine")
	other := natstest.StreamName(t, "other")
	base := "sluice.test." + mine
	srv.Stream(t, mine, base+".eu")
	srv.Stream(t, other, base+".us")
	s := openSink(t, fmt.Sprintf("url = %q\nsubject = \"%s.${r}\"\nvariables = { r = \"$.data.region\" }\nstream = %q\ncreate = false\n", srv.URL, base, mine))
	err := s.Write(natstest.Ctx(t), []message.Message{record("e1", "eu", "1"), record("e2", "us", "2")})
	var re *component.RecordErrors
	if !errors.As(err, &re) || re.Errs[0] != nil || re.Errs[1] == nil {
		t.Fatalf("Write = %v; want record 1 (subject .us, stream %q) refused", err, other)
	}
	if c := component.ClassOf(re.Errs[1]); c != component.ClassEventPermanent {
		t.Fatalf("class %v, want event_permanent: %v", c, re.Errs[1])
	}
	if n, m := srv.StreamMsgs(t, mine), srv.StreamMsgs(t, other); n != 1 || m != 0 {
		t.Fatalf("stream %q holds %d, stream %q holds %d; want 1 and 0", mine, n, other, m)
	}
}

// A publish to a templated subject with no answer (no responders) was
// dead-lettered as if no stream captured the subject. In a cluster, a
// stream that is electing a leader, or whose server is restarting, gives
// the same answer for a moment: its records went to the dead-letter queue
// although a retry would have delivered them. The sink now asks the server
// which stream captures the subject (once per subject and Write) and fails
// the record for good only when none does.
func TestNoAnswerFromACapturedSubjectIsRetried(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "election")
	base := "sluice.test." + stream
	srv.Stream(t, stream, base+".>")
	s := openSink(t, fmt.Sprintf("url = %q\nsubject = \"%s.${r}\"\nvariables = { r = \"$.data.region\" }\n", srv.URL, base))
	ctx := natstest.Ctx(t)
	s.mu.Lock()
	js := s.js
	s.mu.Unlock()
	var streams streamLookup
	err := s.classify(ctx, &streams, js, base+".eu", nats.ErrNoResponders)
	if component.ClassOf(err) != component.ClassRetryable || !strings.Contains(err.Error(), fmt.Sprintf("stream %q captures the subject", stream)) {
		t.Fatalf("no answer for a subject stream %s captures: %v, want retryable, naming the stream", stream, err)
	}
	err = s.classify(ctx, &streams, js, "sluice.test.nostream."+stream+".eu", nats.ErrNoResponders)
	if component.ClassOf(err) != component.ClassEventPermanent || !strings.Contains(err.Error(), "no JetStream stream captures the subject") {
		t.Fatalf("no answer for a subject no stream captures: %v, want event-permanent", err)
	}
	if len(streams) != 2 {
		t.Fatalf("the Write's lookup holds %d subjects, want 2", len(streams))
	}
}
