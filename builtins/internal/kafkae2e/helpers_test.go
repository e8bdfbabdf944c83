package kafkae2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testkit.Cleanup()
	os.Exit(code)
}

// startCluster starts a local Kafka cluster on a free port with the topics.
func startCluster(t testing.TB, partitions int, topics ...string) *kafkadev.Cluster {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", partitions, topics...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	return c
}

// startSluice runs `sluice run` on the task files with JSON logs and a
// state folder of its own; env adds environment variables.
func startSluice(t *testing.T, name string, env []string, tasks ...string) *testkit.Proc {
	t.Helper()
	args := append([]string{"run", "--log-format", "json", "--progress", "never", "--shutdown-timeout", "15s", "--state-dir", filepath.Join(t.TempDir(), "state")}, tasks...)
	return testkit.StartSluice(t, testkit.ProcOptions{Name: name, Env: env}, args...)
}

// alive fails the test if the process ended.
func alive(t *testing.T, p *testkit.Proc) bool {
	t.Helper()
	if p.Exited() {
		t.Fatalf("%s exited: %v", p.Name, p.Err())
	}
	return true
}

func writeTask(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "task.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// shortClient is a client for one question, closed by the caller: the
// helpers polled by WaitFor would otherwise keep hundreds open.
func shortClient(t testing.TB, addr string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// order is the value of an input record: seq numbers every record the test
// produced.
func order(seq int) []byte {
	regions := []string{"eu-west", "us-east", "eu-north", "ap-south"}
	return fmt.Appendf(nil, `{"seq":%d,"order_id":"o-%d","region":%q,"amount":%d,"items":%d}`, seq, seq, regions[seq%len(regions)], (seq*37)%250, seq%5)
}

// loadProducer produces numbered records to a topic at about a rate per
// second, in the background.
type loadProducer struct {
	done   chan struct{}
	finish chan struct{}
	sent   atomic.Int64
	err    error
}

// produceLoad produces records seq from..to-1; wait returns once all are
// acknowledged.
func produceLoad(t *testing.T, addr, topic string, from, to, rate int) *loadProducer {
	t.Helper()
	return startLoad(t, addr, topic, from, to, rate)
}

// produceUntil produces records seq from, from+1, ... until until is called
// (or max is reached): a test whose load must last until the processes did
// something, however slow the machine, says when it may end, and reads the
// number produced from until.
func produceUntil(t *testing.T, addr, topic string, from, max, rate int) *loadProducer {
	t.Helper()
	return startLoad(t, addr, topic, from, max, rate)
}

func startLoad(t *testing.T, addr, topic string, from, to, rate int) *loadProducer {
	lp := &loadProducer{done: make(chan struct{}), finish: make(chan struct{})}
	cl := newClient(t, addr, kgo.ProducerLinger(5*time.Millisecond))
	go func() {
		defer close(lp.done)
		const chunk = 100
		tick := time.Duration(float64(time.Second) * chunk / float64(rate))
		pace := time.NewTicker(tick) // the load's rate, not synchronisation
		defer pace.Stop()
		for seq := from; seq < to; seq += chunk {
			var recs []*kgo.Record
			for i := seq; i < min(seq+chunk, to); i++ {
				recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%16), Value: order(i)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
			err := cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				lp.err = err
				return
			}
			lp.sent.Add(int64(len(recs)))
			select {
			case <-pace.C:
			case <-lp.finish:
				return
			}
		}
	}()
	t.Cleanup(func() { lp.stop(); <-lp.done })
	return lp
}

func (lp *loadProducer) stop() {
	select {
	case <-lp.finish:
	default:
		close(lp.finish)
	}
}

func (lp *loadProducer) wait(t *testing.T) {
	t.Helper()
	<-lp.done
	if lp.err != nil {
		t.Fatalf("producing the input: %v", lp.err)
	}
}

// until ends an open-ended load and returns the number of records produced.
func (lp *loadProducer) until(t *testing.T) int {
	t.Helper()
	lp.stop()
	lp.wait(t)
	return int(lp.sent.Load())
}

// outRecord is what the e2e tasks write: the input's event id and seq.
type outRecord struct {
	ID  string `json:"id"`
	Seq int    `json:"seq"`
}

// tally reads topic from the start with a fresh consumer and counts how
// many times each seq arrived. It reads until it has seen want distinct
// seqs (or timeout passes), then on to the topic's end as it is then, so
// every duplicate written before that moment is counted.
func tally(t *testing.T, addr, topic string, want int, committed bool, timeout time.Duration) (counts map[int]int, total int) {
	t.Helper()
	counts = map[int]int{}
	readTopic(t, addr, topic, committed, timeout, func(r *kgo.Record) {
		var o outRecord
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatalf("output record %s is not the task's template output: %v", r.Value, err)
		}
		counts[o.Seq]++
		total++
	}, func() bool { return len(counts) >= want })
	return counts, total
}

// readAll returns every record of topic, read from its start to its end.
func readAll(t *testing.T, addr, topic string, committed bool) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	readTopic(t, addr, topic, committed, 30*time.Second, func(r *kgo.Record) { recs = append(recs, r) }, func() bool { return true })
	return recs
}

// endHeader marks the records readTopic appends to learn where a topic
// ends; readers skip them.
const endHeader = "kafkae2e-end"

