package redisconf

import (
	"strings"
	"testing"
)

// TestParseURL covers the URL forms the connectors accept (what go-redis
// accepted, without its client options) and those they refuse.
func TestParseURL(t *testing.T) {
	for in, want := range map[string]Target{
		"redis://127.0.0.1:6379/0":       {Network: "tcp", Addr: "127.0.0.1:6379"},
		"redis://h/3":                    {Network: "tcp", Addr: "h:6379", DB: 3},
		"redis://":                       {Network: "tcp", Addr: "localhost:6379"},
		"rediss://u:p%40ss@h:6380":       {Network: "tcp", Addr: "h:6380", Username: "u", Password: "p@ss", TLS: true},
		"redis://:secret@[::1]:7000/1":   {Network: "tcp", Addr: "[::1]:7000", DB: 1, Password: "secret"},
		"redis://h?db=2":                 {Network: "tcp", Addr: "h:6379", DB: 2},
		"unix:///run/redis.sock?db=4":    {Network: "unix", Addr: "/run/redis.sock", DB: 4},
		"unix://user:pw@/run/redis.sock": {Network: "unix", Addr: "/run/redis.sock", Username: "user", Password: "pw"},
	} {
		got, err := ParseURL(in)
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"http://h":               "invalid scheme",
		"redis://h/x":            "invalid database number",
		"redis://h/1/2":          "invalid path",
		"redis://h?pool_size=10": `unknown URL option "pool_size"`,
		"redis://h?db=x":         "invalid database number",
		"unix://":                "no socket path",
	} {
		if _, err := ParseURL(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error with %q", in, err, want)
		}
	}
}
