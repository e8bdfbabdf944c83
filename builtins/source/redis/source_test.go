package redis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/redistest"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func open(t *testing.T, s *Source) *Source {
	t.Helper()
	if err := s.Open(redistest.Ctx(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func read(t *testing.T, s *Source) component.Batch {
	t.Helper()
	b, err := s.Read(redistest.Ctx(t))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return b
}

func TestEventFormat(t *testing.T) {
	fx := newFixture(t)
	id := fx.srv.String(t, "XADD", fx.stream, "1700000000123-5", "payload", `{"a":1}`, "tag", "x", "tag", "y", "n", "42", "text", `q"uote`)
	s := open(t, fx.build(t, fx.srv.URL, "c1", ""))
	b := read(t, s)
	m := b.Messages[0]
	want := fmt.Sprintf(`{"specversion":"1.0","id":"%[1]s-%[2]s","source":"redis://%[3]s/0/%[1]s","type":"sluice.redis.entry","datacontenttype":"application/json; charset=utf-8","subject":"%[1]s","time":"2023-11-14T22:13:20.123Z","data":{"stream":"%[1]s","id":"%[2]s","fields":{"payload":{"a":1},"tag":["x","y"],"n":42,"text":"q\"uote"}}}`,
		fx.stream, id, fx.srv.Addr)
	if string(m.Payload) != want {
		t.Fatalf("event\n got %s\nwant %s", m.Payload, want)
	}
	if m.Pos.Stream != fx.stream || m.Pos.Offset != 1700000000123_000005 || m.Time.UnixMilli() != 1700000000123 || b.Lane != "redis:"+fx.stream {
		t.Fatalf("pos %v time %v lane %q", m.Pos, m.Time, b.Lane)
	}
	b.Ack(nil)
}

func TestValueFormats(t *testing.T) {
	for format, want := range map[string]string{"text": `{"p":"{\"a\":1}"}`, "base64": `{"p":"eyJhIjoxfQ=="}`, "json": `{"p":{"a":1}}`} {
		t.Run(format, func(t *testing.T) {
			fx := newFixture(t)
			fx.srv.Add(t, fx.stream, "p", [][]byte{[]byte(`{"a":1}`)})
			s := open(t, fx.build(t, fx.srv.URL, "c1", fmt.Sprintf("value_format = %q\n", format)))
			b := read(t, s)
			ev := decode(t, b.Messages[0])
			if got := fmt.Sprintf(`{"p":%s}`, ev.Data.Fields["p"]); got != want {
				t.Fatalf("fields %s, want %s", got, want)
			}
			b.Ack(nil)
		})
	}
}

// TestClaimsDeadConsumersEntries leaves entries pending with a consumer
// that never comes back: the source claims them once they are idle for
// claim_idle, delivers them and acknowledges them.
func TestClaimsDeadConsumersEntries(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Must(t, "XGROUP", "CREATE", fx.stream, fx.group, "0", "MKSTREAM")
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	// The dead consumer takes every entry and never acknowledges.
	fx.srv.Must(t, "XREADGROUP", "GROUP", fx.group, "dead", "COUNT", 10, "STREAMS", fx.stream, ">")
	s := open(t, fx.build(t, fx.srv.URL, "alive", "claim_idle = \"300ms\"\nclaim_interval = \"50ms\"\n"))
	got := 0
	for got < 3 {
		b := read(t, s)
		got += len(b.Messages)
		b.Ack(nil)
	}
	testkit.WaitFor(t, "the claimed entries acknowledged", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}

// TestHeldEntriesAreNotClaimed holds a batch unacknowledged for several
// claim_idle periods, as a sink being retried would: the source keeps its
// entries' idle time low, so another consumer never claims them. Also when
// the next batch waits to be read (the engine holds all it may): the fetch
// loop then waits for room, and it stopped marking the held entries there,
// so another consumer claimed them and both delivered them (review).
func TestHeldEntriesAreNotClaimed(t *testing.T) {
	for _, c := range []struct {
		name    string
		entries [][]byte
		cfg     string
	}{
		{"one batch", [][]byte{[]byte("1")}, ""},
		{"the next batch waiting", [][]byte{[]byte("1"), []byte("2")}, "max_batch = 1\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.srv.Add(t, fx.stream, "payload", c.entries)
			// The holder never claims (claim_interval far above claim_idle):
			// it marks what it holds on its own schedule. claim_idle leaves
			// the holder a second to do so, under any load the suite meets.
			const idle = "1500ms"
			a := open(t, fx.build(t, fx.srv.URL, "a", c.cfg+"claim_idle = \""+idle+"\"\nclaim_interval = \"1h\"\n"))
			b := read(t, a)
			other := open(t, fx.build(t, fx.srv.URL, "b", "claim_idle = \""+idle+"\"\nclaim_interval = \"50ms\"\n"))
			start := time.Now()
			// Time is the subject here: wait three claim_idle periods while
			// the other consumer keeps looking for entries to claim.
			ctx, cancel := context.WithTimeout(context.Background(), 0)
			defer cancel()
			testkit.WaitFor(t, "three claim_idle periods to pass", func() bool {
				if ob, err := other.Read(ctx); err == nil {
					t.Fatalf("the other consumer claimed %d entries that consumer a held (after %v)", len(ob.Messages), time.Since(start).Round(100*time.Millisecond))
				}
				return time.Since(start) > 4500*time.Millisecond
			})
			b.Ack(nil)
			if len(c.entries) == 1 {
				testkit.WaitFor(t, "the entry acknowledged", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
			}
		})
	}
}

// TestDeletedPendingEntriesAreDropped deletes an entry while it is pending:
// the restarted consumer acknowledges it instead of delivering nothing.
func TestDeletedPendingEntriesAreDropped(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2")})
	s := open(t, fx.build(t, fx.srv.URL, "c1", ""))
	b := read(t, s)
	if len(b.Messages) != 2 {
		t.Fatalf("%d messages", len(b.Messages))
	}
	id := decode(t, b.Messages[0]).Data.ID
	if err := s.Close(context.Background()); err != nil { // never acknowledged
		t.Fatal(err)
	}
	fx.srv.Must(t, "XDEL", fx.stream, id)
	s = open(t, fx.build(t, fx.srv.URL, "c1", ""))
	b = read(t, s)
	if len(b.Messages) != 1 || decode(t, b.Messages[0]).Data.ID == id {
		t.Fatalf("read %d entries again", len(b.Messages))
	}
	b.Ack(nil)
	testkit.WaitFor(t, "nothing pending", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}

// TestNackIsReadAgain nacks a batch: once nothing else is outstanding the
// same process reads its entries again.
func TestNackIsReadAgain(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2")})
	s := open(t, fx.build(t, fx.srv.URL, "c1", "max_batch = 1\n"))
	first := read(t, s)
	second := read(t, s)
	// Decoded before the acknowledgement: the source reuses a settled
	// batch's memory.
	firstID, firstPayload := decode(t, first.Messages[0]).Data.ID, string(first.Messages[0].Payload)
	first.Ack(fmt.Errorf("nack"))
	second.Ack(nil)
	again := read(t, s)
	if decode(t, again.Messages[0]).Data.ID != firstID {
		t.Fatalf("read %s again, want %s", again.Messages[0].Payload, firstPayload)
	}
	again.Ack(nil)
	testkit.WaitFor(t, "nothing pending", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}

func TestStartFailed(t *testing.T) {
	fx := newFixture(t)
	str := fx.srv.Key(t, "string")
	fx.srv.Must(t, "SET", str, "x")
	fx.srv.Add(t, fx.stream, "p", [][]byte{[]byte("1")})
	auth := redistest.AuthServer(t, "right")
	cases := map[string]struct{ cfg, want string }{
		"missing stream": {fmt.Sprintf("url = %q\nstream = %q\ncreate = false\n", fx.srv.URL, fx.srv.Key(t, "none")),
			"does not exist on 127.0.0.1:6379: create it, fix stream, or set create = true"},
		"missing group": {fmt.Sprintf("url = %q\nstream = %q\ngroup = \"nope\"\ncreate = false\n", fx.srv.URL, fx.stream),
			`consumer group "nope" of stream`},
		"not a stream":    {fmt.Sprintf("url = %q\nstream = %q\n", fx.srv.URL, str), "is not a stream: fix stream"},
		"bad password":    {fmt.Sprintf("url = %q\npassword = \"wrong\"\nstream = \"s\"\n", auth.URL), "the server refused the credentials; check the password"},
		"no password":     {fmt.Sprintf("url = %q\nstream = \"s\"\n", auth.URL), "the server refused the credentials"},
		"password in url": {fmt.Sprintf("url = \"redis://:wrong@%s/0\"\nstream = \"s\"\n", auth.Addr), "the server refused the credentials"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s := componenttest.Build(t, Register, component.KindSource, "redis", c.cfg, componenttest.Env(t, 0, "source")).(*Source)
			err := s.Open(redistest.Ctx(t))
			defer s.Close(context.Background())
			if err == nil || component.ClassOf(err) != component.ClassTaskPermanent || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v (class %s)\nwant task-permanent: %s", err, component.ClassOf(err), c.want)
			}
			if strings.Contains(err.Error(), "wrong") {
				t.Fatalf("the error shows the password: %v", err)
			}
		})
	}
}

func TestUnreachableIsRetryable(t *testing.T) {
	proxy := testkit.NewProxy(t, "127.0.0.1:1")
	proxy.Cut()
	s := componenttest.Build(t, Register, component.KindSource, "redis", fmt.Sprintf("url = \"redis://%s/0\"\nstream = \"s\"\ndial_timeout = \"1s\"\n", proxy.Addr()), componenttest.Env(t, 0, "source")).(*Source)
	err := s.Open(redistest.Ctx(t))
	if err == nil || component.ClassOf(err) != component.ClassRetryable {
		t.Fatalf("Open: %v, want retryable", err)
	}
	_ = s.Close(context.Background())
}

func TestCreatesGroupFromStart(t *testing.T) {
	for start, want := range map[string]int{"all": 3, "new": 1} {
		t.Run(start, func(t *testing.T) {
			fx := newFixture(t)
			fx.srv.Add(t, fx.stream, "p", [][]byte{[]byte("old1"), []byte("old2")})
			s := open(t, fx.build(t, fx.srv.URL, "c1", fmt.Sprintf("start = %q\n", start)))
			fx.srv.Add(t, fx.stream, "p", [][]byte{[]byte("new")})
			got := 0
			for got < want {
				b := read(t, s)
				got += len(b.Messages)
				b.Ack(nil)
			}
			if got != want {
				t.Fatalf("read %d entries", got)
			}
		})
	}
}

// TestLateSecondAckIsIgnored acknowledges a batch twice, the second time
// (a nack) after the source reused the batch's memory for the next batch:
// the second call must not settle the next batch, whose entry is then
// acknowledged once.
func TestLateSecondAckIsIgnored(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	s := open(t, fx.build(t, fx.srv.URL, "c1", "max_batch = 1\n"))
	first := read(t, s)
	first.Ack(nil)
	second := read(t, s)
	first.Ack(fmt.Errorf("a late second call"))
	second.Ack(nil)
	third := read(t, s)
	third.Ack(nil)
	testkit.WaitFor(t, "nothing pending", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}

// TestTLS reads a stream over mutual TLS from a redis-server that accepts
// nothing else, and acknowledges on the same connections.
func TestTLS(t *testing.T) {
	srv, files := redistest.TLSServer(t, true)
	fx := &fixture{srv: srv, stream: "src", group: "g"}
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte(`{"n":1}`), []byte(`{"n":2}`)})
	s := open(t, fx.build(t, srv.URL, "c1", fmt.Sprintf("[tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n", files.CA, files.ClientCert, files.ClientKey)))
	var got []string
	for len(got) < 2 {
		b := read(t, s)
		for _, m := range b.Messages {
			got = append(got, string(decode(t, m).Data.Fields["payload"]))
		}
		b.Ack(nil)
	}
	if strings.Join(got, " ") != `{"n":1} {"n":2}` {
		t.Fatalf("read %q", got)
	}
	testkit.WaitFor(t, "both entries acknowledged over TLS", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}

// TestOrphanedEntriesAreReadAgain: a blocking XREADGROUP of this consumer
// left at the server by an earlier connection (a run closed while the
// server had not noticed yet: the next run opens, reads its pending list,
// then the stale read is served) takes the first entry added into this
// consumer's pending list, where no batch holds it. The source reads it
// again, without waiting for claim_idle (here never: "0s").
func TestOrphanedEntriesAreReadAgain(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Must(t, "XGROUP", "CREATE", fx.stream, fx.group, "$", "MKSTREAM")
	s := open(t, fx.build(t, fx.srv.URL, "c1", "claim_idle = \"0s\"\n"))
	// The stale read: consumer c1, on a connection of its own, blocked
	// before the entries are added (it was first to block: it is served
	// first).
	stale := fx.srv.Conn()
	defer stale.Close()
	if _, err := stale.Do("CLIENT", "SETNAME", "stale-c1"); err != nil {
		t.Fatal(err)
	}
	if err := stale.Send("XREADGROUP", "GROUP", fx.group, "c1", "COUNT", 1, "BLOCK", 0, "STREAMS", fx.stream, ">"); err != nil {
		t.Fatal(err)
	}
	if err := stale.Flush(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the stale read to block at the server", func() bool {
		for _, line := range strings.Split(fx.srv.String(t, "CLIENT", "LIST"), "\n") {
			if strings.Contains(line, " name=stale-c1 ") {
				return strings.Contains(line, " flags=b ")
			}
		}
		return false
	})
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2"), []byte("3")})
	got := map[string]bool{}
	ctx := redistest.Ctx(t)
	for len(got) < 3 {
		b, err := s.Read(ctx)
		if err != nil {
			t.Fatalf("Read: %v (read %v of 1, 2, 3)", err, got)
		}
		for _, m := range b.Messages {
			got[string(decode(t, m).Data.Fields["payload"])] = true
		}
		b.Ack(nil)
	}
	testkit.WaitFor(t, "nothing pending", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}
