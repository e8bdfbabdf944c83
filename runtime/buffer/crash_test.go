package buffer

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// The crash test re-runs this test binary as a child that appends and
// drains until it is killed with SIGKILL. These variables tell the child
// where to work.
const (
	crashDirEnv   = "SLUICE_BUFFER_CRASH_DIR"
	crashRoundEnv = "SLUICE_BUFFER_CRASH_ROUND"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
		crashChild(dir, round)
		os.Exit(3) // not reached: the parent kills the child
	}
	os.Exit(m.Run())
}

// recID names record i of batch k of writer w in round r.
type recID struct{ r, w, k, i int }

func (id recID) String() string { return fmt.Sprintf("%d:%d:%d:%d", id.r, id.w, id.k, id.i) }

func parseRecID(s string) (recID, error) {
	var id recID
	_, err := fmt.Sscanf(s, "%d:%d:%d:%d", &id.r, &id.w, &id.k, &id.i)
	return id, err
}

// crashPayload is the content of a record: its id, then filler of a length
// and content that derive from the id, so a torn or mixed record shows.
func crashPayload(id recID) []byte {
	s := id.String()
	h := crc32.ChecksumIEEE([]byte(s))
	n := int(h % 3000)
	if bigBatch(id.w, id.k) {
		n = 64<<10 + int(h%100)
	}
	return append([]byte(s+"|"), bytes.Repeat([]byte{byte('a' + h%26)}, n)...)
}

// bigBatch tells the appends of about 1 MiB: a kill that lands inside the
// write(2) of a large buffer cuts it short (the kernel checks for a fatal
// signal between pages), which is how a kill -9 leaves a torn tail.
func bigBatch(w, k int) bool { return w == 2 && k%4 == 0 }

// crashBatchLen is the number of records in batch k of writer w.
func crashBatchLen(w, k int) int {
	if bigBatch(w, k) {
		return 16
	}
	return 1 + (k*7+w)%20
}

// crashSync tells whether round r runs with fsync; both must survive a
// kill -9, since the page cache outlives the process.
func crashSync(round int) bool { return round%2 == 0 }

// giantRound is the round whose child makes one 64 MiB append, for a kill
// in the middle of a write.
const giantRound = 3

// crashChild appends batches from three writers and drains from one reader,
// reporting on stdout each append that returned ("a R W K N") and each
// commit: "p IDS" before calling Commit and "c" once it returned.
func crashChild(dir string, round int) {
	b, err := Open(Options{Dir: dir, MaxSize: 256 << 20, SegmentSize: 256 << 10, NoSync: !crashSync(round)})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var outMu sync.Mutex
	say := func(line string) {
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.WriteString(line + "\n"); err != nil {
			os.Exit(2)
		}
	}
	writers := 3
	if round == giantRound {
		// One 64 MiB append and nothing else, announced so that the parent
		// can watch the file grow and kill the child while write(2) copies
		// it (the kernel checks for a fatal signal between pages).
		writers = 0
		go func() {
			msgs := make([]message.Message, 64)
			for i := range msgs {
				msgs[i] = message.Message{Payload: make([]byte, 1<<20), Key: []byte(recID{round, 9, 0, i}.String())}
			}
			say("g")
			b.Append(context.Background(), msgs, nil)
			say("G")
		}()
	}
	for w := range writers {
		go func() {
			for k := 0; ; k++ {
				n := crashBatchLen(w, k)
				msgs := make([]message.Message, n)
				for i := range msgs {
					id := recID{round, w, k, i}
					msgs[i] = message.Message{Payload: crashPayload(id), Key: []byte(id.String())}
				}
				if err := b.Append(context.Background(), msgs, nil); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				say(fmt.Sprintf("a %d %d %d %d", round, w, k, n))
			}
		}()
	}
	for {
		batch, err := b.Read(context.Background(), 50)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		ids := make([]string, len(batch.Msgs))
		for i, m := range batch.Msgs {
			ids[i] = string(m.Key)
		}
		say("p " + strings.Join(ids, " "))
		if err := b.Commit(batch.Cursor); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		say("c")
		time.Sleep(time.Millisecond) // let a backlog build up
	}
}

