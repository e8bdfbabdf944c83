package redisconf

import (
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"

	"github.com/sluicehq/sluice/runtime/component"
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

// TestClassifyServerStates: a reply saying the server cannot take writes
// now (persisting failed, loading, out of memory, a read-only replica, ...)
// is a state of the server: retried, for a sink and a source alike. A reply
// refusing the data fails the sink's record and stops a source.
func TestClassifyServerStates(t *testing.T) {
	for _, reply := range []string{
		"MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.",
		"LOADING Redis is loading the dataset in memory",
		"OOM command not allowed when used memory > 'maxmemory'.",
		"READONLY You can't write against a read only replica.",
		"BUSY Redis is busy running a script.",
		"MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
		"TRYAGAIN Multiple keys request during rehashing of slot",
		"CLUSTERDOWN The cluster is down",
		"NOREPLICAS Not enough good replicas to write.",
		"UNBLOCKED client unblocked via CLIENT UNBLOCK",
		"ERR max number of clients reached",
	} {
		for _, sink := range []bool{true, false} {
			if c := component.ClassOf(Classify(redis.Error(reply), sink)); c != component.ClassRetryable {
				t.Errorf("%q (sink %v): %s, want retryable", reply, sink, c)
			}
		}
	}
	wrong := redis.Error("WRONGTYPE Operation against a key holding the wrong kind of value")
	if c := component.ClassOf(Classify(wrong, true)); c != component.ClassEventPermanent {
		t.Errorf("WRONGTYPE for a sink: %s, want event_permanent", c)
	}
	if c := component.ClassOf(Classify(wrong, false)); c != component.ClassTaskPermanent {
		t.Errorf("WRONGTYPE for a source: %s, want task_permanent", c)
	}
}
