package testkit

import (
	"sync/atomic"
	"testing"
)

func TestEventually(t *testing.T) {
	var n atomic.Int32
	if !Eventually(DefaultWait, func() bool { return n.Add(1) == 5 }) {
		t.Fatal("a condition that comes true was not seen")
	}
	if Eventually(0, func() bool { return false }) {
		t.Fatal("a condition that never holds was reported")
	}
}

//go:noinline
func parkHere(ch chan struct{}) { <-ch }

func TestWaitBlocked(t *testing.T) {
	ch := make(chan struct{})
	done := make(chan struct{})
	go func() { parkHere(ch); close(done) }()
	WaitBlocked(t, "testkit.parkHere")
	close(ch)
	<-done
}
