package pattern

import (
	"runtime"
	"testing"

	"github.com/sluicehq/sluice/runtime/jsonscan"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// cloudEvent is a ~250-byte CloudEvents envelope (Kafka-sourced, value parsed as JSON).
var cloudEvent = []byte(`{"specversion":"1.0","id":"8e215af8-0000-4249-8645-f96c1026aaaa","source":"acs:alikafka","type":"alikafka:Topic:Message","time":"2022-06-23T02:49:51.589Z","data":{"topic":"orders","partition":7,"offset":25,"value":{"region":"eu-west-1","amount":250.5,"severity":"high"}}}`)

func benchMatch(b *testing.B, pattern string, want bool) {
	p := MustCompileJSON(pattern)
	if got := p.Match(cloudEvent); got != want {
		b.Fatalf("Match = %v, want %v", got, want)
	}
	b.SetBytes(int64(len(cloudEvent)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := testkit.ThreadCPU()
	for b.Loop() {
		p.Match(cloudEvent)
	}
	if cpu := testkit.ThreadCPU() - t0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// BenchmarkMatch3Fields is the target case: 3 fields on a ~250-byte event.
func BenchmarkMatch3Fields(b *testing.B) {
	benchMatch(b, `{"source":["acs:alikafka"],"type":[{"prefix":"alikafka:"}],"data":{"value":{"amount":[{"numeric":[">",100]}]}}}`, true)
}

// BenchmarkMatch3FieldsMiss fails on the first field.
func BenchmarkMatch3FieldsMiss(b *testing.B) {
	benchMatch(b, `{"source":["acs:other"],"type":[{"prefix":"alikafka:"}],"data":{"value":{"amount":[{"numeric":[">",100]}]}}}`, false)
}

// BenchmarkMatch10FieldsOr has ten fields, some under a $or.
func BenchmarkMatch10FieldsOr(b *testing.B) {
	benchMatch(b, `{
		"specversion":["1.0"],
		"source":[{"prefix":"acs:"}],
		"type":[{"suffix":":Message"}],
		"id":[{"wildcard":"8e215af8-*aaaa"}],
		"data":{
			"topic":["orders","payments"],
			"partition":[{"numeric":[">=",0,"<",64]}],
			"offset":[{"numeric":["<",1e12]}],
			"value":{
				"region":[{"prefix":"eu-"}],
				"$or":[{"severity":["high","critical"]},{"amount":[{"numeric":[">",1000]}]}]
			}
		},
		"$or":[{"time":[{"exists":true}]},{"source":[{"anything-but":{"prefix":"test-"}}]}]
	}`, true)
}

// BenchmarkValidBaseline is jsonscan.Valid on the same event: the floor for
// a matcher that validates the whole event in one pass.
func BenchmarkValidBaseline(b *testing.B) {
	b.SetBytes(int64(len(cloudEvent)))
	b.ReportAllocs()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t0 := testkit.ThreadCPU()
	for b.Loop() {
		jsonscan.Valid(cloudEvent)
	}
	if cpu := testkit.ThreadCPU() - t0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
