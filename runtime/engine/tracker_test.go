package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

func TestTrackerAcksInOrderPerLane(t *testing.T) {
	var mu sync.Mutex
	acked := map[string][]int{}
	var released atomic.Int64
	tr := newTracker(func() { released.Add(1) })
	type job struct {
		lane string
		n    int
		p    *pending
	}
	var jobs []job
	for i := 0; i < 2000; i++ {
		lane := fmt.Sprintf("lane-%d", i%7)
		n := i
		parts := 1 + i%3
		p := tr.add(lane, func(err error) {
			if err != nil {
				t.Errorf("unexpected nack %v", err)
			}
			mu.Lock()
			acked[lane] = append(acked[lane], n)
			mu.Unlock()
		}, parts)
		for range parts {
			jobs = append(jobs, job{lane, n, p})
		}
	}
	rand.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	var wg sync.WaitGroup
	ch := make(chan job)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				tr.finish(j.lane, j.p, nil)
			}
		}()
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	if released.Load() != 2000 || tr.outstanding() != 0 || len(tr.lanes) != 0 {
		t.Fatalf("released %d outstanding %d lanes %d", released.Load(), tr.outstanding(), len(tr.lanes))
	}
	for lane, ns := range acked {
		for i := 1; i < len(ns); i++ {
			if ns[i] < ns[i-1] {
				t.Fatalf("lane %s acked out of order: %v", lane, ns)
			}
		}
	}
}

func TestTrackerNackStopsTheLanePrefix(t *testing.T) {
	tr := newTracker(nil)
	var got []error
	a := tr.add("l", func(err error) { got = append(got, err) }, 1)
	b := tr.add("l", func(err error) { got = append(got, err) }, 1)
	c := tr.add("l", func(err error) { got = append(got, err) }, 1)
	other := tr.add("m", func(err error) {
		if err != nil {
			t.Errorf("other lane nacked: %v", err)
		}
	}, 1)
	tr.finish("l", c, nil)
	if len(got) != 0 {
		t.Fatal("acked before its predecessors")
	}
	tr.finish("l", b, errors.New("sink down"))
	tr.finish("l", a, nil)
	tr.finish("m", other, nil)
	if len(got) != 3 || got[0] != nil || got[1] == nil || !errors.Is(got[2], errEarlierFailed) {
		t.Fatalf("got %v", got)
	}
}

func TestFNV32aMatchesHashFNV(t *testing.T) {
	for _, s := range []string{"", "a", "orders/3", "a much longer lane name with spaces"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		if fnv32a(s) != h.Sum32() || fnv32a([]byte(s)) != h.Sum32() {
			t.Fatalf("fnv32a(%q) = %d, hash/fnv says %d", s, fnv32a(s), h.Sum32())
		}
	}
}
