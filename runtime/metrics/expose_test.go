package metrics_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/metrics/metricstest"
)

// The exposition, line for line: families sorted by name, each with its
// HELP and TYPE, labels sorted by name and escaped, a histogram's
// cumulative le buckets (the default ones, to the last digit as the
// Prometheus client wrote them) with _sum and _count; a curried family
// takes the remaining label values; deleted and forgotten series are gone.
func TestExposition(t *testing.T) {
	s := metrics.New()
	in := s.Counter("events_in_total", "Events read from the source.", "task").WithLabelValues("orders")
	in.Add(41)
	in.Inc()
	s.Counter("events_in_total", "Events read from the source.", "task").WithLabelValues("gone").Inc()
	failed := s.Counter("events_failed_total", "Event failures by stage and error class.", "task", "stage", "error_type").Curry("orders")
	failed.WithLabelValues("sink", "retryable").Add(2)
	lag := s.Gauge("kafka_consumer_lag", `Records behind; a "quoted" \ help`, "task", "topic", "partition").Curry("orders")
	lag.WithLabelValues("t\"1\\\n", "0").Set(1.5)
	lag.WithLabelValues("t2", "3").Set(9)
	lag.Delete("t2", "3")
	g := s.Gauge("wasm_instances", "Live instances.", "task", "module").WithLabelValues("orders", "m")
	g.Inc()
	g.Inc()
	g.Dec()
	g.Add(0.5)
	h := s.Histogram("sink_write_seconds", "Time to deliver one sink batch, retries included.", nil, "task").WithLabelValues("orders")
	h.Observe(0.0001)
	h.Observe(0.002)
	h.Observe(20)
	s.Histogram("small_seconds", "Two buckets.", []float64{0.1, 1}, "task").WithLabelValues("orders").Observe(0.5)
	s.FloatCounter("wasm_guest_counter_total", "Guest counters.", "task", "module", "name").WithLabelValues("orders", "m", "hits").Add(0.25)
	s.GaugeFunc("task_state", "Task state.", "task", "state").Set(func() float64 { return 1 }, "orders", "Running")
	if n := s.Forget("task", "gone"); n != 1 {
		t.Fatalf("Forget(task, gone) removed %d series, want 1", n)
	}
	// A family asked for again is the same family.
	if v := s.Counter("events_in_total", "", "task").WithLabelValues("orders").Value(); v != 42 {
		t.Fatalf("events_in_total{task=orders} = %v, want 42", v)
	}

	var b bytes.Buffer
	s.WritePrometheus(&b)
	want := `# HELP sluice_events_failed_total Event failures by stage and error class.
# TYPE sluice_events_failed_total counter
sluice_events_failed_total{error_type="retryable",stage="sink",task="orders"} 2
# HELP sluice_events_in_total Events read from the source.
# TYPE sluice_events_in_total counter
sluice_events_in_total{task="orders"} 42
# HELP sluice_kafka_consumer_lag Records behind; a "quoted" \\ help
# TYPE sluice_kafka_consumer_lag gauge
sluice_kafka_consumer_lag{partition="0",task="orders",topic="t\"1\\\n"} 1.5
# HELP sluice_sink_write_seconds Time to deliver one sink batch, retries included.
# TYPE sluice_sink_write_seconds histogram
sluice_sink_write_seconds_bucket{task="orders",le="5e-05"} 0
sluice_sink_write_seconds_bucket{task="orders",le="0.00011281633944356353"} 1
sluice_sink_write_seconds_bucket{task="orders",le="0.00025455052890890694"} 1
sluice_sink_write_seconds_bucket{task="orders",le="0.0005743491774985176"} 1
sluice_sink_write_seconds_bucket{task="orders",le="0.0012959194353560854"} 1
sluice_sink_write_seconds_bucket{task="orders",le="0.0029240177382128664"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.006597539553864472"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.014886205236022219"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.03358814365867271"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.07578582832551992"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.1709975946676697"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.3858264536812143"} 2
sluice_sink_write_seconds_bucket{task="orders",le="0.8705505632961242"} 2
sluice_sink_write_seconds_bucket{task="orders",le="1.9642465570320198"} 2
sluice_sink_write_seconds_bucket{task="orders",le="4.431982126579506"} 2
sluice_sink_write_seconds_bucket{task="orders",le="10.000000000000002"} 2
sluice_sink_write_seconds_bucket{task="orders",le="+Inf"} 3
sluice_sink_write_seconds_sum{task="orders"} 20.0021
sluice_sink_write_seconds_count{task="orders"} 3
# HELP sluice_small_seconds Two buckets.
# TYPE sluice_small_seconds histogram
sluice_small_seconds_bucket{task="orders",le="0.1"} 0
sluice_small_seconds_bucket{task="orders",le="1"} 1
sluice_small_seconds_bucket{task="orders",le="+Inf"} 1
sluice_small_seconds_sum{task="orders"} 0.5
sluice_small_seconds_count{task="orders"} 1
# HELP sluice_task_state Task state.
# TYPE sluice_task_state gauge
sluice_task_state{state="Running",task="orders"} 1
# HELP sluice_wasm_guest_counter_total Guest counters.
# TYPE sluice_wasm_guest_counter_total counter
sluice_wasm_guest_counter_total{module="m",name="hits",task="orders"} 0.25
# HELP sluice_wasm_instances Live instances.
# TYPE sluice_wasm_instances gauge
sluice_wasm_instances{module="m",task="orders"} 1.5
`
	if got := b.String(); got != want {
		t.Fatalf("exposition:\n%s\nwant:\n%s", got, want)
	}
	fams, err := metricstest.Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := fams.Value("sluice_kafka_consumer_lag", "topic", "t\"1\\\n"); !ok || v != 1.5 {
		t.Errorf("the escaped label value does not read back: %v %v", v, ok)
	}
}

