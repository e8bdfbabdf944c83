package natsredise2e

import (
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/builtins/internal/natstest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
)

// TestStartFailedMessages runs tasks that cannot start (a missing stream,
// refused credentials) and checks that the process fails with a message
// that says what to change.
func TestStartFailedMessages(t *testing.T) {
	nsrv := natsLocal(t)
	rsrv := redisLocal(t)
	cases := []struct {
		name, task, want string
	}{
		{"nats missing stream", fmt.Sprintf(`name = "t"
[source]
type = "nats"
url = %q
stream = %q
create = false
[sink]
type = "stdout"
`, nsrv.URL, natstest.StreamName(t, "missing")), "does not exist on nats://127.0.0.1:4222: create it, or set create = true and subjects"},
		{"nats bad credentials", fmt.Sprintf(`name = "t"
[source]
type = "nats"
url = %q
user = "sluice"
password = "wrong"
stream = "S"
[sink]
type = "stdout"
`, natstest.AuthServer(t, "sluice", "right").URL), "the server refused the credentials; check user/password"},
		{"redis missing stream", fmt.Sprintf(`name = "t"
[source]
type = "redis"
url = %q
stream = %q
create = false
[sink]
type = "stdout"
`, rsrv.URL, rsrv.Key(t, "missing")), "does not exist on 127.0.0.1:6379: create it, fix stream, or set create = true"},
		{"redis bad credentials", fmt.Sprintf(`name = "t"
[source]
type = "stdin"
[sink]
type = "redis"
url = %q
password = "wrong"
stream = "s"
`, redistest.AuthServer(t, "right").URL), "the server refused the credentials; check the password"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := run(t, "sluice", nil, writeTask(t, c.task))
			if err := p.Err(); err == nil {
				t.Fatal("sluice exited with status 0; want a failed task")
			}
			if !p.LogHas("task failed") || !p.LogHas(c.want) {
				p.DumpLog(t)
				t.Fatalf("the log does not say %q", c.want)
			}
		})
	}
}
