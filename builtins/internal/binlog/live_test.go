package binlog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// live connects to the machine's MariaDB (testkit.MariaDB) for the tests
// that read a real binlog.
type live struct {
	db  *sql.DB
	cfg Config
}

func newLive(t testing.TB) *live {
	t.Helper()
	dsn := testkit.MariaDB(t)
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	mc.Params = map[string]string{"time_zone": "'+00:00'", "sql_mode": "''"}
	db, err := sql.Open("mysql", mc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1) // the session settings above hold for every statement
	t.Cleanup(func() { db.Close() })
	var logBin int
	if err := db.QueryRow("SELECT @@log_bin").Scan(&logBin); err != nil {
		t.Fatal(err)
	}
	if logBin != 1 {
		t.Skip("the binlog is off on the test server (.ci/services turns it on)")
	}
	return &live{db: db, cfg: Config{Addr: mc.Addr, User: mc.User, Password: mc.Passwd}}
}

func (l *live) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := l.db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (l *live) gtidPos(t testing.TB) string {
	t.Helper()
	var pos string
	if err := l.db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&pos); err != nil {
		t.Fatal(err)
	}
	return pos
}

// capture reads the binlog from the GTID position from to its end and
// returns copies of every event.
func (l *live) capture(t testing.TB, from string) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	c, err := Dial(ctx, l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.StartDump(DumpOptions{ServerID: uint32(100000 + os.Getpid()%100000), GTID: from, UseGTID: true, NonBlocking: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []Event
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		raw := append([]byte(nil), ev.Raw...)
		ev.Raw = raw
		ev.Body = raw[HeaderLen : HeaderLen+len(ev.Body)]
		out = append(out, ev)
	}
}

// image is one decoded row image: column name to JSON value.
type image map[string]any

type change struct {
	kind          RowsKind
	before, after image
}

// decodeTable decodes the row changes of schema.table among events,
// applying ts to its table maps.
func decodeTable(t testing.TB, events []Event, ts *TableSchema) []change {
	t.Helper()
	var dec Decoder
	dec.ChecksumAlg = ChecksumCRC32
	maps := map[uint64]*TableMap{}
	var out []change
	for _, ev := range events {
		switch {
		case ev.Type == FormatDescriptionEvent:
			if _, err := dec.Decode(ev.Raw); err != nil {
				t.Fatal(err)
			}
		case ev.Type == TableMapEvent:
			tm, err := dec.ParseTableMap(ev.Body)
			if err != nil {
				t.Fatal(err)
			}
			if tm.Schema == ts.Schema && tm.Table == ts.Table {
				if err := ts.Apply(tm); err != nil {
					t.Fatal(err)
				}
				maps[tm.TableID] = tm
			}
		case ev.Type.IsRows():
			var re RowsEvent
			if err := dec.ParseRows(ev.Header, ev.Body, &re); err != nil {
				t.Fatal(err)
			}
			tm := maps[re.TableID]
			if tm == nil {
				continue
			}
			cells := make([]Cell, re.NCols)
			for re.More() {
				ch := change{kind: re.Kind}
				img := func(after bool) image {
					if err := re.NextImage(tm, after, cells); err != nil {
						t.Fatal(err)
					}
					m := image{}
					for i, c := range cells {
						if !c.Present {
							continue
						}
						if c.Null {
							m[tm.Columns[i].Name] = nil
							continue
						}
						js, err := AppendJSON(nil, &tm.Columns[i], c.Raw)
						if err != nil {
							t.Fatalf("column %s: %v", tm.Columns[i].Name, err)
						}
						var v any
						if err := json.Unmarshal(js, &v); err != nil {
							t.Fatalf("column %s: %s is not JSON: %v", tm.Columns[i].Name, js, err)
						}
						m[tm.Columns[i].Name] = v
					}
					return m
				}
				switch re.Kind {
				case Insert:
					ch.after = img(false)
				case Delete:
					ch.before = img(false)
				case Update:
					ch.before = img(false)
					ch.after = img(true)
				}
				out = append(out, ch)
			}
		}
	}
	return out
}

const typesTable = `CREATE TABLE %s (
 id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED,
 i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 f FLOAT, d DOUBLE, dec1 DECIMAL(10,2), dec2 DECIMAL(65,30), dec3 DECIMAL(5,0),
 dt DATE, tm TIME, tm6 TIME(6), dtm DATETIME, dtm3 DATETIME(3), ts TIMESTAMP(6) NULL, yr YEAR,
 c CHAR(5), vc VARCHAR(300), tx TEXT, lat VARCHAR(20) CHARACTER SET latin1,
 bn BINARY(4), vb VARBINARY(10), bl BLOB,
 e ENUM('small','medium','large'), st SET('a','b','c'),
 b1 BIT(1), b12 BIT(12), js JSON, n INT NULL
)`

const typesInsert = `INSERT INTO %s VALUES (1,
 -128, 255, -32768, 65535, -8388608, 16777215,
 -2147483648, 4294967295, -9223372036854775808, 18446744073709551615,
 1.5, -2.25e-300, -12345678.91, '12345678901234567890123456789012345.123456789012345678901234567891', -99999,
 '2024-02-29', '-838:59:59', '12:34:56.789012', '9999-12-31 23:59:59', '2024-01-02 03:04:05.678', '2024-01-02 03:04:05.123456', 2155,
 'ab', 'héllo "q" \n 日本 😀', REPEAT('t', 1000), 'café €',
 0x0102, 0x00ff10, 0xdeadbeef,
 'medium', 'a,c',
 b'1', b'101010101010', '{"a":[1,2,{"b":null}],"c":"x"}', NULL),
 (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
 '0000-00-00', '-01:02:03', '-00:00:01.250000', '0000-00-00 00:00:00', '1970-01-01 00:00:00.001', '1970-01-01 00:00:01', 0,
 '', '', '', '', '', '', '', '', '', b'0', b'0', '[]', NULL)`

var wantRow1 = image{
	"id": 1.0, "ti": -128.0, "tiu": 255.0, "si": -32768.0, "siu": 65535.0, "mi": -8388608.0, "miu": 16777215.0,
	"i": -2147483648.0, "iu": 4294967295.0, "bi": -9223372036854775808.0, "biu": 18446744073709551615.0,
	"f": 1.5, "d": -2.25e-300, "dec1": "-12345678.91", "dec2": "12345678901234567890123456789012345.123456789012345678901234567891", "dec3": "-99999",
	"dt": "2024-02-29", "tm": "-838:59:59", "tm6": "12:34:56.789012", "dtm": "9999-12-31T23:59:59Z", "dtm3": "2024-01-02T03:04:05.678Z",
	"ts": "2024-01-02T03:04:05.123456Z", "yr": 2155.0,
	"c": "ab", "vc": "héllo \"q\" \n 日本 😀", "tx": strings.Repeat("t", 1000), "lat": "café €",
	"bn": "AQIAAA==", "vb": "AP8Q", "bl": "3q2+7w==",
	"e": "medium", "st": "a,c", "b1": true, "b12": 2730.0,
	"js": map[string]any{"a": []any{1.0, 2.0, map[string]any{"b": nil}}, "c": "x"}, "n": nil,
}

var wantRow2 = image{
	"id": 2.0, "ti": 0.0, "tiu": 0.0, "si": 0.0, "siu": 0.0, "mi": 0.0, "miu": 0.0,
	"i": 0.0, "iu": 0.0, "bi": 0.0, "biu": 0.0, "f": 0.0, "d": 0.0, "dec1": "0.00",
	"dec2": "0.000000000000000000000000000000", "dec3": "0",
	"dt": nil, "tm": "-01:02:03", "tm6": "-00:00:01.250000", "dtm": nil, "dtm3": "1970-01-01T00:00:00.001Z",
	"ts": "1970-01-01T00:00:01.000000Z", "yr": 0.0,
	"c": "", "vc": "", "tx": "", "lat": "", "bn": "AAAAAA==", "vb": "", "bl": "",
	"e": "", "st": "", "b1": false, "b12": 0.0, "js": []any{}, "n": nil,
}

// TestLiveTypes writes every column type to the real server and reads it
// back from the binlog: inserts, an update, a delete.
func TestLiveTypes(t *testing.T) {
	l := newLive(t)
	table := testkit.Unique(t, "bl")
	l.exec(t, fmt.Sprintf(typesTable, table))
	t.Cleanup(func() { l.db.Exec("DROP TABLE IF EXISTS " + table) })
	from := l.gtidPos(t)
	l.exec(t, fmt.Sprintf(typesInsert, table))
	l.exec(t, "UPDATE "+table+" SET vc = 'changed', n = 7 WHERE id = 1")
	l.exec(t, "DELETE FROM "+table+" WHERE id = 2")
	// A rolled-back transaction leaves nothing in the binlog.
	tx, err := l.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("INSERT INTO " + table + " (id) VALUES (3)"); err != nil {
		t.Fatal(err)
	}
	tx.Rollback()
	// A DDL statement (a standalone GTID group with a QUERY event), for
	// the fuzz seed.
	l.exec(t, "ALTER TABLE "+table+" COMMENT 'seed'")

	ts, err := LoadSchema(context.Background(), l.db, "test", table)
	if err != nil || ts == nil {
		t.Fatalf("LoadSchema: %v, %v", ts, err)
	}
	if !reflect.DeepEqual(ts.Key, []int{0}) {
		t.Fatalf("key %v", ts.Key)
	}
	events := l.capture(t, from)
	got := decodeTable(t, events, ts)
	if len(got) != 4 {
		t.Fatalf("%d changes, want 4: %+v", len(got), got)
	}
	check := func(what string, got, want image) {
		t.Helper()
		for k, w := range want {
			if g, ok := got[k]; !ok || !reflect.DeepEqual(g, w) {
				t.Errorf("%s %s = %#v, want %#v", what, k, g, w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s has %d columns, want %d", what, len(got), len(want))
		}
	}
	check("insert 1", got[0].after, wantRow1)
	check("insert 2", got[1].after, wantRow2)
	if got[2].kind != Update {
		t.Fatalf("third change is %v", got[2].kind)
	}
	check("update before", got[2].before, wantRow1)
	after := image{}
	for k, v := range wantRow1 {
		after[k] = v
	}
	after["vc"], after["n"] = "changed", 7.0
	check("update after", got[2].after, after)
	if got[3].kind != Delete {
		t.Fatalf("fourth change is %v", got[3].kind)
	}
	check("delete", got[3].before, wantRow2)

	if os.Getenv("SLUICE_CAPTURE_FUZZ") == "1" {
		writeSeed(t, "FuzzStream", "types", seedStream(events, table))
	}
}

// seedStream keeps, of a captured stream, the format description and the
// events of table's transactions: a seed for FuzzStream, after its options
// byte (1: checksums recomputed, so mutations reach the parsers).
func seedStream(events []Event, table string) []byte {
	out := []byte{1}
	var ids = map[uint64]bool{}
	var dec Decoder
	for _, ev := range events {
		switch {
		case ev.Type == FormatDescriptionEvent:
			dec.Decode(ev.Raw)
			out = append(out, ev.Raw...)
		case ev.Type == TableMapEvent:
			tm, err := dec.ParseTableMap(ev.Body)
			if err == nil && tm.Table == table {
				ids[tm.TableID] = true
				out = append(out, ev.Raw...)
			}
		case ev.Type.IsRows():
			var re RowsEvent
			if dec.ParseRows(ev.Header, ev.Body, &re) == nil && ids[re.TableID] {
				out = append(out, ev.Raw...)
			}
		case ev.Type == MariaGTIDEvent || ev.Type == XIDEvent || ev.Type == RotateEvent || ev.Type == MariaGTIDListEvent || ev.Type == QueryEvent:
			out = append(out, ev.Raw...)
		}
	}
	return out
}

// writeSeed writes data as a seed of the fuzz target (go test fuzz v1).
func writeSeed(t testing.TB, target, name string, data []byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s/%s (%d bytes)", dir, name, len(data))
}

func TestLiveServerErrors(t *testing.T) {
	l := newLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	// A user with a password: the right one is accepted (the scramble is
	// right), a wrong one refused.
	u := testkit.Unique(t, "u")
	user := "sl_" + u[len(u)-20:] // user names are at most 80 characters, older servers 32
	l.exec(t, "CREATE USER '"+user+"'@'%' IDENTIFIED BY 'right pass'")
	t.Cleanup(func() { l.db.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })
	good := l.cfg
	good.User, good.Password = user, "right pass"
	c, err := Dial(ctx, good)
	if err != nil {
		t.Fatalf("Dial with the right password: %v", err)
	}
	c.Close()
	bad := good
	bad.Password = "wrong"
	if _, err := Dial(ctx, bad); !IsAccessDenied(err) {
		t.Fatalf("Dial with a wrong password: %v, want access denied", err)
	}
	var se *ServerError
	// A GTID position the server never had.
	c, err = Dial(ctx, l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.StartDump(DumpOptions{ServerID: testkit.ReplicaID(), GTID: "0-1-999999999999", Heartbeat: time.Second})
	if err == nil {
		_, err = s.Next()
	}
	if !errors.As(err, &se) || se.Code != ErMasterFatalReading {
		t.Fatalf("dump from a GTID the server never had: %v, want error %d", err, ErMasterFatalReading)
	}
}

// TestLiveCaptureGreeting records the server's greeting as a FuzzGreeting
// seed (SLUICE_CAPTURE_FUZZ=1) and checks that it parses.
func TestLiveCaptureGreeting(t *testing.T) {
	l := newLive(t)
	nc, err := net.DialTimeout("tcp", l.cfg.Addr, testkit.Scale(testkit.DefaultWait))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p, err := newPacketConn(nc).read()
	if err != nil {
		t.Fatal(err)
	}
	c := &Conn{}
	if _, err := c.parseGreeting(p); err != nil || !c.MariaDB {
		t.Fatalf("greeting %q: %v (MariaDB %v)", p, err, c.MariaDB)
	}
	if os.Getenv("SLUICE_CAPTURE_FUZZ") == "1" {
		writeSeed(t, "FuzzGreeting", "mariadb", p)
	}
}

// TestLiveHeartbeat: an idle stream receives heartbeat events, checksummed
// like every other event, and a dump asked for blocking mode keeps the
// connection open between them.
func TestLiveHeartbeat(t *testing.T) {
	l := newLive(t)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	c, err := Dial(ctx, l.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.StartDump(DumpOptions{ServerID: uint32(300000 + os.Getpid()%100000), GTID: l.gtidPos(t), UseGTID: true, Heartbeat: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	for {
		ev, err := s.Next()
		if err != nil {
			t.Fatalf("no heartbeat before the error: %v", err)
		}
		if ev.Type == HeartbeatEvent || ev.Type == HeartbeatEventV2 {
			if ev.LogPos == 0 || s.File == "" {
				t.Fatalf("heartbeat at %s:%d", s.File, ev.LogPos)
			}
			return
		}
	}
}
