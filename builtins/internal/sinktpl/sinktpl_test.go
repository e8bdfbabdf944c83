package sinktpl

import (
	"encoding/json"
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
