package filter

import (
	"testing"

	"github.com/sluicehq/sluice/builtins/filter/condition"
	"github.com/sluicehq/sluice/builtins/filter/pattern"
)

var benchEvent = []byte(`{"specversion":"1.0","id":"8e215af8-0000-4249-8645-f96c1026aaaa","source":"acs:alikafka","type":"alikafka:Topic:Message","time":"2022-06-23T02:49:51.589Z","data":{"topic":"orders","partition":7,"offset":25,"value":{"region":"eu-west-1","amount":250.5,"severity":"high"}}}`)

func benchFilter(b *testing.B, f *Filter, want bool) {
	ctx := b.Context() // cancellable, as a worker's
	if ok, err := f.Match(ctx, benchEvent); ok != want || err != nil {
		b.Fatalf("Match = %v, %v", ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Match(ctx, benchEvent)
	}
}

// BenchmarkFilterPatternAndCondition: the pattern passes, so the condition
// runs (decoding the data member).
func BenchmarkFilterPatternAndCondition(b *testing.B) {
	benchFilter(b, New(pattern.MustCompileJSON(`{"source":["acs:alikafka"],"type":[{"prefix":"alikafka:"}]}`),
		condition.MustCompile(`data.value.amount > 100 && data.value.region startsWith "eu-"`)), true)
}

// BenchmarkFilterPatternRejects: the pattern drops the event, the condition
// never runs.
func BenchmarkFilterPatternRejects(b *testing.B) {
	benchFilter(b, New(pattern.MustCompileJSON(`{"source":["acs:other"]}`),
		condition.MustCompile(`data.value.amount > 100`)), false)
}