// With RegisterProcess the exposition holds what operators expect of a
// process, each family with HELP text and TYPE, and parses.
func TestProcessMetrics(t *testing.T) {
	s := metrics.New()
	s.RegisterProcess("1.2.3")
	fams := metricstest.Gather(t, s)
	for name, typ := range map[string]string{
		"process_resident_memory_bytes": "gauge", "process_cpu_seconds_total": "counter", "process_open_fds": "gauge",
		"process_max_fds": "gauge", "process_start_time_seconds": "gauge", "process_virtual_memory_bytes": "gauge",
		"process_virtual_memory_max_bytes": "gauge", "process_network_receive_bytes_total": "counter",
		"go_goroutines": "gauge", "go_threads": "gauge", "go_memstats_alloc_bytes": "gauge", "go_memstats_heap_inuse_bytes": "gauge",
		"go_memstats_alloc_bytes_total": "counter", "go_gc_duration_seconds": "summary", "go_info": "gauge",
		"go_gc_gogc_percent": "gauge", "go_gc_gomemlimit_bytes": "gauge", "go_sched_gomaxprocs_threads": "gauge",
		"sluice_build_info": "gauge",
	} {
		f := fams[name]
		if f == nil {
			t.Errorf("no %s", name)
			continue
		}
		if f.Type != typ || f.Help == "" || f.Help == name || len(f.Samples) == 0 {
			t.Errorf("%s: type %q help %q, %d samples; want %s with a help text", name, f.Type, f.Help, len(f.Samples), typ)
		}
	}
	if v, ok := fams.Value("process_resident_memory_bytes"); !ok || v < 1<<20 {
		t.Errorf("process_resident_memory_bytes = %v", v)
	}
	if v, ok := fams.Value("sluice_build_info", "version", "1.2.3"); !ok || v != 1 {
		t.Errorf("sluice_build_info{version=1.2.3} = %v %v", v, ok)
	}
}

