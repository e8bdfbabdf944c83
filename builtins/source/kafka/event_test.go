package kafka

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"
)

const sampleTS = 1655952591589 // 2022-06-23T02:49:51.589Z, the Alibaba sample's time

func rec(key, value []byte, hs ...kgo.RecordHeader) *kgo.Record {
	return &kgo.Record{Topic: "clicks", Partition: 7, Offset: 25, Timestamp: time.UnixMilli(sampleTS), Key: key, Value: value, Headers: hs}
}

const envelope = `{"specversion":"1.0","id":"clicks-7-25","source":"kafka://127.0.0.1:9092/clicks","type":"sluice.kafka.record","subject":"clicks","datacontenttype":"application/json; charset=utf-8","time":"2022-06-23T02:49:51.589Z","data":{"topic":"clicks","partition":7,"offset":25,"timestamp":1655952591589,`

// TestEventGolden pins the exact bytes of the event (docs/kafka.md,
// "The event") for each value and key format.
func TestEventGolden(t *testing.T) {
	h := func(k, v string) kgo.RecordHeader { return kgo.RecordHeader{Key: k, Value: []byte(v)} }
	tests := []struct {
		name        string
		valueFormat string
		keyFormat   string
		rec         *kgo.Record
		want        string // after the envelope
		nonJSON     bool
	}{
		{"json object", "json", "text", rec([]byte("user-42"), []byte(`{"page":"/home","ms":31}`), h("trace", "abc"), h("tag", "a"), h("tag", "b")),
			`"headers":{"trace":"abc","tag":["a","b"]},"key":"user-42","value":{"page":"/home","ms":31}}}`, false},
		{"json trimmed", "json", "text", rec(nil, []byte(" \t{\"a\": [1, 2]}\r\n")),
			`"headers":{},"value":{"a": [1, 2]}}}`, false},
		{"json scalar", "json", "text", rec(nil, []byte(`42`)), `"headers":{},"value":42}}`, false},
		{"json string", "json", "text", rec(nil, []byte(`"hi"`)), `"headers":{},"value":"hi"}}`, false},
		{"json not json", "json", "text", rec(nil, []byte(`hello "w"`+"\n")), `"headers":{},"value":"hello \"w\"\n"}}`, true},
		{"json bad utf8", "json", "text", rec(nil, []byte("{\"a\":\"\xff\"}")), `"headers":{},"value":"{\"a\":\"\ufffd\"}"}}`, true},
		{"json empty", "json", "text", rec(nil, []byte{}), `"headers":{},"value":""}}`, true},
		{"tombstone", "json", "text", rec([]byte("k"), nil), `"headers":{},"key":"k","value":null}}`, false},
		{"empty key", "json", "text", rec([]byte{}, []byte(`1`)), `"headers":{},"key":"","value":1}}`, false},
		{"text", "text", "text", rec(nil, []byte(`{"a":1}`)), `"headers":{},"value":"{\"a\":1}"}}`, false},
		{"text control", "text", "text", rec([]byte("a\"b\\"), []byte("x\x00\ty\xfez")), `"headers":{},"key":"a\"b\\","value":"x\u0000\ty\ufffdz"}}`, false},
		{"base64", "base64", "base64", rec([]byte{0xff, 0x00}, []byte{0, 1, 2, 250}), `"headers":{},"key":"/wA=","value":"AAEC+g=="}}`, false},
		{"headers", "json", "text", rec(nil, []byte(`1`), h("a", "1"), h("b\"", "x\ny"), h("a", "2"), h("c", ""), h("a", "3"), kgo.RecordHeader{Key: "n"}),
			`"headers":{"a":["1","2","3"],"b\"":"x\ny","c":"","n":""},"value":1}}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEncoder("127.0.0.1:9092", tt.valueFormat, tt.keyFormat)
			got, nonJSON := e.appendEvent([]byte("prefix"), e.meta("clicks"), tt.rec)
			if want := "prefix" + envelope + tt.want; string(got) != want {
				t.Fatalf("event mismatch\n got %s\nwant %s", got, want)
			}
			if nonJSON != tt.nonJSON {
				t.Fatalf("nonJSON = %v, want %v", nonJSON, tt.nonJSON)
			}
			if !json.Valid(got[len("prefix"):]) {
				t.Fatalf("not valid JSON: %s", got)
			}
			if n := e.sizeHint(e.meta("clicks"), tt.rec); n < len(got)-len("prefix") && !strings.Contains(tt.name, "control") {
				t.Errorf("sizeHint %d below the event size %d", n, len(got)-len("prefix"))
			}
		})
	}
}

// TestEventEscapesTopicAndBroker: odd characters in the broker address
// still give valid JSON, and topics are cached per name.
func TestEventEscapesTopicAndBroker(t *testing.T) {
	e := newEncoder(`we"ird:1`, "json", "text")
	r := rec(nil, []byte(`1`))
	r.Topic = "a.b_c-d"
	got, _ := e.appendEvent(nil, e.meta(r.Topic), r)
	var ev struct {
		ID     string `json:"id"`
		Source string `json:"source"`
		Data   struct {
			Topic string `json:"topic"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got, &ev); err != nil {
		t.Fatalf("%v: %s", err, got)
	}
	if ev.ID != "a.b_c-d-7-25" || ev.Source != `kafka://we"ird:1/a.b_c-d` || ev.Data.Topic != "a.b_c-d" {
		t.Fatalf("unexpected event %+v", ev)
	}
	if first := e.meta("a.b_c-d"); e.meta("a.b_c-d") != first {
		t.Fatal("topic pieces are not cached")
	}
}

// decodedEvent is the event as encoding/json sees it.
type decodedEvent struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Time        string          `json:"time"`
	Data        map[string]any  `json:"data"`
	Raw         json.RawMessage `json:"-"`
}

// repair replaces each invalid UTF-8 byte with U+FFFD, as eventenc.AppendText does.
func repair(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		sb.WriteRune(r)
		b = b[n:]
	}
	return sb.String()
}

// FuzzAppendEvent: for any key, value, header and offset the event is valid
// JSON that decodes back to the record's fields.
func FuzzAppendEvent(f *testing.F) {
	f.Add([]byte("k"), []byte(`{"a":1}`), "h", []byte("v"), int64(0), uint8(0))
	f.Add([]byte{0xff}, []byte("plain\x00text"), "h\"", []byte{0xc3}, int64(1<<40), uint8(1))
	f.Add([]byte(nil), []byte(nil), "", []byte(nil), int64(-1), uint8(2))
	f.Add([]byte(""), []byte(" [1, {\"b\": null}] "), "\u2028", []byte("\\"), int64(7), uint8(0))
	f.Fuzz(func(t *testing.T, key, value []byte, hk string, hv []byte, ts int64, mode uint8) {
		formats := []string{FormatJSON, FormatText, FormatBase64}
		vf := formats[int(mode)%3]
		kf := FormatText
		if mode&4 != 0 {
			kf = FormatBase64
		}
		e := newEncoder("b:1", vf, kf)
		r := &kgo.Record{Topic: "t", Partition: 3, Offset: 99, Timestamp: time.UnixMilli(ts % (1 << 45)), Key: key, Value: value,
			Headers: []kgo.RecordHeader{{Key: hk, Value: hv}, {Key: "x", Value: hv}, {Key: hk, Value: key}}}
		out, nonJSON := e.appendEvent(nil, e.meta("t"), r)
		if least, hint := e.minSize(e.meta("t"), r), e.sizeHint(e.meta("t"), r); least > len(out) || hint < least {
			t.Fatalf("minSize %d, sizeHint %d for an event of %d bytes: minSize must not exceed either", least, hint, len(out))
		}
		var ev decodedEvent
		d := json.NewDecoder(bytes.NewReader(out))
		d.UseNumber()
		if err := d.Decode(&ev); err != nil {
			t.Fatalf("invalid event %q: %v", out, err)
		}
		if ev.ID != "t-3-99" || ev.Data["offset"] != json.Number("99") || ev.Data["partition"] != json.Number("3") {
			t.Fatalf("bad envelope: %s", out)
		}
		if _, err := time.Parse(time.RFC3339, ev.Time); err != nil {
			t.Fatalf("bad time %q", ev.Time)
		}
		k, hasKey := ev.Data["key"]
		if hasKey != (key != nil) {
			t.Fatalf("key present = %v for key %q", hasKey, key)
		}
		if key != nil {
			want := repair(key)
			if kf == FormatBase64 {
				want = base64.StdEncoding.EncodeToString(key)
			}
			if k != want {
				t.Fatalf("key %q, want %q", k, want)
			}
		}
		v := ev.Data["value"]
		switch {
		case value == nil:
			if v != nil {
				t.Fatalf("tombstone value %v", v)
			}
		case vf == FormatBase64:
			if v != base64.StdEncoding.EncodeToString(value) {
				t.Fatalf("base64 value %v", v)
			}
		case vf == FormatJSON && !nonJSON:
			var want any
			d := json.NewDecoder(bytes.NewReader(value))
			d.UseNumber()
			if err := d.Decode(&want); err != nil {
				t.Fatalf("value %q embedded as JSON but does not parse: %v", value, err)
			}
			if a, b := mustJSON(t, v), mustJSON(t, want); a != b {
				t.Fatalf("value %s, want %s", a, b)
			}
		default:
			if vf == FormatJSON && utf8.Valid(value) && json.Valid(value) && len(bytes.TrimSpace(value)) > 0 {
				t.Fatalf("valid JSON value %q kept as a string", value)
			}
			if v != repair(value) {
				t.Fatalf("text value %q, want %q", v, repair(value))
			}
		}
		hs := ev.Data["headers"].(map[string]any)
		if hk == "x" {
			return
		}
		if arr, ok := hs[repair([]byte(hk))].([]any); !ok || len(arr) != 2 || arr[0] != repair(hv) || arr[1] != repair(key) {
			t.Fatalf("headers %v for key %q", hs, hk)
		}
		if names := headerNamesOf(t, out); len(names) != 2 {
			t.Fatalf("header names %q in %s, want each name once", names, out)
		}
	})
}

// headerNamesOf returns the member names of data.headers in the event, in
// order, repeats included (encoding/json keeps one member of a repeated
// name).
func headerNamesOf(t testing.TB, event []byte) []string {
	t.Helper()
	var ev struct {
		Data struct {
			Headers json.RawMessage `json:"headers"`
		} `json:"data"`
	}
	if err := json.Unmarshal(event, &ev); err != nil {
		t.Fatalf("invalid event %q: %v", event, err)
	}
	d := json.NewDecoder(bytes.NewReader(ev.Data.Headers))
	var names []string
	if _, err := d.Token(); err != nil { // {
		t.Fatal(err)
	}
	for d.More() {
		tok, err := d.Token()
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tok.(string))
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return names
}

// TestRepairedHeaderNamesGroupTogether: header names are repaired to U+FFFD
// per invalid byte, so "\xff", "\xfe" and "\ufffd" are one name in the
// event. They were grouped before the repair: the event held
// {"\ufffd":"a","\ufffd":"b"}, and every JSON reader kept one of the two
// values. Checked on both ways of grouping (up to fewHeaders headers, and
// past it).
func TestRepairedHeaderNamesGroupTogether(t *testing.T) {
	e := newEncoder("127.0.0.1:9092", "json", "text")
	for _, filler := range []int{0, fewHeaders} {
		hs := []kgo.RecordHeader{{Key: "\xff", Value: []byte("a")}, {Key: "ok", Value: []byte("o")}, {Key: "\xfe", Value: []byte("b")}, {Key: "\ufffd", Value: []byte("c")}, {Key: "x\xffy", Value: []byte("d")}}
		for i := range filler {
			hs = append(hs, kgo.RecordHeader{Key: "f" + strconv.Itoa(i), Value: []byte("v")})
		}
		got, _ := e.appendEvent(nil, e.meta("clicks"), rec(nil, []byte(`1`), hs...))
		names := headerNamesOf(t, got)
		if len(names) != 3+filler || names[0] != "\ufffd" || names[1] != "ok" || names[2] != "x\ufffdy" {
			t.Fatalf("%d headers: names %q, want \\ufffd, ok, x\\ufffdy and the fillers once each; event %s", len(hs), names, got)
		}
		var ev struct {
			Data struct {
				Headers map[string]any `json:"headers"`
			} `json:"data"`
		}
		if err := json.Unmarshal(got, &ev); err != nil {
			t.Fatal(err)
		}
		if vs, ok := ev.Data.Headers["\ufffd"].([]any); !ok || len(vs) != 3 || vs[0] != "a" || vs[1] != "b" || vs[2] != "c" {
			t.Fatalf("%d headers: \\ufffd = %v, want [a b c] (a header value is lost); event %s", len(hs), ev.Data.Headers["\ufffd"], got)
		}
	}
}

// TestManyHeadersGroupAsFewHeadersDo checks the map-based grouping of
// records of many headers against the scan of records of few, on records
// whose names repeat in every pattern (none, some, all, adjacent, far
// apart), some of them not UTF-8.
func TestManyHeadersGroupAsFewHeadersDo(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := []string{"\xff", "\xfe", "\ufffd", "a\"b"}
	for i := range 2000 {
		n := rng.IntN(fewHeaders + 1)
		names := 1 + rng.IntN(n+1)
		hs := make([]kgo.RecordHeader, n)
		for k := range hs {
			name := "h" + strconv.Itoa(rng.IntN(names))
			if rng.IntN(8) == 0 {
				name = pool[rng.IntN(len(pool))]
			}
			hs[k] = kgo.RecordHeader{Key: name, Value: []byte(strconv.Itoa(k))}
		}
		few := appendHeaders(nil, hs)
		grouped := hs
		if !validNames(grouped) {
			grouped = repairNames(grouped)
		}
		many := appendManyHeaders(nil, grouped)
		if !sameJSON(t, "{"+string(few)+"}", "{"+string(many)+"}") {
			t.Fatalf("record %d (%d headers over %d names):\nscan %s\n map %s", i, n, names, few, many)
		}
	}
}

// sameJSON reports whether two JSON objects have the same members, in the
// same order, with the same values.
func sameJSON(t testing.TB, a, b string) bool {
	t.Helper()
	members := func(s string) []string {
		d := json.NewDecoder(strings.NewReader(s))
		if _, err := d.Token(); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		var out []string
		for d.More() {
			tok, err := d.Token()
			if err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			var v any
			if err := d.Decode(&v); err != nil {
				t.Fatalf("%s: %v", s, err)
			}
			out = append(out, tok.(string)+"="+mustJSON(t, v))
		}
		return out
	}
	return slices.Equal(members(a), members(b))
}

// TestRecordOfManyHeaders encodes one record of 500,000 headers, a few of
// them repeated. A producer chooses how many headers a record has (500,000
// short ones fit Kafka's default 1 MiB batch compressed): grouping them by
// scanning took 8.9 s for 40,000 and grows with the square, so this test
// ran into go test's timeout before the map-based grouping.
func TestRecordOfManyHeaders(t *testing.T) {
	const n = 500_000
	hs := make([]kgo.RecordHeader, n)
	for i := range hs {
		name := "h" + strconv.Itoa(i)
		if i%100_000 == 99_999 {
			name = "dup"
		}
		hs[i] = kgo.RecordHeader{Key: name, Value: []byte(strconv.Itoa(i))}
	}
	e := newEncoder("127.0.0.1:9092", "json", "text")
	got, _ := e.appendEvent(nil, e.meta("clicks"), rec(nil, []byte(`1`), hs...))
	var ev struct {
		Data struct {
			Headers map[string]json.RawMessage `json:"headers"`
		} `json:"data"`
	}
	if err := json.Unmarshal(got, &ev); err != nil {
		t.Fatal(err)
	}
	if len(ev.Data.Headers) != n-5+1 {
		t.Fatalf("%d names, want %d", len(ev.Data.Headers), n-5+1)
	}
	if got := string(ev.Data.Headers["dup"]); got != `["99999","199999","299999","399999","499999"]` {
		t.Fatalf("dup = %s", got)
	}
}

func mustJSON(t testing.TB, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseOffset(t *testing.T) {
	tests := []struct {
		in   string
		kind int
		ms   int64
		bad  bool
	}{
		{"earliest", StartEarliest, 0, false},
		{"latest", StartLatest, 0, false},
		{"2022-06-23T02:49:51.589Z", StartTime, sampleTS, false},
		{"2022-06-23T10:49:51.589+08:00", StartTime, sampleTS, false},
		{"2022-06-23T02:49:51.5885Z", StartTime, sampleTS, false}, // rounded up to stay "at or after"
		{"Earliest", 0, 0, true},
		{"2022-06-23", 0, 0, true},
		{"", 0, 0, true},
	}
	for _, tt := range tests {
		kind, ms, err := ParseOffset(tt.in)
		if (err != nil) != tt.bad || kind != tt.kind || ms != tt.ms {
			t.Errorf("ParseOffset(%q) = %d, %d, %v", tt.in, kind, ms, err)
		}
	}
}

// FuzzParseOffset: never panics; an accepted time round-trips to within a
// millisecond.
func FuzzParseOffset(f *testing.F) {
	for _, s := range []string{"earliest", "latest", "2024-05-01T00:00:00Z", "2024-05-01T00:00:00.123456789+05:30", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, ms, err := ParseOffset(s)
		if err != nil || kind != StartTime {
			return
		}
		tm, perr := time.Parse(time.RFC3339Nano, s)
		if perr != nil {
			t.Fatalf("accepted %q that time.Parse rejects", s)
		}
		if d := ms - tm.UnixMilli(); d < 0 || d > 1 {
			t.Fatalf("%q gave %d ms, time is %d ms", s, ms, tm.UnixMilli())
		}
	})
}
