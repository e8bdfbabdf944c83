package mysqlcdc

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/runtime/testkit"
)

func TestMain(m *testing.M) {
	code := m.Run()
	dropBenchTable()
	testkit.Cleanup()
	os.Exit(code)
}

// outputChanges reads the file sink's output: every complete line.
func outputChanges(t testing.TB, path string) ([]change, [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		return nil, nil
	}
	var out []change
	var lines [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := append([]byte(nil), sc.Bytes()...)
		c := decode(t, "", line, nil)
		out = append(out, c)
		lines = append(lines, line)
	}
	return out, lines
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return bytes.Count(data, []byte{'\n'})
}

// binlogIDs reads the binlog from the GTID position from to its end and
// returns the ids the source gives the changes of table (db.name).
func binlogIDs(t testing.TB, f *fixture, from, table string) map[string]bool {
	t.Helper()
	mc, _ := mysql.ParseDSN(f.dsn)
	ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
	defer cancel()
	c, err := binlog.Dial(ctx, binlog.Config{Addr: mc.Addr, User: mc.User, Password: mc.Passwd})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.StartDump(binlog.DumpOptions{ServerID: 2100000000 + uint32(rand.IntN(1e6)), GTID: from, UseGTID: true, NonBlocking: true})
	if err != nil {
		t.Fatal(err)
	}
	db, name, _ := strings.Cut(table, ".")
	ids := map[string]bool{}
	maps := map[uint64]*binlog.TableMap{}
	var gtid string
	n := 0
	var re binlog.RowsEvent
	for {
		ev, err := s.Next()
		if errors.Is(err, io.EOF) {
			return ids
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.Type == binlog.MariaGTIDEvent:
			g, _ := binlog.ParseMariaGTID(ev.Header, ev.Body)
			gtid, n = g.GTID.String(), 0
		case ev.Type == binlog.TableMapEvent:
			tm, err := s.Decoder().ParseTableMap(ev.Body)
			if err != nil {
				t.Fatal(err)
			}
			if tm.Schema == db && tm.Table == name {
				maps[tm.TableID] = tm
			}
		case ev.Type.IsRows():
			if err := s.Decoder().ParseRows(ev.Header, ev.Body, &re); err != nil {
				t.Fatal(err)
			}
			tm := maps[re.TableID]
			if tm == nil {
				continue
			}
			cells := make([]binlog.Cell, re.NCols)
			for re.More() {
				if err := re.NextImage(tm, false, cells); err != nil {
					t.Fatal(err)
				}
				if re.Kind == binlog.Update {
					if err := re.NextImage(tm, true, cells); err != nil {
						t.Fatal(err)
					}
				}
				ids[fmt.Sprintf("%s:%d", gtid, n)] = true
				n++
			}
		}
	}
}

