// Package redis is the `redis` sink: it appends each record to a stream
// (XADD, optionally trimmed), or stores it under a key rendered from the
// event, as a hash of the payload's top-level members (HSET) or as a
// string (SET), optionally with a TTL. A Write is one pipeline: one round
// trip for the batch. docs/connectors/redis.md is the user reference.
package redis

import (
	"slices"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/redisconf"
	"github.com/sluicehq/sluice/builtins/internal/sinktpl"
	"github.com/sluicehq/sluice/builtins/internal/template"
	"github.com/sluicehq/sluice/builtins/internal/tlsconf"
	"github.com/sluicehq/sluice/runtime/component"
)

// Modes.
const (
	ModeStream = "stream"
	ModeHash   = "hash"
	ModeSet    = "set"
)

// Config is the [sink] table of `type = "redis"`.
type Config struct {
	URL         string             `toml:"url" required:"true" doc:"Server URL, \"redis://[user:password@]host:6379/0\" (the path is the database number; \"rediss://\" for TLS)."`
	Username    string             `toml:"username" doc:"ACL user name (overrides the one in url)."`
	Password    component.Secret   `toml:"password" doc:"Password (overrides the one in url); use \"${env:NAME}\" to keep it out of the file."`
	TLS         *tlsconf.Client    `toml:"tls" doc:"TLS settings; the table's presence turns TLS on."`
	DialTimeout component.Duration `toml:"dial_timeout" doc:"Longest time to open one connection."`

	Mode      string             `toml:"mode" enum:"stream,hash,set" doc:"stream: append each record to a stream (XADD). hash: store the payload's top-level members as the fields of the hash at key (HSET; strings as they are, other values as JSON). set: store the payload as the string at key (SET). In hash and set modes a payload of JSON null deletes the key."`
	Stream    string             `toml:"stream" doc:"mode = \"stream\": the stream key, a name or a template such as \"orders:${region}\" over the original source event."`
	Key       string             `toml:"key" doc:"mode = \"hash\" or \"set\": the key, a template such as \"user:${id}\" over the original source event."`
	Field     string             `toml:"field" doc:"mode = \"stream\": the entry field that holds the payload."`
	Fields    map[string]string  `toml:"fields" doc:"mode = \"stream\": more entry fields, name = template over the original source event (e.g. id = \"${id}\")."`
	MaxLen    int64              `toml:"max_len" min:"0" doc:"mode = \"stream\": trim the stream to about this many entries on each append (XADD MAXLEN ~). 0: never trim."`
	TTL       component.Duration `toml:"ttl" doc:"mode = \"hash\" or \"set\": expire the key this long after its last write. \"0s\": never."`
	Variables map[string]string  `toml:"variables" doc:"Template variables: name = JSONPath into the original source event (\"$.data.value.id\") or a fixed text. Shared by stream, key and fields."`
}

// DefaultField is the stream entry field that holds the payload.
const DefaultField = "payload"

func newConfig() any {
	return &Config{
		DialTimeout: component.Duration(5 * time.Second),
		Mode:        ModeStream,
		Field:       DefaultField,
	}
}

func (c *Config) conn() *redisconf.Conn {
	return &redisconf.Conn{URL: c.URL, Username: c.Username, Password: c.Password, TLS: c.TLS, DialTimeout: c.DialTimeout.D()}
}

// Validate checks what the tags cannot: the keys of the mode are set and
// the others are not, templates compile.
func (c *Config) Validate(p *component.Problems) {
	c.conn().Validate(p)
	_, _ = c.compile(p, 0)
	if c.Mode == ModeStream {
		if c.Stream == "" {
			p.KeyErrorf(nil, "mode = \"stream\" needs the stream key (the stream to append to)")
		}
		for k, set := range map[string]bool{"key": c.Key != "", "ttl": c.TTL != 0} {
			if set {
				p.KeyErrorf([]string{k}, "%s is used only with mode = \"hash\" or \"set\"", k)
			}
		}
		if c.Field == "" {
			p.Addf([]string{"field"}, "must not be empty")
		}
		return
	}
	if c.Key == "" {
		p.KeyErrorf(nil, "mode = %q needs the key key (a template such as \"user:${id}\")", c.Mode)
	}
	for k, set := range map[string]bool{"stream": c.Stream != "", "fields": len(c.Fields) > 0, "max_len": c.MaxLen != 0, "field": c.Field != DefaultField} {
		if set {
			p.KeyErrorf([]string{k}, "%s is used only with mode = \"stream\"", k)
		}
	}
	if d := c.TTL.D(); d != 0 && d < time.Millisecond {
		p.Addf([]string{"ttl"}, "must be at least 1ms, or \"0s\" for none")
	}
}

// templates are the compiled stream or key template and field templates.
type templates struct {
	target *template.Template
	fixed  string // set when the stream or key holds no placeholder
	fields []fieldTemplate
}

type fieldTemplate struct {
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
	key, text := "stream", c.Stream
	if c.Mode != ModeStream {
		key, text = "key", c.Key
	}
	if text != "" {
		if sinktpl.Fixed(text) {
			ts.fixed = text
		}
		ts.target = tc.Compile([]string{key}, text, true)
	}
	names := make([]string, 0, len(c.Fields))
	for n := range c.Fields {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if n == c.Field {
			tc.OK = false
			if p != nil {
				p.KeyErrorf([]string{"fields", n}, "field %q holds the payload (field); name this one otherwise", n)
			}
			continue
		}
		if t := tc.Compile([]string{"fields", n}, c.Fields[n], false); t != nil {
			ts.fields = append(ts.fields, fieldTemplate{name: n, tpl: t})
		}
	}
	return ts, tc.OK
}