// TestKill9 kills a child process that appends and drains, several times
// over the same directory, and checks after each kill that every append
// that returned is still there unless committed, that nothing committed
// comes back, and that each append is whole.
func TestKill9(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("needs SIGKILL semantics")
	}
	t.Parallel()
	dir := t.TempDir()
	type batchID struct{ r, w, k int }
	acked := map[batchID]int{}    // appends that returned: number of records
	committed := map[recID]bool{} // Commit returned
	maybe := map[recID]bool{}     // Commit called, not known to have returned
	var truncations int
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for round := range rounds {
		cmd := testkit.Command(os.Args[0], "-test.run=^$") // through SLUICE_TEST_EXEC under emulation
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashRoundEnv+"="+strconv.Itoa(round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill after a number of acks that differs per round, so the kill
		// lands at different points of the appends.
		killAt := 200 + 97*round
		var pending []recID
		acks := 0
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		killed, giantDone := false, false
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "a "):
				var id batchID
				var n int
				if _, err := fmt.Sscanf(line, "a %d %d %d %d", &id.r, &id.w, &id.k, &n); err != nil {
					t.Fatalf("child said %q: %v", line, err)
				}
				acked[id] = n
				acks++
			case strings.HasPrefix(line, "p "):
				pending = pending[:0]
				for _, f := range strings.Fields(line[2:]) {
					id, err := parseRecID(f)
					if err != nil {
						t.Fatalf("child said %q: %v", line, err)
					}
					pending = append(pending, id)
				}
			case line == "g":
				// Kill once the 64 MiB write is under way. Building it
				// takes the child a while (seconds under -race on a loaded
				// machine): wait for the write itself, polled finely so the
				// kill lands in the middle of it.
				base, _ := dirBytes(t, dir)
				growing := false
				for deadline := time.Now().Add(testkit.Scale(testkit.DefaultWait)); !growing && time.Now().Before(deadline); {
					if n, _ := dirBytes(t, dir); n > base+8<<20 {
						growing = true
						break
					}
					time.Sleep(50 * time.Microsecond) // a fine poll for the moment to kill, not synchronisation
				}
				if !growing {
					cmd.Process.Kill()
					t.Fatalf("round %d: the child never began writing its 64 MiB append", round)
				}
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			case line == "G":
				giantDone = true
			case line == "c":
				for _, id := range pending {
					committed[id] = true
				}
				pending = pending[:0]
			default:
				t.Fatalf("child said %q", line)
			}
			if acks >= killAt && !killed && round != giantRound {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				killed = true
			}
		}
		err = cmd.Wait()
		if !killed {
			t.Fatalf("child ended by itself (%v): %s", err, stderr.Bytes())
		}
		for _, id := range pending {
			maybe[id] = true
		}

		b := openT(t, Options{Dir: dir, MaxSize: 256 << 20, SegmentSize: 256 << 10})
		r := b.Recovery()
		if r.TruncatedBytes > 0 {
			truncations++
		}
		if round == giantRound {
			if giantDone {
				t.Logf("round %d: the 64 MiB append completed before the kill; no torn tail to check", round)
			} else if r.TruncatedBytes == 0 {
				t.Errorf("round %d: killed in the middle of a 64 MiB append, but recovery cut nothing: %+v", round, r)
			}
		}
		t.Logf("round %d (fsync %v): %d acked appends so far; recovery %+v", round, crashSync(round), len(acked), r)
		got := readN(t, b, int(b.Stats().Unread), 500, false)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}

		present := map[recID]bool{}
		next := map[batchID]int{} // next record expected in a batch
		lastK := map[[2]int]int{} // last batch seen per round and writer
		for j, m := range got {
			id, err := parseRecID(string(m.Key))
			if id.w == 9 {
				t.Fatalf("record %d is from the 64 MiB append the kill interrupted", j)
			}
			if err != nil || !bytes.Equal(m.Payload, crashPayload(id)) {
				t.Fatalf("record %d: key %q, payload of %d bytes does not match its id", j, m.Key, len(m.Payload))
			}
			if committed[id] {
				t.Fatalf("record %v was committed before the kill but is read again", id)
			}
			present[id] = true
			bid := batchID{id.r, id.w, id.k}
			if want, seen := next[bid]; seen && id.i != want || !seen && id.i != 0 && !committed[recID{id.r, id.w, id.k, id.i - 1}] && !maybe[recID{id.r, id.w, id.k, id.i - 1}] {
				t.Fatalf("record %v out of place: appends must stay whole and contiguous", id)
			}
			next[bid] = id.i + 1
			wk := [2]int{id.r, id.w}
			if k, ok := lastK[wk]; ok && id.k < k {
				t.Fatalf("record %v after batch %d of the same writer", id, k)
			}
			lastK[wk] = id.k
		}
		// The last append of every writer is whole (recovery cut partial ones).
		for bid, n := range next {
			if want := crashBatchLen(bid.w, bid.k); n != want {
				t.Fatalf("batch %v has %d of its %d records", bid, n, want)
			}
		}
		missing := 0
		for bid, n := range acked {
			for i := range n {
				id := recID{bid.r, bid.w, bid.k, i}
				if !present[id] && !committed[id] && !maybe[id] {
					missing++
					if missing < 5 {
						t.Errorf("acknowledged record %v is neither committed nor in the buffer", id)
					}
				}
			}
		}
		if missing > 0 {
			t.Fatalf("%d acknowledged records lost", missing)
		}
		// A commit in flight at the kill either made it (the records are
		// gone) or not (they are back and will be committed again).
		for id := range maybe {
			if !present[id] {
				committed[id] = true
			}
		}
		clear(maybe)
	}
	t.Logf("%d of %d kills left a torn tail to cut", truncations, rounds)
}
