package redis

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestRewindReadsAgainInStreamOrder: a task blocks (its batch is given back)
// while the fetch loop already holds the next batch of newer entries; once
// the task is resumed (Rewind), the entries come again in stream order, the
// given-back ones first. The prefetched batch was handed out first, so newer
// entries reached the sink before older ones (a hash sink then kept the older
// state of a key).
func TestRewindReadsAgainInStreamOrder(t *testing.T) {
	fx := newFixture(t)
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("1"), []byte("2")})
	s := open(t, fx.build(t, fx.srv.URL, "c1", "max_batch = 2\n"))
	first := read(t, s)
	fx.srv.Add(t, fx.stream, "payload", [][]byte{[]byte("3"), []byte("4")})
	testkit.WaitFor(t, "the next batch fetched", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.ready) > 0
	})
	first.Ack(errors.New("task blocked"))
	if err := s.Rewind(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 4 {
		b := read(t, s)
		for _, m := range b.Messages {
			got = append(got, string(decode(t, m).Data.Fields["payload"]))
		}
		b.Ack(nil)
	}
	if fmt.Sprint(got) != "[1 2 3 4]" {
		t.Fatalf("read %v after the rewind, want [1 2 3 4]", got)
	}
	testkit.WaitFor(t, "nothing pending", func() bool { return fx.srv.Pending(t, fx.stream, fx.group) == 0 })
}
