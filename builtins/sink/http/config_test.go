package http

import (
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/sluicehq/sluice/runtime/component"
)

func TestConfig(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		cfg, probs := decodeConfig(t, `url = "http://127.0.0.1:9000/hook"`)
		if len(probs) != 0 {
			t.Fatalf("problems: %v", probs)
		}
		want := Batch{MaxEvents: 100, MaxBytes: 1 << 20, MaxWait: component.Duration(time.Second)}
		if cfg.Method != "POST" || cfg.Format != "ndjson" || cfg.Timeout.D() != 30*time.Second || cfg.Batch != want || cfg.MaxInFlight != 8 {
			t.Errorf("defaults: %+v", cfg)
		}
	})
	t.Run("partial batch table keeps the other defaults", func(t *testing.T) {
		cfg, probs := decodeConfig(t, "url = \"http://h/\"\nbatch = { max_events = 5 }")
		if len(probs) != 0 || cfg.Batch.MaxEvents != 5 || cfg.Batch.MaxBytes != 1<<20 || cfg.Batch.MaxWait.D() != time.Second {
			t.Fatalf("%+v %v", cfg.Batch, probs)
		}
	})
	cases := []struct {
		name, src, path, msg string
	}{
		{"missing url", `format = "ndjson"`, "sink", `missing required key "url"`},
		{"scheme", `url = "ftp://h/x"`, "sink.url", "scheme must be http or https"},
		{"no host", `url = "http:///x"`, "sink.url", "no host"},
		{"no scheme", `url = "127.0.0.1:8080/hook"`, "sink.url", "invalid url"},
		{"fragment", `url = "http://h/x#frag"`, "sink.url", "fragment"},
		{"method", "url = \"http://h/\"\nmethod = \"GET\"", "sink.method", `must be one of "POST", "PUT", "PATCH"`},
		{"format", "url = \"http://h/\"\nformat = \"csv\"", "sink.format", `must be one of "ndjson", "json_array", "single"`},
		{"header name", "url = \"http://h/\"\nheaders = { \"X Bad\" = \"v\" }", `sink.headers."X Bad"`, "invalid header name"},
		{"header value", "url = \"http://h/\"\nheaders = { \"X-A\" = \"a\\nb\" }", "sink.headers.X-A", "CR, LF"},
		{"header value control", "url = \"http://h/\"\nheaders = { \"X-A\" = \"k\\u0001ey\" }", "sink.headers.X-A", "control characters"},
		{"header value DEL", "url = \"http://h/\"\nheaders = { \"X-A\" = \"k\\u007fey\" }", "sink.headers.X-A", "control characters"},
		{"token newline", "url = \"http://h/\"\ntoken = \"s3cret\\n\"", "sink.token", "control characters"},
		{"token control", "url = \"http://h/\"\ntoken = \"s3\\u001bcret\"", "sink.token", "control characters"},
		{"content-length", "url = \"http://h/\"\nheaders = { \"content-length\" = \"5\" }", "sink.headers.content-length", "set by the sink"},
		{"authorization and token", "url = \"http://h/\"\ntoken = \"t\"\nheaders = { Authorization = \"Basic x\" }", "sink.headers.Authorization", "conflicts with token"},
		{"max_events", "url = \"http://h/\"\nbatch = { max_events = 0 }", "sink.batch.max_events", "below the minimum 1"},
		{"max_bytes", "url = \"http://h/\"\nbatch = { max_bytes = \"0\" }", "sink.batch.max_bytes", "must be positive"},
		{"batch typo", "url = \"http://h/\"\nbatch = { max_event = 3 }", "sink.batch.max_event", `did you mean "max_events"?`},
		{"timeout", "url = \"http://h/\"\ntimeout = \"0s\"", "sink.timeout", "must be positive"},
		{"max_in_flight", "url = \"http://h/\"\nmax_in_flight = 0", "sink.max_in_flight", "below the minimum"},
		{"tls pair", "url = \"https://h/\"\ntls = { cert_file = \"c.pem\" }", "sink.tls", "without key_file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, probs := decodeConfig(t, c.src)
			for _, p := range probs {
				if p.PathString() == c.path && strings.Contains(p.Msg, c.msg) {
					return
				}
			}
			t.Fatalf("no problem at %s mentioning %q; got %+v", c.path, c.msg, probs)
		})
	}
	t.Run("tab and non-ASCII header values are fine", func(t *testing.T) {
		_, probs := decodeConfig(t, "url = \"http://h/\"\ntoken = \"a\\tb\"\nheaders = { \"X-A\" = \"a\\tb é\" }")
		if len(probs) != 0 {
			t.Fatalf("problems: %v", probs)
		}
	})
	t.Run("token stays out of messages", func(t *testing.T) {
		_, probs := decodeConfig(t, "url = \"http://h/\"\ntoken = \"hunter2\\n\"")
		if len(probs) != 1 || strings.Contains(probs[0].Msg, "hunter2") {
			t.Fatalf("problems %+v", probs)
		}
	})
	t.Run("url credentials stay out of messages", func(t *testing.T) {
		_, probs := decodeConfig(t, `url = "ftp://bob:hunter2@h/x"`)
		if len(probs) != 1 || strings.Contains(probs[0].Msg, "hunter2") {
			t.Fatalf("problems %+v", probs)
		}
	})
	t.Run("example loads", func(t *testing.T) {
		r := component.NewRegistry()
		Register(r)
		spec, _ := r.Lookup(component.KindSink, "http")
		var doc map[string]any
		if _, err := toml.Decode(spec.Example, &doc); err != nil {
			t.Fatal(err)
		}
		sink := doc["sink"].(map[string]any)
		if sink["type"] != "http" {
			t.Fatalf("example sink type %v", sink["type"])
		}
		sink["token"] = "x" // ${env:...} is expanded by the loader
		cfg := spec.New()
		p := component.NewProblems("sink")
		component.Decode(sink, cfg, p, "type")
		if p.Len() != 0 {
			t.Fatalf("example problems: %v", p.List())
		}
		if _, err := spec.Build(cfg, testEnv(t)); err != nil {
			t.Fatalf("example build: %v", err)
		}
	})
}
