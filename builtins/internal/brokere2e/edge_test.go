package brokere2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/builtins/internal/mqtttest"
	"github.com/sluicehq/sluice/builtins/kafkadev"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// reading is the payload sensor d publishes as its reading ts; some are
// meant to be filtered out by the edge example (a heartbeat, an implausible
// value), which wantReading tells.
func reading(d, ts int) []byte {
	kind, value := "temperature", fmt.Sprintf("%d.5", 15+ts%10)
	switch {
	case ts%10 == 3:
		kind, value = "heartbeat", "1"
	case ts%10 == 7:
		value = "300" // past the sensor's range
	case ts%2 == 1:
		kind = "humidity"
	}
	return fmt.Appendf(nil, `{"sensor":"s%d","kind":%q,"value":%s,"ts":%d}`, d, kind, value, ts)
}

func wantReading(ts int) bool { return ts%10 != 3 && ts%10 != 7 }

// segBytes is the size of the disk buffer's segment files under dir.
func segBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".seg") {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestEdgeSensorsExample runs testdata/pipelines/edge-sensors.toml (docs/edge.md's
// Raspberry-Pi-class example) as it is: readings from MQTT, filtered,
// reshaped and sent to Kafka through a disk buffer. The Kafka uplink goes
// away for a while: the readings published meanwhile land in the buffer
// (on disk), and once the link is back every wanted reading arrives, in
// order per sensor, and none of the filtered ones.
func TestEdgeSensorsExample(t *testing.T) {
	skipShort(t)
	url := broker(t)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := kafkadev.Start(ctx, "127.0.0.1:0", 2, "sensor-readings")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); c.Close() })
	state := filepath.Join(t.TempDir(), "state")
	task := filepath.Join(testkit.RepoRoot(), "testdata", "pipelines", "edge-sensors.toml")
	env := []string{"MQTT_URL=" + url, "KAFKA_BROKERS=" + c.Addr(), "SITE=greenhouse",
		"DEAD_LETTERS=" + filepath.Join(t.TempDir(), "dead.jsonl")}
	p := testkit.StartSluice(t, testkit.ProcOptions{Name: "edge", Env: env},
		"run", "--log-format", "json", "--progress", "never", "--shutdown-timeout", "20s", "--state-dir", state, task)
	p.WaitLog(t, "mqtt source subscribed")

	const sensors, perPhase = 3, 200
	pub := mqtttest.Connect(t, url)
	publish := func(from, to int) (wanted int) {
		for d := range sensors {
			var batch [][]byte
			for ts := from; ts < to; ts++ {
				batch = append(batch, reading(d, ts))
				if wantReading(ts) {
					wanted++
				}
			}
			pub.Publish(t, fmt.Sprintf("sensors/s%d/reading", d), 1, batch...)
		}
		return wanted
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.Addr()), kgo.ConsumeTopics("sensor-readings"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var got []*kgo.Record
	consumeUntil := func(what string, n int) {
		testkit.WaitFor(t, what, func() bool {
			pctx, pcancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer pcancel()
			cl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { got = append(got, r) })
			return len(got) >= n
		})
	}

	want := publish(0, perPhase)
	consumeUntil("the readings of the first phase in Kafka", want)

	// The uplink goes down: readings keep coming and go to disk.
	c.Cut()
	before := segBytes(state)
	want2 := publish(perPhase, 2*perPhase)
	testkit.WaitFor(t, "the readings published during the outage in the disk buffer", func() bool {
		return segBytes(state) >= before+int64(want2)*60 // each output is about 100 bytes
	})
	if err := c.Restore(); err != nil {
		t.Fatal(err)
	}
	want += want2
	consumeUntil("every wanted reading in Kafka after the outage", want)
	p.Stop(t)

	// Every wanted reading once at least, none filtered, in order per
	// sensor (a sensor's MQTT topic is its Kafka key: one partition).
	seen := map[string]int{} // sensor -> last ts
	count := map[string]bool{}
	for _, r := range got {
		var o struct {
			Site, Sensor, Kind, Topic string
			TS                        int
		}
		if err := json.Unmarshal(r.Value, &o); err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		if !wantReading(o.TS) || o.Site != "greenhouse" || o.Topic != "sensors/"+o.Sensor+"/reading" || string(r.Key) != o.Topic {
			t.Fatalf("record %q (key %q) should not be there or is not shaped by the task", r.Value, r.Key)
		}
		id := fmt.Sprintf("%s/%d", o.Sensor, o.TS)
		if last, ok := seen[o.Sensor]; ok && o.TS < last && !count[id] {
			t.Fatalf("sensor %s: reading %d arrived after %d", o.Sensor, o.TS, last)
		}
		seen[o.Sensor] = max(seen[o.Sensor], o.TS)
		count[id] = true
	}
	if len(count) != want {
		t.Fatalf("%d distinct readings in Kafka, want %d", len(count), want)
	}
	t.Logf("%d readings (%d records with redeliveries), %d filtered out on the box", want, len(got), 2*perPhase*sensors-want)
}

// TestEdgeDocShowsTheExample: docs/edge.md shows the example task as it is.
func TestEdgeDocShowsTheExample(t *testing.T) {
	root := testkit.RepoRoot()
	task, err := os.ReadFile(filepath.Join(root, "testdata", "pipelines", "edge-sensors.toml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "edge.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```toml\n"+string(task)+"```") {
		t.Fatal("docs/edge.md does not show testdata/pipelines/edge-sensors.toml as it is: copy the file into its toml block")
	}
}
