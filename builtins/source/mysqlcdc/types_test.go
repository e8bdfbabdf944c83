package mysqlcdc

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const typesColumns = `id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
 i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(65,30), dec3 DECIMAL(5,0),
 dt DATE, tm TIME, tm6 TIME(6), dtm DATETIME, dtm3 DATETIME(3), ts TIMESTAMP(6) NULL, yr YEAR,
 c CHAR(5), vc VARCHAR(300), tx TEXT, lat VARCHAR(20) CHARACTER SET latin1,
 bn BINARY(4), vb VARBINARY(10), bl BLOB,
 e ENUM('small','medium','large'), st SET('a','b','c'),
 b1 BIT(1), b12 BIT(12), js JSON, n INT NULL`

const typesValues = `(%d,
 -128, 255, -32768, 65535, -8388608, 16777215,
 -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
 1.5, -2.25e-300, -12345678.91, '12345678901234567890123456789012345.123456789012345678901234567891', -99999,
 '2024-02-29', '-838:59:59', '12:34:56.789012', '9999-12-31 23:59:59', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.123456', 2155,
 'ab', 'héllo "q" \n 日本 😀', REPEAT('t', 1000), 'café €',
 0x0102, 0x00ff10, 0xdeadbeef,
 'medium', 'a,c',
 b'1', b'101010101010', '{"a": [1, 2, {"b": null}], "c": "x"}', NULL),
 (%d, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
 '0000-00-00', '-01:02:03', '-00:00:01.250000', '0000-00-00 00:00:00', '1970-01-01 00:00:00.001', '1970-01-01 00:00:01', 0,
 '', '', '', '', '', '', '', '', '', b'0', b'0', '[]', NULL)`

// wantTypes is the after image of the first row (the second is checked
// against the snapshot only).
var wantTypes = map[string]string{
	"ti": `-128`, "tiu": `255`, "si": `-32768`, "siu": `65535`, "mi": `-8388608`, "miu": `16777215`,
	"i": `-2147483648`, "iu": `4294967295`, "bi": `-9223372036854775808`, "biu": `18446744073709551615`,
	"f": `1.5`, "d": `-2.25e-300`, "dec1": `"-12345678.91"`,
	"dec2": `"12345678901234567890123456789012345.123456789012345678901234567891"`, "dec3": `"-99999"`,
	"dt": `"2024-02-29"`, "tm": `"-838:59:59"`, "tm6": `"12:34:56.789012"`, "dtm": `"9999-12-31T23:59:59Z"`,
	"dtm3": `"2024-01-02T03:04:05.678Z"`, "ts": `"2024-01-02T03:04:05.123456Z"`, "yr": `2155`,
	"c": `"ab"`, "vc": `"héllo \"q\" \n 日本 😀"`, "tx": `"` + strings.Repeat("t", 1000) + `"`, "lat": `"café €"`,
	"bn": `"AQIAAA=="`, "vb": `"AP8Q"`, "bl": `"3q2+7w=="`,
	"e": `"medium"`, "st": `"a,c"`, "b1": `true`, "b12": `2730`,
	"js": `{"a":[1,2,{"b":null}],"c":"x"}`, "n": `null`,
}

// TestTypesRoundTrip writes every column type twice: before the start
// (read by the snapshot, as text) and after (read from the binlog). Both
// must render every value the same way, and as documented.
func TestTypesRoundTrip(t *testing.T) {
	f := newFixture(t)
	table := f.table("types", typesColumns)
	f.exec("INSERT INTO " + table + " VALUES " + fmt.Sprintf(typesValues, 1, 2))
	s := f.open(f.config([]string{table}, ""))
	c := collect(t, s)
	c.waitFor(t, "the snapshot", func(ch []change) bool { return len(ch) == 2 })
	f.exec("INSERT INTO " + table + " VALUES " + fmt.Sprintf(typesValues, 101, 102))
	got := c.waitFor(t, "the inserts", func(ch []change) bool { return len(ch) == 4 })
	raw := func(ch change) map[string]string {
		out := map[string]string{}
		for k, v := range ch.Data.After {
			b, _ := json.Marshal(v)
			out[k] = string(b)
		}
		delete(out, "id")
		return out
	}
	for k, w := range wantTypes {
		// Compare as JSON values (numbers decoded as json.Number keep
		// their digits).
		if g := raw(got[0])[k]; !sameJSON(g, w) {
			t.Errorf("snapshot %s = %s, want %s", k, g, w)
		}
		if g := raw(got[2])[k]; !sameJSON(g, w) {
			t.Errorf("stream %s = %s, want %s", k, g, w)
		}
	}
	if a, b := raw(got[1]), raw(got[3]); !reflect.DeepEqual(a, b) {
		for k := range a {
			if a[k] != b[k] {
				t.Errorf("second row %s: snapshot %s, stream %s", k, a[k], b[k])
			}
		}
	}
	if got[0].Data.Op != "r" || got[2].Data.Op != "c" {
		t.Fatalf("ops %s %s", got[0].Data.Op, got[2].Data.Op)
	}
}

// TestFloatKeepsValue: a FLOAT read by the snapshot keeps its stored
// 32-bit value, written as the stream writes it (the text protocol prints
// a FLOAT with 6 significant digits: 16777216 as 16777200, 1.2345678 as
// 1.23457). A FLOAT(M,D) prints D decimals as text; its value is the
// stored float too.
func TestFloatKeepsValue(t *testing.T) {
	f := newFixture(t)
	table := f.table("float", "id INT PRIMARY KEY, f FLOAT, fmd FLOAT(7,4)")
	f.exec("INSERT INTO " + table + " VALUES (1, 16777216, 0.1), (2, 1.2345678, -2.5), (3, -3.4028234e38, 0)")
	s := f.open(f.config([]string{table}, ""))
	c := collect(t, s)
	c.waitFor(t, "the snapshot", func(ch []change) bool { return len(ch) == 3 })
	f.exec("INSERT INTO " + table + " VALUES (4, 16777216, 0.1), (5, 1.2345678, -2.5), (6, -3.4028234e38, 0)")
	got := c.waitFor(t, "the inserts", func(ch []change) bool { return len(ch) == 6 })
	want := [][2]string{{"16777216", "0.1"}, {"1.2345678", "-2.5"}, {"-3.4028235e+38", "0"}}
	for i, ch := range got {
		for j, col := range []string{"f", "fmd"} {
			b, _ := json.Marshal(ch.Data.After[col])
			if w := want[i%3][j]; !sameJSON(string(b), w) {
				t.Errorf("row %v (op %s): %s = %s, want %s", ch.Data.After["id"], ch.Data.Op, col, b, w)
			}
		}
	}
}

func sameJSON(a, b string) bool {
	var x, y any
	dx := json.NewDecoder(strings.NewReader(a))
	dx.UseNumber()
	dy := json.NewDecoder(strings.NewReader(b))
	dy.UseNumber()
	if dx.Decode(&x) != nil || dy.Decode(&y) != nil {
		return a == b
	}
	return reflect.DeepEqual(x, y)
}
