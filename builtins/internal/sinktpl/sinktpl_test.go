package sinktpl

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFieldRenderReportsJSONTemplateFailure: a sink field (a Redis stream
// field, a NATS or RabbitMQ header, a message id) whose template is a JSON
// template renders JSON or fails the record, as in the template transform
// and the Kafka sink. Field.Render dropped the engine's error and rendered
// nothing: the record was written with an empty value, neither JSON nor
// dead-lettered, and the caller could not tell. It now returns the error.
func TestFieldRenderReportsJSONTemplateFailure(t *testing.T) {
	c := New(map[string]string{"amt": "$.data.amount"}, nil)
	f := c.Field([]string{"fields", "meta"}, `{"amount": ${amt}}`, false)
	if f == nil || !c.OK || !f.T.JSON() {
		t.Fatal("did not compile as a JSON template")
	}
	for _, ev := range []string{`{"data": {}}`, `{"data": {"amount": "12 EUR"}}`} {
		_, err := f.T.Render(nil, []byte(ev))
		buf, got, ferr := f.Render([]byte("pre"), []byte(ev))
		if err == nil {
			t.Fatalf("event %s: the engine renders it", ev)
		}
		if ferr == nil {
			t.Errorf("event %s: the engine fails the render (%v), Field.Render gives %q with no error to report", ev, err, got)
		} else if string(buf) != "pre" || got != "" || ferr.Error() != err.Error() {
			t.Errorf("event %s: Field.Render = %q, %q, %v; want the buffer as it was, no text, and the engine's error %v", ev, buf, got, ferr, err)
		}
	}
	buf, got, err := f.Render(nil, []byte(`{"data": {"amount": 12.5}}`))
	if err != nil || got != `{"amount": 12.5}` || !json.Valid(buf) {
		t.Fatalf("Field.Render = %q, %v", got, err)
	}
	fixed := c.Field([]string{"fields", "f"}, `fixed`, false)
	if buf, got, err := fixed.Render([]byte("pre"), []byte(`not JSON`)); err != nil || got != "fixed" || string(buf) != "pre" {
		t.Fatalf("a fixed field renders %q, %q, %v", buf, got, err)
	}
}

// TestFieldRenderIsBounded: a sink's templates render over the original
// event like the template transform, and are bounded like it by the task's
// event limit (Compiler.MaxEvent, 4 × it + 64 KiB), so that a header or
// field repeating a value cannot render gigabytes for one large event.
func TestFieldRenderIsBounded(t *testing.T) {
	event := func(n int) []byte { return []byte(`{"a":"` + strings.Repeat("x", n) + `"}`) }
	c := New(map[string]string{"a": "$.a"}, nil)
	c.MaxEvent = 1024 // the limit is 69,632 bytes
	f := c.Field([]string{"headers", "big"}, strings.Repeat("${a}", 5), false)
	if _, got, err := f.Render(nil, event(13000)); err != nil || len(got) != 65000 {
		t.Fatalf("65,000 bytes: %d bytes, %v", len(got), err)
	}
	if _, got, err := f.Render(nil, event(15000)); err == nil || !strings.Contains(err.Error(), "reached 75000 bytes after ${a}, over the limit of 69632 bytes") {
		t.Fatalf("75,000 bytes: %d bytes, %v; want the limit named", len(got), err)
	}
	d := New(map[string]string{"a": "$.a"}, nil) // MaxEvent 0: 1 MiB, a limit of 4 MiB + 64 KiB
	if _, got, err := d.Field([]string{"headers", "big"}, strings.Repeat("${a}", 5), false).Render(nil, event(15000)); err != nil || len(got) != 75000 {
		t.Fatalf("the default limit: %d bytes, %v", len(got), err)
	}
}