// TestKillNine kills a running sluice (mysql_cdc -> file) with SIGKILL
// several times while a writer inserts, updates and deletes (the first
// kill during the snapshot), restarts it each time, and checks that every
// change of the binlog reached the file, that duplicates carry the same
// id and content, and that replaying the file gives the table row by row.
// The table's rows fill its last snapshot batch exactly (20000 rows,
// max_events 200): the snapshot used to be committed as done then before
// its last batches were delivered, and a kill lost them.
func TestKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; -short skips it")
	}
	f := newFixture(t)
	table := f.table("k9", "id INT PRIMARY KEY, v INT, note VARCHAR(20)")
	const rows, kills = 20000, 4
	f.exec(fmt.Sprintf("INSERT INTO %s SELECT seq, seq, 'old' FROM seq_1_to_%d", table, rows))
	var from string
	if err := f.db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&from); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out.jsonl")
	task := filepath.Join(dir, "k9.toml")
	os.WriteFile(task, []byte(fmt.Sprintf(`name = "k9"
max_in_flight = 4

[source]
type = "mysql_cdc"
%s
[sink]
type = "file"
path = "out.jsonl"
`, f.config([]string{table}, "snapshot_chunk_size = 1000\nmax_events = 200\n"))), 0o644)
	state := filepath.Join(dir, "state")
	run := func(name string) *testkit.Proc {
		return testkit.StartSluice(t, testkit.ProcOptions{Name: name, Dir: dir},
			"run", "--log-format", "json", "--progress", "never", "--state-dir", state, task)
	}
	cpPath := filepath.Join(state, "k9", checkpointName+".json")
	rng := rand.New(rand.NewPCG(rand.Uint64(), 7))
	var w *writer
	// At each kill: the checkpoint on disk (what the restart resumes from)
	// and how many lines the file had.
	var cps []k9Checkpoint
	var marks []int
	for i := range kills {
		p := run(fmt.Sprintf("sluice run %d", i+1))
		p.WaitLog(t, "mysql_cdc source opened")
		if w == nil {
			w = startWriter(t, f, table, rows+1)
		}
		before := countLines(out)
		grow := 100 + rng.IntN(1500)
		testkit.WaitFor(t, fmt.Sprintf("run %d to write %d more changes", i+1, grow), func() bool {
			if p.Exited() {
				t.Fatalf("%s exited: %v", p.Name, p.Err())
			}
			return countLines(out) >= before+grow
		})
		// The checkpoint must keep up with what is delivered: it moves
		// past the changes written, but for those in flight. (A
		// checkpoint stuck behind a transaction never fails the kill
		// checks below: the restart then reads again everything since.)
		first := max(before, before+grow-1-inFlight)
		testkit.WaitFor(t, fmt.Sprintf("run %d's checkpoint to cover its change at line %d", i+1, first+1), func() bool {
			return !readCheckpoint(t, cpPath).beyond(lineAt(t, out, first))
		})
		p.Kill()
		cps = append(cps, readCheckpoint(t, cpPath))
		marks = append(marks, countLines(out))
		t.Logf("run %d killed after %d more changes (writer at %d operations)", i+1, countLines(out)-before, w.ops.Load())
	}
	w.halt()
	if w.err != nil {
		t.Fatal(w.err)
	}
	p := run("final run")
	want := f.rowsOf(table, "v, note")
	cols := []string{"v", "note"}
	if !testkit.Eventually(testkit.DefaultWait, func() bool {
		got, _ := outputChanges(t, out)
		return reflect.DeepEqual(apply(got, cols), want)
	}) {
		k9Diagnose(t, f, p, out, cpPath, from, table, cols, want)
	}
	p.Stop(t)

	got, lines := outputChanges(t, out)
	expect := binlogIDs(t, f, from, table)
	seen := map[string][]byte{}
	dups := 0
	behind := make([]int, kills) // changes written beyond the checkpoint at each kill
	again := make([]int, kills)  // changes read again after each kill
	for k, cp := range cps {
		for _, c := range got[:marks[k]] {
			if cp.beyond(c) {
				behind[k]++
			}
		}
	}
	wrote := 0 // the run that wrote line i: marks[wrote-1] <= i < marks[wrote]
	for i, c := range got {
		for wrote < len(marks) && i >= marks[wrote] {
			wrote++
		}
		if prev, ok := seen[c.ID]; ok {
			dups++
			// The restart after the kill before line i resumes from the checkpoint
			// on disk then: it reads again only what lies beyond it.
			if wrote == 0 || !cps[wrote-1].beyond(c) {
				t.Fatalf("change %s (line %d) read again although the checkpoint on disk covered it at the kill before (gtid %q, snapshot %v)", c.ID, i+1, cps[max(wrote-1, 0)].Data.GTID, cps[max(wrote-1, 0)].Data.Snapshot != nil)
			}
			again[wrote-1]++
			// A resumed snapshot reads a row as it is then: only stream
			// changes must repeat byte for byte.
			if c.Data.Op != "r" && !bytes.Equal(prev, lines[i]) {
				t.Fatalf("change %s delivered twice with different content:\n%s\n%s", c.ID, prev, lines[i])
			}
			continue
		}
		seen[c.ID] = lines[i]
		if c.Data.Op != "r" && !expect[c.ID] {
			t.Fatalf("change %s is not in the binlog", c.ID)
		}
	}
	missing := 0
	for id := range expect {
		if seen[id] == nil {
			missing++
			if missing < 5 {
				t.Errorf("change %s of the binlog never reached the file", id)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d changes missing", missing, len(expect))
	}
	// What is read again after a kill is what lies beyond the checkpoint:
	// the batches in flight (max_in_flight x max_events, the writer's
	// transactions being single rows) plus what was acknowledged since the
	// last save. The latter is a time (one save, fsync'd, at most every
	// 50 ms), not a count: thousands of snapshot rows on a loaded machine
	// whose fsync is slow. So the count is reported, and what is checked
	// is that the checkpoint keeps up (the wait before each kill) and that
	// a restart reads again nothing the checkpoint covered (above).
	for k := range kills {
		t.Logf("kill %d: %d changes written beyond the checkpoint on disk, %d read again", k+1, behind[k], again[k])
	}
	t.Logf("%d snapshot rows, %d changes in the binlog, %d lines written, %d duplicates after %d kills",
		rows, len(expect), len(got), dups, kills)
}

// k9Diagnose fails TestKillNine whose final run did not bring the file to
// every row's final state, telling a lost change (the checkpoint on disk is
// past a change of the binlog the file lacks) from a stalled stream (the
// changes the file lacks all lie beyond the checkpoint), with the rows
// that differ, the checkpoint and the final run's log.
func k9Diagnose(t *testing.T, f *fixture, p *testkit.Proc, out, cpPath, from, table string, cols []string, want map[string]string) {
	t.Helper()
	got, _ := outputChanges(t, out)
	have := apply(got, cols)
	wrong := 0
	for id, w := range want {
		if h, ok := have[id]; !ok || h != w {
			if wrong++; wrong <= 5 {
				t.Errorf("row %s: the table has %q, the file %q (present: %v)", id, w, h, ok)
			}
		}
	}
	for id, h := range have {
		if _, ok := want[id]; !ok {
			if wrong++; wrong <= 10 {
				t.Errorf("row %s: deleted in the table, the file has %q", id, h)
			}
		}
	}
	cp := readCheckpoint(t, cpPath)
	raw, _ := os.ReadFile(cpPath)
	var end string
	f.db.QueryRow("SELECT @@gtid_binlog_pos").Scan(&end)
	seen := map[string]bool{}
	rowSeen := map[string]bool{} // ids of rows some line names
	for _, c := range got {
		seen[c.ID] = true
		for _, im := range []map[string]any{c.Data.Before, c.Data.After} {
			if im != nil {
				rowSeen[fmt.Sprint(im["id"])] = true
			}
		}
	}
	var never []string // rows of the table no line names: their snapshot row is lost
	for id := range want {
		if !rowSeen[id] {
			never = append(never, id)
		}
	}
	slices.Sort(never)
	var lost, ahead []string
	for id := range binlogIDs(t, f, from, table) {
		if seen[id] {
			continue
		}
		if gtidSeq(id) <= gtidSeq(cp.Data.GTID) && cp.Data.Snapshot == nil {
			lost = append(lost, id)
		} else {
			ahead = append(ahead, id)
		}
	}
	slices.SortFunc(lost, func(a, b string) int { return cmp.Compare(gtidSeq(a), gtidSeq(b)) })
	slices.SortFunc(ahead, func(a, b string) int { return cmp.Compare(gtidSeq(a), gtidSeq(b)) })
	p.DumpLog(t)
	t.Logf("checkpoint on disk: %s", raw)
	t.Logf("binlog now at %s; the file has %d lines; the final run exited: %v", end, len(got), p.Exited())
	verdict := "stalled: every change the file lacks lies beyond the checkpoint"
	switch {
	case len(lost) > 0:
		verdict = "lost: the checkpoint is past changes the file lacks"
	case len(never) > 0 && cp.Data.Snapshot == nil:
		verdict = "lost: the checkpoint says the snapshot is done but rows of it never reached the file"
	}
	t.Fatalf("the final run did not bring the file to every row's final state within %s: %d rows differ; %d rows never in the file %v; %d binlog changes missing at or before the checkpoint %v, %d beyond it %v; %s",
		testkit.Scale(testkit.DefaultWait), wrong, len(never), head(never), len(lost), head(lost), len(ahead), head(ahead), verdict)
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// inFlight is TestKillNine's max_in_flight x max_events.
const inFlight = 4 * 200

// k9Checkpoint is what TestKillNine reads of the source's checkpoint.
type k9Checkpoint struct {
	Data struct {
		GTID     string `json:"gtid"`
		Snapshot *struct {
			Tables []struct {
				Done    bool     `json:"done"`
				LastKey [][]byte `json:"last_key"`
			} `json:"tables"`
		} `json:"snapshot"`
	} `json:"data"`
}

func readCheckpoint(t testing.TB, path string) k9Checkpoint {
	t.Helper()
	var cp k9Checkpoint
	data, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(data, &cp)
	}
	if err != nil {
		t.Fatalf("checkpoint %s: %v", path, err)
	}
	return cp
}

// beyond reports whether a restart from cp reads c again: a snapshot row
// after the last key delivered while the snapshot is unfinished, a
// streamed change after the checkpoint's GTID (every one while the
// snapshot is unfinished: the stream then starts at its position).
func (cp k9Checkpoint) beyond(c change) bool {
	snap := cp.Data.Snapshot
	if c.Data.Op == "r" {
		if snap == nil || len(snap.Tables) == 0 || snap.Tables[0].Done {
			return false
		}
		last := snap.Tables[0].LastKey
		if len(last) == 0 {
			return true
		}
		k, _ := strconv.Atoi(string(last[0]))
		id, _ := strconv.Atoi(fmt.Sprint(c.Data.After["id"]))
		return id > k
	}
	if snap != nil {
		return true
	}
	return gtidSeq(c.ID) > gtidSeq(cp.Data.GTID)
}

// gtidSeq is the sequence number of domain 0's GTID at the start of s
// ("0-1-42" or a change id "0-1-42:3").
func gtidSeq(s string) uint64 {
	s, _, _ = strings.Cut(s, ":")
	for _, g := range strings.Split(s, ",") {
		if f := strings.Split(g, "-"); len(f) == 3 && f[0] == "0" {
			n, _ := strconv.ParseUint(f[2], 10, 64)
			return n
		}
	}
	return 0
}

// lineAt decodes line i (from 0) of the file sink's output.
func lineAt(t testing.TB, path string, i int) change {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitN(data, []byte{'\n'}, i+2)
	if len(lines) < i+2 {
		t.Fatalf("%s has no line %d", path, i+1)
	}
	return decode(t, "", lines[i], nil)
}

// TestExamplePipeline runs testdata/pipelines/mysql-cdc.toml (the docs'
// example) against the local MariaDB: snapshot rows and inserts of big
// orders come out reshaped, small ones and deletes are filtered out.
func TestExamplePipeline(t *testing.T) {
	f := newFixture(t)
	table := f.table("orders", "id INT PRIMARY KEY, qty INT, note VARCHAR(40)")
	f.exec("INSERT INTO " + table + " VALUES (1, 150, 'before the start'), (2, 5, 'small')")
	// Its own replica id: another run of this test on the same MariaDB
	// would otherwise drop this one's binlog stream.
	task := testkit.TaskCopy(t, filepath.Join(testkit.RepoRoot(), "testdata", "pipelines", "mysql-cdc.toml"),
		"server_id = 4001", fmt.Sprintf("server_id = %d", testkit.ReplicaID()))
	p := testkit.StartSluice(t, testkit.ProcOptions{Env: []string{"MYSQL_DSN=" + f.dsn, "MYSQL_TABLE=" + table}},
		"run", "--log-format", "json", "--progress", "never", "--state-dir", t.TempDir(), task)
	p.WaitLog(t, `{"order":1,"qty":150,"op":"r","note":"before the start"}`)
	f.exec("INSERT INTO " + table + " VALUES (3, 500, 'after'), (4, 1, 'tiny')")
	f.exec("UPDATE " + table + " SET qty = 101 WHERE id = 4")
	f.exec("DELETE FROM " + table + " WHERE id = 1")
	p.WaitLog(t, `{"order":3,"qty":500,"op":"c","note":"after"}`)
	p.WaitLog(t, `{"order":4,"qty":101,"op":"u","note":"tiny"}`)
	p.Stop(t)
	if p.LogHas(`"order":2`) || p.LogHas(`"qty":1,`) {
		t.Error("a small order passed the filter")
	}
}

// TestStartFailedProcess: a sluice process whose mysql_cdc task names a
// missing table stops the task in StartFailed and exits with status 1
// promptly (no retry loop, no hang), logging what to change.
func TestStartFailedProcess(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	task := filepath.Join(dir, "bad.toml")
	os.WriteFile(task, []byte(fmt.Sprintf("name = \"bad\"\n[source]\ntype = \"mysql_cdc\"\n%s\n[sink]\ntype = \"stdout\"\n",
		f.config([]string{"test.missing_" + testkit.Unique(t, "t")}, ""))), 0o644)
	p := testkit.StartSluice(t, testkit.ProcOptions{Dir: dir}, "run", "--log-format", "json", "--state-dir", filepath.Join(dir, "state"), task)
	select {
	case <-p.Done():
	case <-time.After(testkit.Scale(testkit.DefaultWait)):
		t.Fatal("sluice did not exit")
	}
	if p.Err() == nil {
		t.Fatal("sluice exited with status 0")
	}
	for _, want := range []string{"task failed", "does not exist", "fix tables"} {
		if !p.LogHas(want) {
			p.DumpLog(t)
			t.Fatalf("the log does not say %q", want)
		}
	}
}
