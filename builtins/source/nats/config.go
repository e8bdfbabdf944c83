// Package nats is the `nats` source: it reads a JetStream stream through a
// durable pull consumer (created when missing, or an existing one), wraps
// each message in a CloudEvent and acknowledges each message explicitly
// once the engine acknowledged its batch. The consumer's max_ack_pending
// bounds what the server hands out and not yet acknowledged, which is the
// backpressure; several processes on one durable share the messages.
// docs/connectors/nats.md is the user reference.
package nats

import (
	"time"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/builtins/internal/natsconf"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the [source] table of `type = "nats"`.
type Config struct {
	URL             string             `toml:"url" required:"true" doc:"Server URL, \"nats://host:4222\" (\"tls://\" for TLS); several comma-separated URLs of one cluster are tried in turn. User and password may be given in it (\"nats://user:pass@host:4222\"), but user/password keep them out of the file."`
	User            string             `toml:"user" doc:"User name for user/password authentication."`
	Password        component.Secret   `toml:"password" doc:"Password of user; use \"${env:NAME}\" to keep it out of the file."`
	Token           component.Secret   `toml:"token" doc:"Authentication token."`
	CredentialsFile string             `toml:"credentials_file" doc:"A .creds file (JWT and NKey seed) for decentralized authentication. Relative to the task file."`
	NKeyFile        string             `toml:"nkey_file" doc:"A file holding an NKey seed (\"SU...\"). Relative to the task file."`
	TLS             *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	ConnectTimeout  component.Duration `toml:"connect_timeout" doc:"Longest time to open the connection to one server."`
	ReconnectWait   component.Duration `toml:"reconnect_wait" doc:"Time between reconnect attempts after the connection is lost. The client reconnects forever."`

	Stream   string   `toml:"stream" required:"true" doc:"The JetStream stream to read."`
	Durable  string   `toml:"durable" doc:"Durable pull consumer to read through. An existing one is used as it is (it must acknowledge explicitly); a missing one is created with the settings below. Processes sharing a durable share its messages. Default: \"sluice-<task name>\"."`
	Subjects []string `toml:"subjects" doc:"The subjects the stream captures, used only to create the stream when it is missing (with create = true), e.g. [\"orders.>\"]."`
	Filter   string   `toml:"filter_subject" doc:"Only messages whose subject matches this (wildcards allowed), for a durable Sluice creates. Default: every message of the stream."`
	Create   bool     `toml:"create" doc:"Create the stream (over subjects) and the durable when they are missing, and log that it did. Off: a missing stream or durable stops the task."`

	Start         string             `toml:"start" enum:"all,new" doc:"Where a durable Sluice creates begins: all (the first message the stream holds) or new (messages published from then on)."`
	AckWait       component.Duration `toml:"ack_wait" doc:"For a durable Sluice creates: how long the server waits for a message's acknowledgement before it delivers the message again (to this or another process). Sluice tells the server it is still working on messages it holds longer than a third of it, so only a crashed or cut-off process gets its messages redelivered."`
	MaxAckPending int                `toml:"max_ack_pending" min:"1" max:"1000000" doc:"For a durable Sluice creates: most messages handed out and not yet acknowledged, over every process on the durable. The server stops delivering at this limit: it is the backpressure, and it bounds the messages one process buffers."`
	MaxBatch      int                `toml:"max_batch" min:"1" max:"100000" doc:"Most messages asked for in one pull request (at most the durable's max_ack_pending) and handed to the engine as one batch."`

	ValueFormat string `toml:"value_format" enum:"json,text,base64" doc:"How data.value holds the message body: json (parsed, so patterns reach data.value.*; a body that is not JSON stays a string), text (a string; invalid UTF-8 becomes U+FFFD), base64 (a Base64 string, for binary bodies)."`
}

// Defaults.
const (
	defaultAckWait       = 30 * time.Second
	defaultMaxAckPending = 1000
	defaultMaxBatch      = 500
)

func newConfig() any {
	c := natsconf.DefaultConn()
	return &Config{
		ConnectTimeout: c.ConnectTimeout,
		ReconnectWait:  c.ReconnectWait,
		Create:         true,
		Start:          "all",
		AckWait:        component.Duration(defaultAckWait),
		MaxAckPending:  defaultMaxAckPending,
		MaxBatch:       defaultMaxBatch,
		ValueFormat:    eventenc.FormatJSON,
	}
}

func (c *Config) conn() *natsconf.Conn {
	return &natsconf.Conn{
		URL: c.URL, User: c.User, Password: c.Password, Token: c.Token, CredentialsFile: c.CredentialsFile,
		NKeyFile: c.NKeyFile, TLS: c.TLS, ConnectTimeout: c.ConnectTimeout, ReconnectWait: c.ReconnectWait,
	}
}

// Validate checks what the tags cannot. It does no I/O.
func (c *Config) Validate(p *component.Problems) {
	c.conn().Validate(p)
	if msg := natsconf.NameProblem(c.Stream); c.Stream != "" && msg != "" {
		p.Addf([]string{"stream"}, "%s", msg)
	}
	if msg := natsconf.NameProblem(c.Durable); c.Durable != "" && msg != "" {
		p.Addf([]string{"durable"}, "%s", msg)
	}
	for i, s := range c.Subjects {
		if msg := natsconf.SubjectProblem(s, true); msg != "" {
			p.Addf([]string{"subjects", component.Index(i)}, "%s", msg)
		}
	}
	if c.Filter != "" {
		if msg := natsconf.SubjectProblem(c.Filter, true); msg != "" {
			p.Addf([]string{"filter_subject"}, "%s", msg)
		}
	}
	if c.AckWait.D() < time.Second {
		p.Addf([]string{"ack_wait"}, "must be at least 1s")
	}
}
