package mqtt

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func newSink(t testing.TB, src string) *Sink {
	t.Helper()
	env := componenttest.Env(t, zerolog.InfoLevel, "sink")
	return componenttest.Build(t, Register, component.KindSink, "mqtt", src, env).(*Sink)
}

func openSink(t testing.TB, s *Sink) {
	t.Helper()
	if err := s.Open(context.Background()); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
}

func msg(event, payload string) message.Message {
	return message.Message{Payload: []byte(payload), Event: []byte(event), Pos: message.Position{Stream: "s", Offset: 1}}
}

func TestConformance(t *testing.T) {
	for _, qos := range []int{1, 2} {
		t.Run(fmt.Sprintf("QoS%d", qos), func(t *testing.T) {
			url := testkit.MQTT(t)
			base := testkit.Unique(t, "conf")
			col := mqtttest.Connect(t, url).Subscribe(t, base+"/#", 2)
			proxy := testkit.NewProxy(t, strings.TrimPrefix(url, "tcp://"))
			componenttest.Sink(t, componenttest.SinkSuite{
				New: func(t testing.TB) component.Sink {
					return newSink(t, fmt.Sprintf("url = \"tcp://%s\"\ntopic = \"%s/${n}\"\nvariables = { n = \"$.data.n\" }\nqos = %d\nconnect_timeout = \"2s\"\n", proxy.Addr(), base, qos))
				},
				Received: func(t testing.TB) [][]byte {
					var out [][]byte
					for _, m := range col.All() {
						out = append(out, m.Payload)
					}
					return out
				},
				Ordered: true,
				Cut:     proxy.Cut,
				Restore: proxy.Restore,
			})
		})
	}
}

// TestQoSAndRetain: every QoS delivers; a retained message reaches a
// subscriber that comes later.
func TestQoSAndRetain(t *testing.T) {
	url := testkit.MQTT(t)
	base := testkit.Unique(t, "qr")
	for qos := range 3 {
		s := newSink(t, fmt.Sprintf("url = %q\ntopic = \"%s/%d\"\nqos = %d\nretain = true\n", url, base, qos, qos))
		openSink(t, s)
		if err := s.Write(context.Background(), []message.Message{msg(`{}`, fmt.Sprintf(`{"qos":%d}`, qos))}); err != nil {
			t.Fatalf("qos %d: %v", qos, err)
		}
	}
	late := mqtttest.Connect(t, url)
	col := late.Subscribe(t, base+"/+", 1)
	testkit.WaitFor(t, "three retained messages", func() bool { return len(col.All()) == 3 })
	for _, m := range col.All() {
		if !m.Retained || !strings.HasPrefix(string(m.Payload), `{"qos":`) {
			t.Fatalf("%+v", m)
		}
		// Clear the retained message.
		late.C.Publish(m.Topic, 1, true, []byte{}).Wait()
	}
}

// TestInvalidTopicIsolated: a record whose topic renders with a wildcard or
// empty fails alone, event-permanent.
func TestInvalidTopicIsolated(t *testing.T) {
	url := testkit.MQTT(t)
	base := testkit.Unique(t, "inv")
	col := mqtttest.Connect(t, url).Subscribe(t, base+"/#", 1)
	s := newSink(t, fmt.Sprintf("url = %q\ntopic = \"%s/${line}\"\nvariables = { line = \"$.line\" }\n", url, base))
	openSink(t, s)
	err := s.Write(context.Background(), []message.Message{
		msg(`{"line":"a"}`, `1`), msg(`{"line":"+"}`, `2`), msg(`{"line":"b"}`, `3`),
	})
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 1 || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "wildcard") {
		t.Fatalf("err %v", err)
	}
	testkit.WaitFor(t, "the two good messages", func() bool { return len(col.All()) == 2 })
}

// TestJSONTopicTemplateFailureIsolated: a topic whose template is a JSON
// template renders JSON or fails. A record it could not render (the path
// finds nothing) was published to an empty topic name, which the check of
// the rendered topic then refused with a reason about emptiness; it now
// fails alone, event-permanent, with the template's reason.
func TestJSONTopicTemplateFailureIsolated(t *testing.T) {
	url := testkit.MQTT(t)
	base := testkit.Unique(t, "json")
	col := mqtttest.Connect(t, url).Subscribe(t, fmt.Sprintf(`[%q, 1]`, base), 1)
	s := newSink(t, fmt.Sprintf("url = %q\ntopic = '[%q, ${n}]'\nvariables = { n = \"$.n\" }\n", url, base))
	openSink(t, s)
	err := s.Write(context.Background(), []message.Message{
		msg(`{"n":1}`, `1`), msg(`{}`, `2`), msg(`{"n":1}`, `3`),
	})
	re, ok := err.(*component.RecordErrors)
	if !ok || len(re.Errs) != 1 || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent || !strings.Contains(re.Errs[1].Error(), "topic template: template: ${n} found nothing") {
		t.Fatalf("err %v", err)
	}
	testkit.WaitFor(t, "the two good messages", func() bool { return len(col.All()) == 2 })
}

