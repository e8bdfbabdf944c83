package nats

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
)

// TestLongSubjectFailsItsRecordOnly: a rendered subject past what the
// server's max_control_line carries made the server close the connection,
// so every record in flight timed out as retryable and the same record
// closed it again on each retry. It is refused alone, before publishing.
func TestLongSubjectFailsItsRecordOnly(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "long")
	base := "sluice.test." + stream
	srv.Stream(t, stream, base+".>")
	s := openSink(t, fmt.Sprintf("url = %q\nsubject = \"%s.${r}\"\nvariables = { r = \"$.data.region\" }\n", srv.URL, base))
	err := s.Write(natstest.Ctx(t), []message.Message{record("e1", "eu", "1"), record("e2", strings.Repeat("x", 5000), "2"), record("e3", "us", "3")})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || re.Errs[1] == nil || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
		t.Fatalf("Write = %v; want record 1 alone failed, event_permanent", err)
	}
	if !strings.Contains(re.Errs[1].Error(), "max_control_line") {
		t.Fatalf("the reason does not say what limit: %v", re.Errs[1])
	}
	if n := srv.StreamMsgs(t, stream); n != 2 {
		t.Fatalf("the stream holds %d messages, want the 2 others", n)
	}
}

// TestBadForwardedHeaderFailsItsRecordOnly: a forwarded header name with
// CR/LF (a Kafka header key may hold any bytes) can never be published:
// it fails its record alone, event_permanent, instead of being retried.
func TestBadForwardedHeaderFailsItsRecordOnly(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "hdr")
	subject := "sluice.test." + stream
	srv.Stream(t, stream, subject)
	s := openSink(t, fmt.Sprintf("url = %q\nsubject = %q\n", srv.URL, subject))
	err := s.Write(natstest.Ctx(t), []message.Message{
		record("e1", "eu", "1", message.Header{Key: "x\r\nInjected", Value: []byte("yes")}),
		record("e2", "eu", "2", message.Header{Key: "ok", Value: []byte("a\nb")}),
		record("e3", "eu", "3", message.Header{Key: "ok", Value: []byte("fine")}),
	})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 2 || component.ClassOf(re.Errs[0]) != component.ClassEventPermanent || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
		t.Fatalf("Write = %v; want records 0 and 1 failed, event_permanent", err)
	}
	got := srv.ReadAll(t, stream)
	if len(got) != 1 || got[0].Header.Get("ok") != "fine" {
		t.Fatalf("the stream holds %d messages (%v), want the third alone", len(got), got)
	}
}

// TestJSONHeaderTemplateFailsItsRecordOnly: a header whose template is a
// JSON template renders JSON or fails. An event it cannot render (the path
// finds nothing) was published with an empty header; that record now fails
// alone, event-permanent, naming the header.
func TestJSONHeaderTemplateFailsItsRecordOnly(t *testing.T) {
	srv := natstest.Local(t)
	stream := natstest.StreamName(t, "jh")
	subject := "sluice.test." + stream
	srv.Stream(t, stream, subject)
	s := openSink(t, fmt.Sprintf("url = %q\nsubject = %q\nheaders = { meta = '{\"data\": ${d}}' }\nvariables = { d = \"$.data\" }\n", srv.URL, subject))
	missing := record("e2", "eu", "2")
	missing.Event = []byte(`{"specversion":"1.0","id":"e2"}`)
	err := s.Write(natstest.Ctx(t), []message.Message{record("e1", "eu", "1"), missing, record("e3", "us", "3")})
	var re *component.RecordErrors
	if !errors.As(err, &re) || len(re.Errs) != 1 || re.Errs[1] == nil || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
		t.Fatalf("Write = %v; want record 1 alone failed, event_permanent", err)
	}
	if !strings.Contains(re.Errs[1].Error(), `header "meta" template`) {
		t.Fatalf("the reason does not name the header: %v", re.Errs[1])
	}
	got := srv.ReadAll(t, stream)
	if len(got) != 2 || got[0].Header.Get("meta") != `{"data": {"region":"eu","order":"o-e1"}}` || got[1].Header.Get("meta") != `{"data": {"region":"us","order":"o-e3"}}` {
		t.Fatalf("the stream holds %d messages (%v), want records 0 and 2 with their header", len(got), got)
	}
}
