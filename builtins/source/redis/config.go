// Package redis is the `redis` source: it reads a Redis stream in a
// consumer group (XREADGROUP) under a stable consumer name, acknowledges
// entries (XACK) once the engine acknowledged their batch, re-reads its
// own pending entries when it starts, and claims (XAUTOCLAIM) the entries a
// dead consumer of the group left pending. docs/connectors/redis.md is the
// user reference.
package redis

import (
	"time"

	"github.com/sluicehq/sluice/builtins/internal/eventenc"
	"github.com/sluicehq/sluice/builtins/internal/redisconf"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Config is the [source] table of `type = "redis"`.
type Config struct {
	URL         string             `toml:"url" required:"true" doc:"Server URL, \"redis://[user:password@]host:6379/0\" (the path is the database number; \"rediss://\" for TLS)."`
	Username    string             `toml:"username" doc:"ACL user name (overrides the one in url)."`
	Password    component.Secret   `toml:"password" doc:"Password (overrides the one in url); use \"${env:NAME}\" to keep it out of the file."`
	TLS         *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	DialTimeout component.Duration `toml:"dial_timeout" doc:"Longest time to open one connection."`

	Stream   string `toml:"stream" required:"true" doc:"The stream key to read."`
	Group    string `toml:"group" doc:"Consumer group. Processes in one group share the stream's entries. Default: \"sluice-<task name>\"."`
	Consumer string `toml:"consumer" doc:"This process's consumer name in the group. It must be stable across restarts (a restarted process first reads again the entries it had not acknowledged) and unique per process. Default: the host name."`
	Create   bool   `toml:"create" doc:"Create the group (and the stream, empty) when missing, and log that it did. Off: a missing stream or group stops the task."`
	Start    string `toml:"start" enum:"all,new" doc:"Where a group Sluice creates begins: all (the first entry the stream holds) or new (entries added from then on)."`

	MaxBatch   int                `toml:"max_batch" min:"1" max:"100000" doc:"Most entries read by one XREADGROUP (its COUNT), handed to the engine as one batch."`
	Block      component.Duration `toml:"block" doc:"How long one XREADGROUP waits for new entries (its BLOCK) before asking again."`
	ClaimIdle  component.Duration `toml:"claim_idle" doc:"Entries another consumer of the group has held unacknowledged for longer than this are claimed (XAUTOCLAIM) and read here: that consumer is taken for dead. Keep it above the longest time a live process may take to deliver a batch (retries included), or both deliver the entry. \"0s\": never claim."`
	ClaimEvery component.Duration `toml:"claim_interval" doc:"How often to look for entries to claim."`

	ValueFormat string `toml:"value_format" enum:"json,text,base64" doc:"How data.fields holds each field value: json (a value that is valid JSON is embedded as such, so patterns reach data.fields.payload.*; others stay strings), text (every value a string; invalid UTF-8 becomes U+FFFD), base64 (Base64 strings, for binary values)."`
}

// Defaults.
const (
	defaultMaxBatch   = 500
	defaultBlock      = 2 * time.Second
	defaultClaimIdle  = time.Minute
	defaultClaimEvery = 10 * time.Second
)

func newConfig() any {
	return &Config{
		DialTimeout: component.Duration(5 * time.Second),
		Create:      true,
		Start:       "all",
		MaxBatch:    defaultMaxBatch,
		Block:       component.Duration(defaultBlock),
		ClaimIdle:   component.Duration(defaultClaimIdle),
		ClaimEvery:  component.Duration(defaultClaimEvery),
		ValueFormat: eventenc.FormatJSON,
	}
}

func (c *Config) conn() *redisconf.Conn {
	return &redisconf.Conn{URL: c.URL, Username: c.Username, Password: c.Password, TLS: c.TLS, DialTimeout: c.DialTimeout.D()}
}

// Validate checks what the tags cannot. It does no I/O.
func (c *Config) Validate(p *component.Problems) {
	c.conn().Validate(p)
	if c.Block.D() < 10*time.Millisecond || c.Block.D() > time.Minute {
		p.Addf([]string{"block"}, "must be between 10ms and 1m")
	}
	if c.ClaimIdle.D() != 0 && c.ClaimIdle.D() < 100*time.Millisecond {
		p.Addf([]string{"claim_idle"}, "must be at least 100ms, or \"0s\" to never claim")
	}
	if c.ClaimEvery.D() < 10*time.Millisecond {
		p.Addf([]string{"claim_interval"}, "must be at least 10ms")
	}
}