// TestBadCredentials: a broker that refuses the login fails the task.
func TestBadCredentials(t *testing.T) {
	pw := mqtttest.PasswordFile(t, "sluice", "right")
	url := mqtttest.Mosquitto(t, "allow_anonymous false", "password_file "+pw)
	s := newSink(t, fmt.Sprintf("url = %q\ntopic = \"x\"\nusername = \"sluice\"\npassword = \"wrong-pw\"\n", url))
	err := s.Open(context.Background())
	if component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), "refused the login") || strings.Contains(err.Error(), "wrong-pw") {
		t.Fatalf("bad credentials: %v", err)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct{ src, path, msg string }{
		{`url = "tcp://h:1"` + "\ntopic = \"a/#\"", "sink.topic", "topic \"a/#\" holds a wildcard"},
		{`url = "tcp://h:1"` + "\ntopic = \"a/${x}\"", "sink.topic", "unknown variable \"x\""},
		{`url = "tcp://h:1"` + "\ntopic = \"a\"\nqos = 3", "sink.qos", "value 3 is above the maximum"},
	} {
		_, p := componenttest.Decode(t, Register, component.KindSink, "mqtt", tc.src)
		probs := p.List()
		if len(probs) != 1 || probs[0].PathString() != tc.path || !strings.HasPrefix(probs[0].Msg, tc.msg) {
			t.Errorf("%s: %+v", tc.src, probs)
		}
	}
}

// A record whose topic renders with a character the broker refuses (a
// control character, a Unicode non-character) fails alone, event-permanent:
// published, it made Mosquitto close the connection, failing the whole batch
// as retryable again and again.
func TestTopicWithControlCharacterIsolated(t *testing.T) {
	url := testkit.MQTT(t)
	base := testkit.Unique(t, "ctl")
	col := mqtttest.Connect(t, url).Subscribe(t, base+"/#", 1)
	s := newSink(t, fmt.Sprintf("url = %q\ntopic = \"%s/${line}\"\nvariables = { line = \"$.line\" }\nqos = 1\n", url, base))
	openSink(t, s)
	for _, bad := range []string{`a\tb`, `a\u007fb`, `a\u0085b`, `a\ufffeb`, `a\ufdd0b`, `a\ud83f\udffeb`} {
		err := s.Write(context.Background(), []message.Message{
			msg(`{"line":"a"}`, `1`), msg(`{"line":"`+bad+`"}`, `2`), msg(`{"line":"b"}`, `3`),
		})
		re, ok := err.(*component.RecordErrors)
		if !ok || len(re.Errs) != 1 || component.ClassOf(re.Errs[1]) != component.ClassEventPermanent {
			t.Fatalf("line %s: err %v (%s), want the one record failing event-permanent", bad, err, component.ClassOf(err))
		}
	}
	testkit.WaitFor(t, "the good messages", func() bool { return len(col.All()) == 12 })
}

// TestBatchFailuresCounted: sluice_mqtt_publisher_errors_total counts the
// messages of a batch that failed as a whole (the broker cut off), by
// class, not only those refused one by one (a bad topic): an outage read
// zero on it before.
func TestBatchFailuresCounted(t *testing.T) {
	url := testkit.MQTT(t)
	proxy := testkit.NewProxy(t, strings.TrimPrefix(url, "tcp://"))
	env := componenttest.Env(t, zerolog.InfoLevel, "sink")
	s := componenttest.Build(t, Register, component.KindSink, "mqtt",
		fmt.Sprintf("url = \"tcp://%s\"\ntopic = %q\nconnect_timeout = \"2s\"\npublish_timeout = \"2s\"\n", proxy.Addr(), testkit.Unique(t, "cut")), env).(*Sink)
	openSink(t, s)
	proxy.Cut()
	err := s.Write(context.Background(), []message.Message{msg(`{}`, `1`), msg(`{}`, `2`), msg(`{}`, `3`)})
	if component.ClassOf(err) != component.ClassRetryable {
		t.Fatalf("write through a cut connection: %v, want a retryable failure", err)
	}
	if v, ok := metricstest.Gather(t, env.Metrics).Value("sluice_mqtt_publisher_errors_total", "error_type", "retryable"); !ok || v != 3 {
		t.Fatalf("sluice_mqtt_publisher_errors_total{error_type=\"retryable\"} = %v (%v), want 3", v, ok)
	}
}
