package wasmhost_test

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluicehq/sluice/runtime/metrics"
	"github.com/sluicehq/sluice/runtime/wasmhost"
	"github.com/sluicehq/sluice/runtime/wasmhost/wasmtest"
)

// importModule is a hand-made ABI module importing imports whose
// sluice_process runs body first (params ptr=0, n=1; i32 locals 2 and 3,
// local 2 holding the record count) and then passes every record, unless
// body wrote another outcome for record 0 at 4096+16. The bytes at 1024
// are `{"name":"imports","version":"0"}`.
func importModule(body wasmtest.Code, imports ...wasmtest.Import) []byte {
	const resultAt, descAt = 4096, 1024
	desc := `{"name":"imports","version":"0"}`
	body = wasmtest.Code{}.LocalGet(0).I32Load(4).LocalSet(2).Op(body...).
		I32Const(resultAt).I32Const(1).I32Store(0).
		I32Const(resultAt).LocalGet(2).I32Store(4).
		I32Const(resultAt).I32Const(0).I32Store(8).
		I32Const(resultAt).I32Const(0).I32Store(12).
		I64Const(resultAt << 32).
		LocalGet(2).I32Const(16).Op(wasmtest.OpI32Mul).I32Const(16).Op(wasmtest.OpI32Add).Op(wasmtest.OpI64ExtendU).
		Op(wasmtest.OpI64Or)
	return wasmtest.Module{Imports: imports, MemoryPages: 64, ExportMemory: true, Data: []byte(desc), DataOffset: descAt,
		Funcs: []wasmtest.Func{
			{Type: wasmtest.FuncType{Results: []byte{wasmtest.I32}}, Export: "sluice_abi_version", Body: wasmtest.Code{}.I32Const(1)},
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32}, Results: []byte{wasmtest.I32}}, Export: "sluice_alloc", Body: wasmtest.Code{}.I32Const(1 << 20)},
			{Type: wasmtest.FuncType{Results: []byte{wasmtest.I64}}, Export: "sluice_describe", Body: wasmtest.Code{}.I64Const(descAt<<32 | int64(len(desc)))},
			{Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I64}}, Export: "sluice_process",
				Locals: []byte{wasmtest.I32, wasmtest.I32}, Body: body},
		}}.Bytes()
}

// failWithLocal3 makes record 0 FAIL with local 3 as its code and no
// message.
func failWithLocal3() wasmtest.Code {
	const resultAt = 4096
	return wasmtest.Code{}.
		I32Const(resultAt).I32Const(4).I32Store(16). // outcome 0: FAIL
		I32Const(resultAt).LocalGet(3).I32Store(20). // code = local 3
		I32Const(resultAt).I32Const(1024).I32Store(24).
		I32Const(resultAt).I32Const(0).I32Store(28)
}

var importKVGet = wasmtest.Import{Module: "sluice", Name: "kv_get",
	Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I32}, Results: []byte{wasmtest.I32}}}

// kv_get returns -2 (BAD_ARGS) for a region outside memory (docs/abi.md
// 7), also when the key exists and its value fits buf_cap: the host
// cannot copy it, and the guest must not take its buffer for the value.
// It returned 3, kv_put's BAD_ARGS, which is also the length of a 3-byte
// value: a guest could not tell "nothing was copied" from "the value is
// these 3 bytes of your buffer".
func TestKVGetBadArgsIsNotALength(t *testing.T) {
	kv := wasmhost.NewKV(0)
	kv.Put([]byte("{"), []byte("abc"), 0)
	for _, tc := range []struct {
		name string
		call wasmtest.Code
		want string
	}{
		{"buffer outside memory", wasmtest.Code{}.I32Const(1024).I32Const(1).I32Const(-256).I32Const(16), "(code 4294967294)"}, // kv_get("{", buf=0xffffff00, cap=16)
		{"key outside memory", wasmtest.Code{}.I32Const(-256).I32Const(16).I32Const(8192).I32Const(16), "(code 4294967294)"},   // kv_get(0xffffff00+16, buf=8192, cap=16)
		// The same call with the buffer in memory returns the value's length.
		{"a 3-byte value", wasmtest.Code{}.I32Const(1024).I32Const(1).I32Const(8192).I32Const(16), "(code 3)"}, // kv_get("{", buf=8192, cap=16)
	} {
		body := tc.call.Call(0).LocalSet(3).Op(failWithLocal3()...)
		tr := transformer(t, importModule(body, importKVGet), wasmhost.TransformerConfig{KV: kv})
		out := process(t, tr, msgs("a"))
		if f := failures(out)[0]; !strings.Contains(f, tc.want) {
			t.Errorf("kv_get, %s: %s; want %s", tc.name, f, tc.want)
		}
	}
}

