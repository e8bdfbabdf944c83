//go:build !wasip1

package sdk

import (
	"testing"
	"time"
)

// ttlHost records the TTL of the last put or add.
type ttlHost struct {
	NativeHost
	ttl time.Duration
}

func (h *ttlHost) KVPut(key, val []byte, ttl time.Duration) int { h.ttl = ttl; return 0 }
func (h *ttlHost) KVAdd(key, val []byte, ttl time.Duration) int { h.ttl = ttl; return 0 }

// State.Put and State.Add send whole milliseconds; a positive TTL under
// 1ms went as 0, which the host takes as "never expires". It goes as 1ms.
func TestStateTTLMilliseconds(t *testing.T) {
	h := &ttlHost{}
	SetNativeHost(h)
	defer SetNativeHost(nil)
	for _, c := range []struct{ ttl, want time.Duration }{
		{time.Nanosecond, time.Millisecond},
		{500 * time.Microsecond, time.Millisecond},
		{999 * time.Microsecond, time.Millisecond},
		{time.Millisecond, time.Millisecond},
		{1500 * time.Microsecond, time.Millisecond},
		{time.Hour, time.Hour},
		{0, 0},
		{-time.Second, 0},
	} {
		h.ttl = -1
		if err := State.Put([]byte("k"), []byte("v"), c.ttl); err != nil {
			t.Fatal(err)
		}
		if h.ttl != c.want {
			t.Errorf("Put with ttl %v reached the host as %v, want %v", c.ttl, h.ttl, c.want)
		}
		h.ttl = -1
		if _, err := State.Add([]byte("k"), []byte("v"), c.ttl); err != nil {
			t.Fatal(err)
		}
		if h.ttl != c.want {
			t.Errorf("Add with ttl %v reached the host as %v, want %v", c.ttl, h.ttl, c.want)
		}
	}
}
