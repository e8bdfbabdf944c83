package mysqlcdc

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/testkit"
)

// corruptingProxy stands between a client and MariaDB. It passes the
// client's bytes on untouched and reads the server's as protocol packets:
// in a WRITE_ROWS event holding marker as a string value, it sets the
// value's 1-byte length to 255, past the end of the event (or, with
// retype, sets the event's type), and recomputes the event's CRC32, so
// that the event arrives with a valid checksum but cannot be decoded.
type corruptingProxy struct {
	t        testing.TB
	ln       net.Listener
	upstream string
	marker   []byte
	retype   binlog.EventType // set before the first connection; 0: none
	// checksumAlg, set before the first connection, replaces the checksum
	// algorithm every FORMAT_DESCRIPTION event announces; 0: none.
	checksumAlg byte

	dumps     atomic.Int32 // COM_BINLOG_DUMP commands sent through it
	corrupted atomic.Int32 // events corrupted
	// While killSchema, a connection sending a query of
	// information_schema.COLUMNS (the source reading a table's columns) is
	// closed instead; killed counts them.
	killSchema atomic.Bool
	killed     atomic.Int32
	// While cutRotate, the next rotate event the server writes in a file
	// (not one it makes up at the start of a dump) loses its file name:
	// a rotate event that cannot be parsed. It ends cutRotate.
	cutRotate atomic.Bool

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
	wg     sync.WaitGroup
}

// comBinlogDumpCmd is the COM_BINLOG_DUMP command byte.
const comBinlogDumpCmd = 0x12

func startCorruptingProxy(t testing.TB, upstream, marker string) *corruptingProxy {
	t.Helper()
	if len(marker) > 250 {
		t.Fatal("the marker must fit a 1-byte length")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &corruptingProxy{t: t, ln: ln, upstream: upstream, marker: []byte(marker)}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *corruptingProxy) addr() string { return p.ln.Addr().String() }

// stopped waits for the source to fail, or to dump the binlog more than
// dumps times (a reconnection: the bug), and returns what it delivered
// and its error, which must be task-permanent.
func stopped(t *testing.T, c *collector, p *corruptingProxy, dumps int32) ([]change, error) {
	t.Helper()
	var got []change
	var err error
	testkit.WaitFor(t, "the source to fail or reconnect", func() bool {
		got, err = c.snapshot()
		return err != nil || p.dumps.Load() > dumps
	})
	if err == nil {
		t.Fatalf("the source reconnected instead of failing (%d dumps)", p.dumps.Load())
	}
	if p.corrupted.Load() == 0 {
		t.Fatal("the proxy changed no event")
	}
	if c := component.ClassOf(err); c != component.ClassTaskPermanent {
		t.Fatalf("error %v is %s, want task_permanent", err, c)
	}
	return got, err
}

// proxied starts a corrupting proxy in front of the fixture's server and
// returns it with two source configs of tables (without a snapshot): one
// reading through the proxy, one reading the server directly.
func (f *fixture) proxied(t *testing.T, tables []string, marker string) (p *corruptingProxy, via, direct string) {
	t.Helper()
	mc, err := mysql.ParseDSN(f.dsn)
	if err != nil {
		t.Fatal(err)
	}
	p = startCorruptingProxy(t, mc.Addr, marker)
	direct = f.config(tables, "snapshot = false\n")
	via = strings.Replace(direct, "tcp("+mc.Addr+")", "tcp("+p.addr()+")", 1)
	if via == direct {
		t.Fatalf("no server address to replace in %s", direct)
	}
	return p, via, direct
}

// close stops accepting, ends every connection and waits for its copiers.
func (p *corruptingProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// track keeps c for close; false (c closed) once close began.
func (p *corruptingProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *corruptingProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.upstream)
		if err != nil {
			client.Close()
			continue
		}
		if !p.track(client) || !p.track(server) {
			client.Close()
			server.Close()
			continue
		}
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pipe(server, client, p.watchClient)
			client.Close()
			server.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.pipe(client, server, p.rewriteServer)
			client.Close()
			server.Close()
		}()
	}
}

