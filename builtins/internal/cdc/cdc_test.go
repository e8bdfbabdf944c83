package cdc

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

func testTable() *Table {
	return NewTable("shop", "public", "orders", []Column{
		{Name: "id", Type: "int8"}, {Name: "region", Type: "text"}, {Name: "amount", Type: "numeric"},
		{Name: "tags", Type: "jsonb"}, {Name: "tenant", Type: "int4"},
	}, []int{4, 0})
}

func newEnc() *Encoder {
	return NewEncoder(Options{Connector: "postgresql", Source: "postgres://127.0.0.1:5432/shop", Type: "sluice.postgres_cdc.change"})
}

// writeUpdate writes an update whose before image holds only the key
// columns, as PostgreSQL logs it without REPLICA IDENTITY FULL.
func writeUpdate(e *Encoder, dst []byte, t *Table) ([]byte, []byte) {
	dst = e.Begin(dst, t, Update, []byte("s1-00000000016B3748-2"), 1767225600123)
	dst = e.BeginImage(dst, Before)
	dst = e.Column(dst, 0)
	dst = AppendInt(dst, 41)
	dst = e.Column(dst, 4)
	dst = AppendInt(dst, 7)
	dst = e.EndImage(dst)
	dst = e.BeginImage(dst, After)
	dst = e.Column(dst, 0)
	dst = AppendInt(dst, 42)
	dst = e.Column(dst, 1)
	dst = AppendString(dst, []byte("eu-\"west\"\n"))
	dst = e.Column(dst, 2)
	dst = AppendDecimal(dst, []byte("12345678901234567890.0001"), false)
	dst = e.Column(dst, 3)
	dst = AppendJSON(dst, []byte(` { "a" : [1, 2] } `))
	dst = e.Column(dst, 4)
	dst = AppendInt(dst, 7)
	dst = e.EndImage(dst)
	dst = e.BeginSource(dst, false)
	dst = AppendMember(dst, "lsn")
	dst = AppendString(dst, []byte("0/16B3748"))
	dst = AppendMember(dst, "txid")
	dst = AppendInt(dst, 731)
	return e.End(dst)
}

func TestEvent(t *testing.T) {
	e := newEnc()
	tbl := testTable()
	prefix := []byte("garbage before")
	out, key := writeUpdate(e, prefix, tbl)
	ev := out[len(prefix):]
	want := `{"specversion":"1.0","id":"s1-00000000016B3748-2","source":"postgres://127.0.0.1:5432/shop",` +
		`"type":"sluice.postgres_cdc.change","subject":"public.orders","time":"2026-01-01T00:00:00.123Z",` +
		`"datacontenttype":"application/json","data":{"op":"u","before":{"id":41,"tenant":7},` +
		`"after":{"id":42,"region":"eu-\"west\"\n","amount":"12345678901234567890.0001","tags":{"a":[1,2]},"tenant":7},` +
		`"source":{"connector":"postgresql","db":"shop","schema":"public","table":"orders","snapshot":false,` +
		`"ts_ms":1767225600123,"lsn":"0/16B3748","txid":731},"key":{"tenant":7,"id":42}}}`
	if string(ev) != want {
		t.Fatalf("got\n%s\nwant\n%s", ev, want)
	}
	if string(key) != `{"tenant":7,"id":42}` || cap(key) != len(key) {
		t.Fatalf("key %s (cap %d)", key, cap(key))
	}
	if !json.Valid(ev) {
		t.Fatal("not valid JSON")
	}
}

func TestDeleteKeyFromBefore(t *testing.T) {
	e := newEnc()
	tbl := testTable()
	dst := e.Begin(nil, tbl, Delete, []byte("x"), 0)
	dst = e.BeginImage(dst, Before)
	dst = e.Column(dst, 0)
	dst = AppendInt(dst, 5)
	dst = e.Column(dst, 4)
	dst = AppendNull(dst)
	dst = e.EndImage(dst)
	dst = e.NullImage(dst, After)
	dst = e.BeginSource(dst, false)
	dst, key := e.End(dst)
	var got struct {
		Data struct {
			Op     string
			Before map[string]any
			After  map[string]any
			Key    map[string]any
		}
	}
	if err := json.Unmarshal(dst, &got); err != nil {
		t.Fatalf("%v: %s", err, dst)
	}
	if got.Data.Op != "d" || got.Data.After != nil || got.Data.Before["id"] != 5.0 || string(key) != `{"tenant":null,"id":5}` {
		t.Fatalf("%+v key %s", got.Data, key)
	}
}

func TestNoKey(t *testing.T) {
	e := newEnc()
	// A table without a key, and a keyed table whose last image lacks a
	// key column: the key is null, never invented.
	for _, tbl := range []*Table{NewTable("d", "", "t", []Column{{Name: "a"}}, nil), testTable()} {
		dst := e.Begin(nil, tbl, Create, []byte("x"), 0)
		dst = e.NullImage(dst, Before)
		dst = e.BeginImage(dst, After)
		dst = e.Column(dst, 0)
		dst = AppendInt(dst, 1)
		dst = e.EndImage(dst)
		dst = e.BeginSource(dst, true)
		dst, key := e.End(dst)
		if key != nil || !bytes.HasSuffix(dst, []byte(`"snapshot":true,"ts_ms":0},"key":null}}`)) || !json.Valid(dst) {
			t.Fatalf("%s key %s", dst, key)
		}
	}
	if NewTable("d", "", "t", nil, nil).Subject() != "t" || testTable().Subject() != "public.orders" {
		t.Fatal("Subject")
	}
}

