// Package nats is the `nats` sink: it publishes each record's payload to a
// subject (a template over the original event). In JetStream mode (the
// default) every message carries a Nats-Msg-Id derived from the event id,
// so that the stream's duplicate window drops what a replay publishes
// again, and Write returns once the stream acknowledged every message. In
// core mode messages are fire-and-forget. docs/connectors/nats.md is the
// user reference.
package nats

import (
	"slices"
	"strings"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/natsconf"
	"github.com/sluicehq/sluice/builtins/internal/sinktpl"
	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Modes.
const (
	ModeJetStream = "jetstream"
	ModeCore      = "core"
)

// Dedup settings: what Nats-Msg-Id holds.
const (
	DedupEventPayload = "event_payload"
	DedupEvent        = "event"
	DedupNone         = "none"
)

// Config is the [sink] table of `type = "nats"`.
type Config struct {
	URL             string             `toml:"url" required:"true" doc:"Server URL, \"nats://host:4222\" (\"tls://\" for TLS); several comma-separated URLs of one cluster are tried in turn. User and password may be given in it (\"nats://user:pass@host:4222\"), but user/password keep them out of the file."`
	User            string             `toml:"user" doc:"User name for user/password authentication."`
	Password        component.Secret   `toml:"password" doc:"Password of user; use \"${env:NAME}\" to keep it out of the file."`
	Token           component.Secret   `toml:"token" doc:"Authentication token."`
	CredentialsFile string             `toml:"credentials_file" doc:"A .creds file (JWT and NKey seed) for decentralized authentication. Relative to the task file."`
	NKeyFile        string             `toml:"nkey_file" doc:"A file holding an NKey seed (\"SU...\"). Relative to the task file."`
	TLS             *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	ConnectTimeout  component.Duration `toml:"connect_timeout" doc:"Longest time to open the connection to one server."`
	ReconnectWait   component.Duration `toml:"reconnect_wait" doc:"Time between reconnect attempts after the connection is lost. The client reconnects forever; what cannot be delivered meanwhile is retried under the task's retry policy."`

	Subject        string            `toml:"subject" required:"true" doc:"Subject to publish to: a name, or a template such as \"orders.${region}\" over the original source event (variables come from the variables table)."`
	Mode           string            `toml:"mode" enum:"jetstream,core" doc:"jetstream: publish into a stream and wait for its acknowledgement of every message (at-least-once, duplicates removed within the stream's duplicate window). core: plain NATS publish, fire-and-forget: Write returns once the server received the messages; nothing is stored, and subscribers that are not connected miss them."`
	Dedup          string            `toml:"dedup" enum:"event_payload,event,none" doc:"What the Nats-Msg-Id header holds (jetstream mode), which the stream uses to drop duplicates within its duplicate window: event_payload (the event id and a hash of the payload, so that several outputs of one event stay distinct), event (the event id alone: use it only when each event yields at most one output), none (no header: no duplicate removal)."`
	Headers        map[string]string `toml:"headers" doc:"Message headers, name = template. They replace headers of the same name the record carries; see forward_headers for the others."`
	ForwardHeaders bool              `toml:"forward_headers" doc:"Also publish the headers the record carries (a NATS or Kafka source's headers, a dead-letter record's sluice-* headers), except those named in headers."`
	Variables      map[string]string `toml:"variables" doc:"Template variables: name = JSONPath into the original source event (\"$.data.value.region\") or a fixed text. Shared by subject and headers."`

	Stream          string             `toml:"stream" doc:"jetstream mode: the stream the subjects belong to. When set, the server refuses a message that would land in another stream, and Sluice creates the stream (over subjects) when it is missing and create = true."`
	Subjects        []string           `toml:"subjects" doc:"The subjects of the stream Sluice creates (default: the subject, when it holds no template)."`
	Create          bool               `toml:"create" doc:"Create the stream when it is missing, and log that it did. Off: a missing stream stops the task."`
	DuplicateWindow component.Duration `toml:"duplicate_window" doc:"For a stream Sluice creates: how long the server remembers message ids to drop duplicates. Replays within it are dropped; a restart after a longer outage may publish again what was published before it."`

	MaxPending int                `toml:"max_pending" min:"1" max:"1000000" doc:"jetstream mode: most messages published and not yet acknowledged, over every Write of the task; a Write waits for room (bounded asynchronous publishing)."`
	AckTimeout component.Duration `toml:"ack_timeout" doc:"jetstream mode: longest wait for one message's acknowledgement; past it the message fails as retryable and the task's retry policy takes over (it keeps its Nats-Msg-Id, so a late success is not duplicated)."`
}

// Defaults.
const (
	defaultDuplicateWindow = 2 * time.Minute
	defaultMaxPending      = 4096
	defaultAckTimeout      = 30 * time.Second
)

func newConfig() any {
	c := natsconf.DefaultConn()
	return &Config{
		ConnectTimeout:  c.ConnectTimeout,
		ReconnectWait:   c.ReconnectWait,
		Mode:            ModeJetStream,
		Dedup:           DedupEventPayload,
		ForwardHeaders:  true,
		Create:          true,
		DuplicateWindow: component.Duration(defaultDuplicateWindow),
		MaxPending:      defaultMaxPending,
		AckTimeout:      component.Duration(defaultAckTimeout),
	}
}

func (c *Config) conn() *natsconf.Conn {
	return &natsconf.Conn{
		URL: c.URL, User: c.User, Password: c.Password, Token: c.Token, CredentialsFile: c.CredentialsFile,
		NKeyFile: c.NKeyFile, TLS: c.TLS, ConnectTimeout: c.ConnectTimeout, ReconnectWait: c.ReconnectWait,
	}
}

// Validate checks what the tags cannot: templates compile and name only
// known variables, fixed names are valid, settings agree.
func (c *Config) Validate(p *component.Problems) {
	c.conn().Validate(p)
	_, _ = c.compile(p, 0)
	if c.Subject != "" && sinktpl.Fixed(c.Subject) {
		if msg := natsconf.SubjectProblem(c.Subject, false); msg != "" {
			p.Addf([]string{"subject"}, "%s", msg)
		}
	}
	for name := range c.Headers {
		if name == "" || strings.ContainsAny(name, ": \t\r\n") {
			p.KeyErrorf([]string{"headers"}, "invalid header name %q", name)
		}
	}
	if c.Stream != "" {
		if msg := natsconf.NameProblem(c.Stream); msg != "" {
			p.Addf([]string{"stream"}, "%s", msg)
		}
	}
	for i, s := range c.Subjects {
		if msg := natsconf.SubjectProblem(s, true); msg != "" {
			p.Addf([]string{"subjects", component.Index(i)}, "%s", msg)
		}
	}
	if c.Mode == ModeCore {
		for _, k := range []string{"stream", "subjects"} {
			if (k == "stream" && c.Stream != "") || (k == "subjects" && len(c.Subjects) > 0) {
				p.KeyErrorf([]string{k}, "%s is used only with mode = \"jetstream\"", k)
			}
		}
	}
	if len(c.Subjects) > 0 && c.Stream == "" {
		p.KeyErrorf([]string{"subjects"}, "subjects describe the stream Sluice creates: set stream too")
	}
	if c.DuplicateWindow.D() < time.Second {
		p.Addf([]string{"duplicate_window"}, "must be at least 1s")
	}
	if c.AckTimeout.D() < 100*time.Millisecond {
		p.Addf([]string{"ack_timeout"}, "must be at least 100ms")
	}
}

// templates are the compiled subject and header templates.
type templates struct {
	subject      *template.Template
	fixedSubject string // set when subject holds no placeholder
	headers      []headerTemplate
}

type headerTemplate struct {
	name string
	tpl  *template.Template
}

// compile compiles every template, reporting problems to p (which may be
// nil), each bounded by the task's event limit maxEvent (0: the default;
// template.OutputLimit). It returns false when anything failed.
func (c *Config) compile(p *component.Problems, maxEvent int) (*templates, bool) {
	tc := sinktpl.New(c.Variables, p)
	tc.MaxEvent = maxEvent
	ts := &templates{}
	if c.Subject != "" {
		if sinktpl.Fixed(c.Subject) {
			ts.fixedSubject = c.Subject
		}
		ts.subject = tc.Compile([]string{"subject"}, c.Subject, true)
	}
	names := make([]string, 0, len(c.Headers))
	for n := range c.Headers {
		names = append(names, n)
	}
	slices.Sort(names) // a stable header order
	for _, n := range names {
		if t := tc.Compile([]string{"headers", n}, c.Headers[n], false); t != nil {
			ts.headers = append(ts.headers, headerTemplate{name: n, tpl: t})
		}
	}
	return ts, tc.OK
}

func (t *templates) overrides(name string) bool {
	for _, h := range t.headers {
		if h.name == name {
			return true
		}
	}
	return false
}