var endMarks atomic.Int64

// readTopic reads topic from its start and passes each record to each until
// enough reports true (or timeout passes: the caller then reports what is
// missing). It then appends a marker record to every partition and reads on
// until it has seen them all, so duplicates written before that moment are
// counted however slowly they arrive. A read_committed reader sees a marker
// only once every transaction before it has ended.
func readTopic(t *testing.T, addr, topic string, committed bool, timeout time.Duration, each func(*kgo.Record), enough func() bool) {
	t.Helper()
	opts := []kgo.Opt{kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	mark := ""
	pending := map[int32]bool{}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for mark == "" || len(pending) > 0 {
		if mark == "" && (enough() || time.Now().After(deadline)) {
			mark, pending = markEnd(t, addr, topic)
			deadline = time.Now().Add(timeout)
		}
		if mark != "" && time.Now().After(deadline) {
			t.Fatalf("%s: the end markers of partitions %v were not read within %v (a transaction left open? last fetch error: %v)", topic, pending, timeout, lastErr)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		for _, fe := range fs.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				lastErr = fe.Err
			}
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == endHeader {
					if string(h.Value) == mark {
						delete(pending, r.Partition)
					}
					return
				}
			}
			each(r)
		})
	}
}

// markEnd appends a marker record to every partition of topic and returns
// its value and the partitions.
func markEnd(t *testing.T, addr, topic string) (string, map[int32]bool) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err == nil {
		err = topics[topic].Err
	}
	if err != nil {
		t.Fatalf("mark the end of %s: %v", topic, err)
	}
	mark := fmt.Sprint("end-", endMarks.Add(1))
	parts := map[int32]bool{}
	var recs []*kgo.Record
	for _, p := range topics[topic].Partitions {
		parts[p.Partition] = true
		recs = append(recs, &kgo.Record{Topic: topic, Partition: p.Partition, Headers: []kgo.RecordHeader{{Key: endHeader, Value: []byte(mark)}}})
	}
	if len(recs) == 0 {
		t.Fatalf("topic %s has no partitions", topic)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("mark the end of %s: %v", topic, err)
	}
	return mark, parts
}

// checkAll fails unless every seq in [0, n) arrived, and returns the
// number of duplicates.
func checkAll(t *testing.T, counts map[int]int, total, n int) int {
	t.Helper()
	var missing []int
	for i := range n {
		if counts[i] == 0 {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		if len(missing) > 20 {
			missing = missing[:20]
		}
		t.Fatalf("%d of %d input records never reached the output (first: %v)", n-len(counts), n, missing)
	}
	if len(counts) != n {
		t.Fatalf("the output holds %d distinct records, want %d", len(counts), n)
	}
	return total - n
}

// progressBound bounds one step that waits on the cluster (an open, a
// produce, an offset fetch): testkit's wait, which only a hung test reaches.
var progressBound = testkit.Scale(testkit.DefaultWait)

// committedTotal sums the group's committed offsets.
func committedTotal(t *testing.T, addr, group string) int64 {
	t.Helper()
	cl := shortClient(t, addr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	offs, err := kadm.NewClient(cl).FetchOffsets(ctx, group)
	if err != nil {
		return -1
	}
	var n int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil {
			n += o.At
		}
	})
	return n
}

// groupMembers returns how many members the group has.
func groupMembers(t *testing.T, addr, group string) int {
	t.Helper()
	cl := shortClient(t, addr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	dg, err := kadm.NewClient(cl).DescribeGroups(ctx, group)
	if err != nil {
		return -1
	}
	g := dg[group]
	if g.State != "Stable" {
		return -1
	}
	return len(g.Members)
}

// topicRecords sums the end offsets of topic's partitions.
func topicRecords(t testing.TB, addr, topic string) int64 {
	t.Helper()
	cl := shortClient(t, addr)
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), progressBound)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// outWatch consumes the "out" topic in the background from its start and
// counts the records each worker wrote (their "worker" header).
type outWatch struct {
	mu       sync.Mutex
	byWorker map[string]int
	next     map[int32]int64 // per partition: the offset after the last record read
}

func watchOut(t *testing.T, addr string) *outWatch {
	t.Helper()
	w := &outWatch{byWorker: map[string]int{}, next: map[int32]int64{}}
	cl := newClient(t, addr, kgo.ConsumeTopics("out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			w.mu.Lock()
			fs.EachRecord(func(r *kgo.Record) {
				w.next[r.Partition] = r.Offset + 1
				for _, h := range r.Headers {
					if h.Key == "worker" {
						w.byWorker[string(h.Value)]++
					}
				}
			})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return w
}

// wrote returns how many records worker wrote so far.
func (w *outWatch) wrote(worker string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byWorker[worker]
}

// all waits until the watch read every record the topic holds (its end
// offsets; the output of these tests is not transactional) and returns the
// counts per worker.
func (w *outWatch) all(t *testing.T, addr string) map[string]int {
	t.Helper()
	cl := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, "out")
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, "the watch to read the whole output topic", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		caughtUp := true
		ends.Each(func(o kadm.ListedOffset) {
			if o.Offset > 0 && w.next[o.Partition] < o.Offset {
				caughtUp = false
			}
		})
		return caughtUp
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for k, v := range w.byWorker {
		out[k] = v
	}
	return out
}
