package kafkae2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/kafkadev"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// sluiceBin builds the sluice command once for the package.
func sluiceBin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "sluice-kafka-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "sluice")
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..", "..")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/sluice")
		cmd.Dir = root
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/sluice: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
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

// proc is one running `sluice run`.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// startSluice runs `sluice run` on the task files, logging to a file of the
// test; env adds environment variables.
func startSluice(t *testing.T, name string, env []string, tasks ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, log: filepath.Join(dir, "sluice.log"), done: make(chan struct{})}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--log-format", "json", "--progress", "never", "--shutdown-timeout", "15s", "--state-dir", filepath.Join(dir, "state")}, tasks...)
	p.cmd = exec.Command(sluiceBin(t), args...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), env...)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.dumpLog(t)
		}
	})
	return p
}

// dumpLog shows the end of the process's log in the test output.
func (p *proc) dumpLog(t *testing.T) {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	t.Logf("last log lines of %s:\n%s", p.name, strings.Join(lines, "\n"))
}

// kill ends the process with SIGKILL, as a crash would.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM once the task runs (before, the signal handler may
// not be installed yet) and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	waitFor(t, p.name+" to run its task", 20*time.Second, func() bool { return p.exited() || p.logHas(`"task running"`) })
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s did not stop within 30s of SIGTERM", p.name)
	}
	if p.err != nil {
		p.dumpLog(t)
		t.Fatalf("%s exited with %v after SIGTERM, want 0", p.name, p.err)
	}
}

// exited reports whether the process ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// alive fails the test if the process ended.
func (p *proc) alive(t *testing.T) bool {
	t.Helper()
	if p.exited() {
		t.Fatalf("%s exited: %v", p.name, p.err)
	}
	return true
}

// logHas reports whether the process logged a line holding s.
func (p *proc) logHas(s string) bool {
	data, _ := os.ReadFile(p.log)
	return bytes.Contains(data, []byte(s))
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

// order is the value of an input record: seq numbers every record the test
// produced.
func order(seq int) []byte {
	regions := []string{"eu-west", "us-east", "eu-north", "ap-south"}
	return fmt.Appendf(nil, `{"seq":%d,"order_id":"o-%d","region":%q,"amount":%d,"items":%d}`, seq, seq, regions[seq%len(regions)], (seq*37)%250, seq%5)
}

// loadProducer produces records seq from..to-1 to topic at about rate
// records per second, in the background. Wait returns once all are
// acknowledged.
type loadProducer struct {
	done chan struct{}
	sent atomic.Int64
	err  error
}

func produceLoad(t *testing.T, addr, topic string, from, to, rate int) *loadProducer {
	t.Helper()
	lp := &loadProducer{done: make(chan struct{})}
	cl := newClient(t, addr, kgo.ProducerLinger(5*time.Millisecond))
	go func() {
		defer close(lp.done)
		const chunk = 100
		tick := time.Duration(float64(time.Second) * chunk / float64(rate))
		next := time.Now()
		for seq := from; seq < to; seq += chunk {
			var recs []*kgo.Record
			for i := seq; i < min(seq+chunk, to); i++ {
				recs = append(recs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%16), Value: order(i)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err := cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			if err != nil {
				lp.err = err
				return
			}
			lp.sent.Add(int64(len(recs)))
			next = next.Add(tick)
			time.Sleep(time.Until(next))
		}
	}()
	return lp
}

func (lp *loadProducer) wait(t *testing.T) {
	t.Helper()
	<-lp.done
	if lp.err != nil {
		t.Fatalf("producing the input: %v", lp.err)
	}
}

// outRecord is what the e2e tasks write: the input's event id and seq.
type outRecord struct {
	ID  string `json:"id"`
	Seq int    `json:"seq"`
}

// tally reads topic from the start with a fresh consumer and counts how
// many times each seq arrived. It reads until it has seen want distinct
// seqs (or timeout passes), then a little longer for late duplicates.
func tally(t *testing.T, addr, topic string, want int, committed bool, timeout time.Duration) (counts map[int]int, total int) {
	t.Helper()
	opts := []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
	if committed {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	counts = map[int]int{}
	deadline := time.Now().Add(timeout)
	quietUntil := time.Time{}
	for {
		now := time.Now()
		if now.After(deadline) || !quietUntil.IsZero() && now.After(quietUntil) {
			return counts, total
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var o outRecord
			if err := json.Unmarshal(r.Value, &o); err != nil {
				t.Fatalf("output record %s is not the task's template output: %v", r.Value, err)
			}
			counts[o.Seq]++
			total++
		})
		if len(counts) >= want && quietUntil.IsZero() {
			quietUntil = time.Now().Add(500 * time.Millisecond)
		}
	}
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

// committedTotal sums the group's committed offsets.
func committedTotal(t *testing.T, addr, group string) int64 {
	t.Helper()
	cl := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
	cl := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// topicRecords sums the end offsets of topic's partitions.
func topicRecords(t testing.TB, addr, topic string) int64 {
	t.Helper()
	cl := newClient(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