// pipe copies packets from src to dst, handing each payload to see first
// (which may change it, or end the connection: false).
func (p *corruptingProxy) pipe(dst, src net.Conn, see func(seq byte, payload []byte) ([]byte, bool)) {
	br := bufio.NewReader(src)
	var hdr [4]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		if cap(payload) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return
		}
		out := payload
		if n < 0xffffff { // a whole packet (not a piece of a larger one)
			var ok bool
			if out, ok = see(hdr[3], payload); !ok {
				return
			}
			hdr[0], hdr[1], hdr[2] = byte(len(out)), byte(len(out)>>8), byte(len(out)>>16)
		}
		if _, err := dst.Write(hdr[:]); err != nil {
			return
		}
		if _, err := dst.Write(out); err != nil {
			return
		}
	}
}

func (p *corruptingProxy) watchClient(seq byte, payload []byte) ([]byte, bool) {
	if seq == 0 && len(payload) > 0 && payload[0] == comBinlogDumpCmd {
		p.dumps.Add(1)
	}
	if p.killSchema.Load() && bytes.Contains(payload, []byte("information_schema.COLUMNS")) {
		p.killed.Add(1)
		return nil, false
	}
	return payload, true
}

// rewriteServer corrupts a binlog WRITE_ROWS event packet (v1 or v2) holding the
// marker: 0x00, then the event (19-byte header: timestamp 4, type 1,
// server id 4, size 4, next position 4, flags 2; the body; the CRC32 of
// all before it).
func (p *corruptingProxy) rewriteServer(_ byte, payload []byte) ([]byte, bool) {
	return p.rewrite(payload), true
}

func (p *corruptingProxy) rewrite(payload []byte) []byte {
	const hdrLen = 19
	if len(payload) < 1+hdrLen+4 || payload[0] != 0x00 {
		return payload
	}
	ev := payload[1:]
	switch binlog.EventType(ev[4]) {
	case binlog.RotateEvent:
		// A rotate written in a file has its end there as next position;
		// the ones made up for a dump have 0. Its body: the next file's
		// position (8 bytes), then its name, then the checksum.
		if binary.LittleEndian.Uint32(ev[13:17]) == 0 || len(ev) <= hdrLen+8+4 || !p.cutRotate.CompareAndSwap(true, false) {
			return payload
		}
		ev = append(ev[:hdrLen+8], 0, 0, 0, 0)
		binary.LittleEndian.PutUint32(ev[9:13], uint32(len(ev)))
		binary.LittleEndian.PutUint32(ev[len(ev)-4:], crc32.ChecksumIEEE(ev[:len(ev)-4]))
		p.corrupted.Add(1)
		return payload[:1+len(ev)]
	case binlog.WriteRowsEventV1, binlog.WriteRowsEventV2: // MariaDB writes v1
	case binlog.FormatDescriptionEvent:
		// The algorithm byte comes before the event's 4-byte checksum,
		// left as it is: an algorithm the decoder does not know has it
		// check none.
		if p.checksumAlg != 0 {
			ev[len(ev)-5] = p.checksumAlg
			p.corrupted.Add(1)
		}
		return payload
	default:
		return payload
	}
	if int(binary.LittleEndian.Uint32(ev[9:13])) != len(ev) {
		return payload
	}
	i := bytes.Index(ev[hdrLen:len(ev)-4], p.marker)
	if i < 1 {
		return payload
	}
	i += hdrLen
	if int(ev[i-1]) != len(p.marker) {
		return payload // not a string value with a 1-byte length
	}
	if p.retype != 0 {
		ev[4] = byte(p.retype)
	} else {
		ev[i-1] = 0xff
	}
	binary.LittleEndian.PutUint32(ev[len(ev)-4:], crc32.ChecksumIEEE(ev[:len(ev)-4]))
	p.corrupted.Add(1)
	return payload
}

// binlogPosRE finds the binlog position an undecodable event's error names.
var binlogPosRE = regexp.MustCompile(`event at binlog position ([^ :]+):([0-9]+)`)