// TestKeyAfterGrowth checks that the key is copied right when dst
// reallocates between the image and End.
func TestKeyAfterGrowth(t *testing.T) {
	e := newEnc()
	tbl := testTable()
	dst := e.Begin(make([]byte, 0, 8), tbl, Read, []byte("x"), 0)
	dst = e.NullImage(dst, Before)
	dst = e.BeginImage(dst, After)
	dst = e.Column(dst, 0)
	dst = AppendString(dst, []byte("k"))
	dst = e.Column(dst, 4)
	dst = AppendInt(dst, 3)
	dst = e.EndImage(dst)
	dst = e.BeginSource(dst, true)
	dst = AppendMember(dst, "pad")
	dst = AppendString(dst, bytes.Repeat([]byte("p"), 4096))
	_, key := e.End(dst)
	if string(key) != `{"tenant":3,"id":"k"}` {
		t.Fatalf("key %s", key)
	}
}

func TestEncoderDoesNotAllocate(t *testing.T) {
	e := newEnc()
	tbl := testTable()
	buf := make([]byte, 0, 4096)
	writeUpdate(e, buf[:0], tbl)
	n := testing.AllocsPerRun(100, func() { writeUpdate(e, buf[:0], tbl) })
	if n != 0 {
		t.Fatalf("%v allocations per event", n)
	}
}

func TestValues(t *testing.T) {
	cases := []struct {
		got  []byte
		want string
	}{
		{AppendBool(nil, true), `true`},
		{AppendBool(nil, false), `false`},
		{AppendInt(nil, math.MinInt64), `-9223372036854775808`},
		{AppendUint(nil, math.MaxUint64), `18446744073709551615`},
		{AppendFloat(nil, 1.5, 64), `1.5`},
		{AppendFloat(nil, 0.1, 32), `0.1`},
		{AppendFloat(nil, 1e21, 64), `1e+21`},
		{AppendFloat(nil, 1e-7, 64), `1e-07`},
		{AppendFloat(nil, math.NaN(), 64), `"NaN"`},
		{AppendFloat(nil, math.Inf(1), 64), `"Infinity"`},
		{AppendFloat(nil, math.Inf(-1), 32), `"-Infinity"`},
		{AppendNumberText(nil, []byte("-12.5e3")), `-12.5e3`},
		{AppendNumberText(nil, []byte("NaN")), `"NaN"`},
		{AppendNumberText(nil, []byte("")), `""`},
		{AppendDecimal(nil, []byte("1.10"), false), `"1.10"`},
		{AppendDecimal(nil, []byte("1.10"), true), `1.10`},
		{AppendDecimal(nil, []byte("NaN"), true), `"NaN"`},
		{AppendString(nil, []byte("a\x00\xffé")), `"a\u0000\ufffdé"`},
		{AppendBytes(nil, []byte{0, 1, 0xfe, 0xff}), `"AAH+/w=="`},
		{AppendJSON(nil, []byte(`[1, {"a": "b c"}]`)), `[1,{"a":"b c"}]`},
		{AppendJSON(nil, []byte(`{not json`)), `"{not json"`},
		{AppendJSON(nil, []byte(``)), `""`},
		{AppendTime(nil, time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC)), `"2026-01-02T03:04:05.12Z"`},
		{AppendTime(nil, time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 3600))), `"2026-01-02T03:04:05+01:00"`},
		{AppendDate(nil, 2026, 1, 2), `"2026-01-02"`},
		{AppendDate(nil, 12026, 12, 31), `"12026-12-31"`},
		{AppendNull(nil), `null`},
	}
	for i, c := range cases {
		if string(c.got) != c.want {
			t.Errorf("case %d: got %s, want %s", i, c.got, c.want)
		}
		if !json.Valid(c.got) {
			t.Errorf("case %d: %s is not valid JSON", i, c.got)
		}
	}
	if Create.Valid() != true || Op('x').Valid() {
		t.Fatal("Op.Valid")
	}
}

// TestFloatRoundTrip checks that floats read back as the same value.
func TestFloatRoundTrip(t *testing.T) {
	for _, f := range []float64{0, math.Copysign(0, -1), 1.0 / 3, math.MaxFloat64, math.SmallestNonzeroFloat64, 123456789.125, -1e300} {
		var back float64
		if err := json.Unmarshal(AppendFloat(nil, f, 64), &back); err != nil || back != f {
			t.Errorf("%v read back as %v (%v)", f, back, err)
		}
	}
	var back float32
	f := float32(3.4028235e38)
	if err := json.Unmarshal(AppendFloat(nil, float64(f), 32), &back); err != nil || back != f {
		t.Errorf("%v read back as %v (%v)", f, back, err)
	}
}

func TestTableFields(t *testing.T) {
	tbl := testTable()
	if !reflect.DeepEqual(tbl.Key, []int{4, 0}) || tbl.DB != "shop" || len(tbl.Columns) != 5 {
		t.Fatalf("%+v", tbl)
	}
}

func BenchmarkEvent(b *testing.B) {
	e := newEnc()
	tbl := testTable()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = writeUpdate(e, buf[:0], tbl)
	}
	b.SetBytes(int64(len(buf)))
}