// kv_put's and kv_add's ttl_ms is an i64 of milliseconds; one past the
// range of a time.Duration (292 years) means "practically never", yet
// ttl_ms x 1ms wrapped: 2^58+1 ms became 1 ms, and Go's largest Duration
// (what the SDK sends for it) overflowed now+ttl into the past.
func TestKVImportLongTTL(t *testing.T) {
	kvPut := wasmtest.Import{Module: "sluice", Name: "kv_put",
		Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.I64}, Results: []byte{wasmtest.I32}}}
	kvAdd := kvPut
	kvAdd.Name = "kv_add"
	// Keys are the first 1, 2, 3, 4 bytes of the description at 1024.
	var body wasmtest.Code
	for i, ttl := range []int64{1<<58 + 1, int64(math.MaxInt64 / time.Millisecond)} {
		for j, fn := range []uint32{0, 1} { // kv_put, kv_add
			body = body.I32Const(1024).I32Const(int32(1 + 2*i + j)).I32Const(1024).I32Const(1).I64Const(ttl).Call(fn).
				LocalTee(3).If().Op(failWithLocal3()...).End()
		}
	}
	kv := wasmhost.NewKV(0)
	now := time.Unix(1_700_000_000, 0)
	kv.SetClock(func() time.Time { return now })
	tr := transformer(t, importModule(body, kvPut, kvAdd), wasmhost.TransformerConfig{KV: kv})
	if f := failures(process(t, tr, msgs("a"))); len(f) > 0 {
		t.Fatalf("a put failed: %v", f)
	}
	now = now.AddDate(1, 0, 0)
	for _, key := range []string{`{`, `{"`, `{"n`, `{"na`} {
		if _, ok := kv.Get([]byte(key)); !ok {
			t.Errorf("entry %q put with a TTL of centuries is gone a year later", key)
		}
	}
}

// A metric name is a label value of the task's metrics, and Prometheus
// refuses a whole scrape with one label value that is not UTF-8: a guest
// naming a metric "\xff" made every metric of the process unreadable.
// Such a name is ignored, as names over 128 bytes are.
func TestGuestMetricNameNotUTF8IsIgnored(t *testing.T) {
	importMetric := wasmtest.Import{Module: "sluice", Name: "metric",
		Type: wasmtest.FuncType{Params: []byte{wasmtest.I32, wasmtest.I32, wasmtest.I32, wasmtest.F64}}}
	// Byte 8192 holds "\xff"; counter add 1 under the names "\xff" and
	// "{" (the description's first byte).
	body := wasmtest.Code{}.
		I32Const(8192).I32Const(0xff).I32Store8(0).
		I32Const(0).I32Const(8192).I32Const(1).Op(0x44).Op(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).Call(0). // f64.const 1
		I32Const(0).I32Const(1024).I32Const(1).Op(0x44).Op(0, 0, 0, 0, 0, 0, 0xf0, 0x3f).Call(0)
	set := metrics.New()
	tr := transformer(t, importModule(body, importMetric), wasmhost.TransformerConfig{Task: "t", Metrics: set})
	process(t, tr, msgs("a"))
	var b bytes.Buffer
	set.WritePrometheus(&b)
	if !strings.Contains(b.String(), `name="{"`) {
		t.Fatalf("the valid name is missing from the metrics:\n%s", b.String())
	}
	if !utf8.Valid(b.Bytes()) {
		t.Fatalf("the metrics are not valid UTF-8 (Prometheus refuses the scrape):\n%q", b.String())
	}
}