// checkUndecodable checks the error an undecodable WRITE_ROWS event of
// table stops the source with: task-permanent, and saying where, what and
// what to do; the position it names is a rows event's on the server.
func checkUndecodable(t *testing.T, db *sql.DB, msg, table string) {
	t.Helper()
	for _, want := range []string{
		"cannot decode the WRITE_ROWS event", "table " + table, "malformed",
		"checkpoint stays before this transaction", "nothing is skipped",
		"SHOW CREATE TABLE " + table, "resumes from the same place",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("the error does not say %q: %s", want, msg)
		}
	}
	m := binlogPosRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("the error names no binlog file:position: %s", msg)
	}
	pos, _ := strconv.ParseUint(m[2], 10, 32)
	var logName, evType, info string
	var at, serverID, end uint64
	err := db.QueryRow(fmt.Sprintf("SHOW BINLOG EVENTS IN '%s' FROM %d LIMIT 1", m[1], pos)).
		Scan(&logName, &at, &evType, &serverID, &end, &info)
	if err != nil {
		t.Fatalf("reading the event at %s:%d: %v", m[1], pos, err)
	}
	if at != pos || !strings.Contains(strings.ToLower(evType), "write_rows") {
		t.Errorf("the error names %s:%d, where the server has a %s event at %d", m[1], pos, evType, at)
	}
}