// The handler serves the text format, gzipped when asked, to every
// client, OpenMetrics ones included.
func TestHandler(t *testing.T) {
	s := metrics.New()
	s.RegisterProcess("1.2.3")
	s.Counter("events_in_total", "Events read from the source.", "task").WithLabelValues("orders").Inc()
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, h := range []map[string]string{
		{},
		{"Accept-Encoding": "gzip"},
		{"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"},
	} {
		req, _ := http.NewRequest("GET", srv.URL, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		// Set by hand, the transport leaves the answer compressed.
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var body io.Reader = resp.Body
		if h["Accept-Encoding"] == "gzip" {
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("asked for gzip, got Content-Encoding %q", resp.Header.Get("Content-Encoding"))
			}
			if body, err = gzip.NewReader(resp.Body); err != nil {
				t.Fatal(err)
			}
		}
		fams, err := metricstest.Parse(body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("%v: %v", h, err)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
			t.Errorf("%v: Content-Type %q", h, ct)
		}
		if v, ok := fams.Value("sluice_events_in_total", "task", "orders"); !ok || v != 1 || fams["go_goroutines"] == nil {
			t.Errorf("%v: sluice_events_in_total %v %v, go_goroutines %v", h, v, ok, fams["go_goroutines"] != nil)
		}
	}
}

// A nil set hands out metrics that work and are exposed nowhere.
func TestNilSet(t *testing.T) {
	var s *metrics.Set
	c := s.Counter("c_total", "help", "task").WithLabelValues("x")
	c.Add(2)
	s.Histogram("h_seconds", "help", nil, "task").WithLabelValues("x").Observe(1)
	s.Gauge("g", "help", "task").Curry("x").WithLabelValues().Set(3)
	s.GaugeFunc("f", "help", "task").Set(func() float64 { return 1 }, "x")()
	if c.Value() != 2 || s.Forget("task", "x") != 0 {
		t.Fatalf("counter %v", c.Value())
	}
}

// The Prometheus client's exposition, as it wrote a sluice process's
// families, parses with metricstest too (the parser is no stricter than
// what scrapers read).
func TestParseAcceptsTheClientsOutput(t *testing.T) {
	const client = `# HELP go_gc_duration_seconds A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.4e-05
go_gc_duration_seconds{quantile="1"} 0.000101
go_gc_duration_seconds_sum 0.000125
go_gc_duration_seconds_count 2
# HELP sluice_event_latency_seconds End-to-end latency.
# TYPE sluice_event_latency_seconds histogram
sluice_event_latency_seconds_bucket{task="bench",le="5e-05"} 0
sluice_event_latency_seconds_bucket{task="bench",le="+Inf"} 0
sluice_event_latency_seconds_sum{task="bench"} 0
sluice_event_latency_seconds_count{task="bench"} 0
# HELP sluice_task_state Task state: 1 for the state the task is in, 0 for the others.
# TYPE sluice_task_state gauge
sluice_task_state{state="Blocked",task="bench"} 0
sluice_task_state{state="Running",task="bench"} 1
`
	fams, err := metricstest.Parse(strings.NewReader(client))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := fams.Value("sluice_task_state", "state", "Running"); v != 1 || len(fams) != 3 {
		t.Fatalf("%d families, Running %v", len(fams), v)
	}
}

// go_gc_duration_seconds holds the quantiles of the pauses that happened
// (the largest is not below the median), with their sum and count.
func TestGCDuration(t *testing.T) {
	s := metrics.New()
	s.RegisterProcess("1.2.3")
	runtime.GC()
	runtime.GC()
	fams := metricstest.Gather(t, s)
	f := fams["go_gc_duration_seconds"]
	if f == nil || f.Type != "summary" || len(f.Samples) != 7 {
		t.Fatalf("go_gc_duration_seconds: %+v", f)
	}
	n, _ := fams.Value("go_gc_duration_seconds_count")
	median, _ := fams.Value("go_gc_duration_seconds", "quantile", "0.5")
	top, _ := fams.Value("go_gc_duration_seconds", "quantile", "1")
	if n < 2 || top <= 0 || top < median {
		t.Fatalf("go_gc_duration_seconds: count %v, median %v, max %v", n, median, top)
	}
}