// TestUndecodableEventStopsTheTask: a checksum-valid event whose row the
// decoder cannot read (a proxy corrupts it on the way) stops the source
// with a task-permanent error that says what failed, where and what to do,
// instead of reconnecting and failing at the same place for ever (emitting
// the transaction's earlier rows again each round). Nothing is lost: read
// from the same checkpoint without the proxy, the source delivers the
// failing row and what follows it, and nothing before again.
func TestUndecodableEventStopsTheTask(t *testing.T) {
	f := newFixture(t)
	table := f.table("undecodable", "id INT PRIMARY KEY, v VARCHAR(40)")
	marker := fmt.Sprintf("corrupt-me-%08d", rand.IntN(1e8)) // another run's rows stay whole
	proxy, via, direct := f.proxied(t, []string{table}, marker)

	s := f.open(via)
	c := collect(t, s)
	f.exec("INSERT INTO "+table+" VALUES (1, ?)", "ok-1")
	c.waitFor(t, "ok-1", func(ch []change) bool { return len(ch) >= 1 })
	dumps := proxy.dumps.Load()
	f.exec("INSERT INTO "+table+" VALUES (2, ?)", marker)
	f.exec("INSERT INTO "+table+" VALUES (3, ?)", "ok-2")
	got, err := stopped(t, c, proxy, dumps)
	t.Logf("the source failed: %v", err)
	checkUndecodable(t, f.db, err.Error(), table)
	if n := proxy.dumps.Load(); n != dumps {
		t.Errorf("the source dumped the binlog %d more times after the failure", n-dumps)
	}
	if len(got) != 1 || got[0].Data.After["v"] != "ok-1" {
		t.Fatalf("before the failure: %+v, want ok-1 once", got)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	proxy.close()

	// Directly from the same checkpoint: the failing row and the next.
	s2 := f.open(direct)
	c2 := collect(t, s2)
	got = c2.waitFor(t, "the rows after ok-1", func(ch []change) bool { return len(ch) >= 2 })
	if got[0].Data.After["v"] != marker || got[1].Data.After["v"] != "ok-2" {
		t.Fatalf("after the restart: %v then %v, want %s then ok-2", got[0].Data.After, got[1].Data.After, marker)
	}
}

// TestUndecodableEventProcess: in a sluice process, the source's error at
// an undecodable event fails the task, which logs the error, and the
// process exits with an error status.
func TestUndecodableEventProcess(t *testing.T) {
	f := newFixture(t)
	table := f.table("undecodable_proc", "id INT PRIMARY KEY, v VARCHAR(40)")
	marker := fmt.Sprintf("corrupt-me-%08d", rand.IntN(1e8))
	proxy, src, _ := f.proxied(t, []string{table}, marker)
	dir := t.TempDir()
	task := filepath.Join(dir, "undecodable.toml")
	if err := os.WriteFile(task, []byte(fmt.Sprintf("name = \"undecodable\"\n[source]\ntype = \"mysql_cdc\"\n%s\n[sink]\ntype = \"stdout\"\n", src)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--log-format", "json", "--state-dir", filepath.Join(dir, "state"), task)
	// The source opens (reading the server's position: snapshot = false)
	// before the task runs: the inserts after it are streamed.
	p.WaitLog(t, "task running")
	f.exec("INSERT INTO "+table+" VALUES (1, ?)", "ok-1")
	p.WaitLog(t, "ok-1")
	dumps := proxy.dumps.Load()
	f.exec("INSERT INTO "+table+" VALUES (2, ?)", marker)
	testkit.WaitFor(t, "sluice to exit or reconnect", func() bool { return p.Exited() || proxy.dumps.Load() > dumps })
	if !p.Exited() {
		t.Fatal("the source reconnected after the undecodable event instead of failing the task")
	}
	if p.Err() == nil {
		t.Fatal("sluice exited with status 0")
	}
	for _, want := range []string{"task failed", "cannot decode the WRITE_ROWS event", "SHOW CREATE TABLE " + table} {
		if !p.LogHas(want) {
			t.Errorf("the log does not say %q", want)
		}
	}
}

// TestUnsupportedEventStopsTheTask: an event of a type the source cannot
// read (a compressed rows event: the proxy retypes a row's event) stops
// the source with a task-permanent error that says which setting to
// change, instead of a reconnection that meets it again.
func TestUnsupportedEventStopsTheTask(t *testing.T) {
	f := newFixture(t)
	table := f.table("unsupported", "id INT PRIMARY KEY, v VARCHAR(40)")
	marker := fmt.Sprintf("compress-me-%08d", rand.IntN(1e8))
	proxy, src, _ := f.proxied(t, []string{table}, marker)
	proxy.retype = binlog.WriteRowsCompressed
	s := f.open(src)
	c := collect(t, s)
	f.exec("INSERT INTO "+table+" VALUES (1, ?)", "ok-1")
	c.waitFor(t, "ok-1", func(ch []change) bool { return len(ch) >= 1 }) // the stream is up
	dumps := proxy.dumps.Load()
	f.exec("INSERT INTO "+table+" VALUES (2, ?)", marker)
	_, err := stopped(t, c, proxy, dumps)
	wantMsg(t, err, "compressed binlog events are not supported", "log_bin_compress = OFF", "stops here again", "remove the checkpoint")
	if binlogPosRE.FindStringSubmatch(err.Error()) == nil {
		t.Errorf("the error names no binlog file:position: %v", err)
	}
}

// streamingThroughProxy starts a source on a new table (named after
// name) reading through a proxy that corrupts nothing until told, and
// returns once the table's first row (ok-1) has arrived: the stream is up.
func streamingThroughProxy(t *testing.T, name string) (*fixture, string, *corruptingProxy, *collector) {
	t.Helper()
	f := newFixture(t)
	table := f.table(name, "id INT PRIMARY KEY, v VARCHAR(40)")
	proxy, src, _ := f.proxied(t, []string{table}, "no marker: nothing corrupted")
	c := collect(t, f.open(src))
	f.exec("INSERT INTO "+table+" VALUES (1, ?)", "ok-1")
	c.waitFor(t, "ok-1", func(ch []change) bool { return len(ch) >= 1 })
	return f, table, proxy, c
}

// TestSchemaReadFailureKeepsTheTable: reading a table's columns again
// (after DDL in the stream) fails once, as a cut connection does; the
// source reconnects and the table's changes after it still arrive. The
// table id used to stay known from the failed attempt, untracked, and its
// table map, read again after the reconnection, matched it: every change
// of the table was then skipped without a word.
func TestSchemaReadFailureKeepsTheTable(t *testing.T) {
	f, table, proxy, c := streamingThroughProxy(t, "schemafail")
	proxy.killSchema.Store(true)
	f.table("schemafail_ddl", "id INT") // DDL in the stream: the columns are read again
	f.exec("INSERT INTO "+table+" VALUES (2, ?)", "ok-2")
	testkit.WaitFor(t, "the source to read the columns again", func() bool { return proxy.killed.Load() > 0 })
	proxy.killSchema.Store(false)
	got := c.waitFor(t, "ok-2", func(ch []change) bool { return len(ch) >= 2 })
	if got[len(got)-1].Data.After["v"] != "ok-2" {
		t.Fatalf("changes: %+v", got)
	}
}

// TestUnparsableRotateStopsTheTask: a rotate event (FLUSH BINARY LOGS
// writes one) that cannot be parsed stops the source, naming the event and
// where it is. The stream's reader used to return the parse error itself,
// which read as a broken connection: the source reconnected, and would
// meet the same event again for ever.
func TestUnparsableRotateStopsTheTask(t *testing.T) {
	f, _, proxy, c := streamingThroughProxy(t, "rotate")
	dumps := proxy.dumps.Load()
	proxy.cutRotate.Store(true)
	f.exec("FLUSH BINARY LOGS")
	_, err := stopped(t, c, proxy, dumps)
	wantMsg(t, err, "cannot decode the ROTATE event at binlog position", "rotate event without a file name", "nothing is skipped")
}

// TestUnsupportedChecksumStopsTheTask: a binlog whose checksum algorithm
// the decoder does not know (the proxy changes what the format description
// announces) stops the source with a task-permanent error naming the
// setting, where it used to be taken for a broken stream and retried for
// ever.
func TestUnsupportedChecksumStopsTheTask(t *testing.T) {
	f := newFixture(t)
	table := f.table("checksum_alg", "id INT PRIMARY KEY, v VARCHAR(40)")
	proxy, src, _ := f.proxied(t, []string{table}, "unused-marker")
	proxy.checksumAlg = 7
	s := f.open(src)
	c := collect(t, s)
	f.exec("INSERT INTO "+table+" VALUES (1, ?)", "after the format description")
	// Two dumps are the source's: Open asks for the stream to check the
	// position (reading only its first event), then the reader; a third
	// is a reconnection.
	_, err := stopped(t, c, proxy, 2)
	wantMsg(t, err, "binlog checksum algorithm 7 is not supported", "set binlog_checksum to CRC32 or NONE", "remove the checkpoint")
}

// TestUnreadableRowsOfAnotherTableSkipped: a rows event the source cannot
// read (compressed: the proxy retypes it; or undecodable: the proxy
// corrupts a row) of a table it does not capture is skipped like the
// table's other events, and the stream goes on: only a captured table's
// unreadable rows stop the task.
func TestUnreadableRowsOfAnotherTableSkipped(t *testing.T) {
	t.Run("compressed", func(t *testing.T) { unreadableRowsOfAnotherTable(t, binlog.WriteRowsCompressed) })
	t.Run("undecodable", func(t *testing.T) { unreadableRowsOfAnotherTable(t, 0) })
}

func unreadableRowsOfAnotherTable(t *testing.T, retype binlog.EventType) {
	f := newFixture(t)
	captured := f.table("captured", "id INT PRIMARY KEY, v VARCHAR(40)")
	other := f.table("not_captured", "id INT PRIMARY KEY, v VARCHAR(40)")
	marker := fmt.Sprintf("compress-me-%08d", rand.IntN(1e8))
	proxy, src, _ := f.proxied(t, []string{captured}, marker)
	proxy.retype = retype
	s := f.open(src)
	c := collect(t, s)
	f.exec("INSERT INTO "+other+" VALUES (1, ?)", marker)
	f.exec("INSERT INTO "+captured+" VALUES (1, ?)", "after")
	got := c.waitFor(t, "the captured table's row after the unreadable one", func(ch []change) bool { return len(ch) >= 1 })
	if proxy.corrupted.Load() == 0 {
		t.Fatal("the proxy retyped no event")
	}
	if len(got) != 1 || got[0].Data.After["v"] != "after" {
		t.Fatalf("changes: %+v, want the captured table's one row", got)
	}
	if _, err := c.snapshot(); err != nil {
		t.Fatalf("the source failed: %v", err)
	}
	// Open's check of the position and the reader's stream: a third dump
	// would be a reconnection.
	if n := proxy.dumps.Load(); n != 2 {
		t.Errorf("the source dumped the binlog %d times, want 2 (no reconnection)", n)
	}
}
