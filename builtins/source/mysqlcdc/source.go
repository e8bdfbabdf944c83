package mysqlcdc

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/binlog"
	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// outBatches is how many batches the reader reads ahead of Read.
const outBatches = 16

// checkpointName is the file stem of the source's checkpoint.
const checkpointName = "source.mysql_cdc"

var errClosed = errors.New("mysql_cdc source: closed")

type options struct {
	dsn             *mysql.Config
	tables          []tableName
	snapshot        bool
	chunk           int
	heartbeat       time.Duration
	decimalAsNumber bool
	maxEvents       int
	serverID        uint32

	stateDir, taskDir, task string
	logger                  zerolog.Logger
	metrics                 *metrics.Set
}

// state is the checkpoint: where the stream resumes and, while a snapshot
// is under way, how far it got.
type state struct {
	// GTID is the MariaDB GTID position after the last committed
	// transaction (every domain); empty on servers without GTIDs.
	GTID string `json:"gtid,omitempty"`
	// File and Pos are the binlog coordinates after it.
	File     string    `json:"file"`
	Pos      uint32    `json:"pos"`
	Snapshot *snapshot `json:"snapshot,omitempty"`
}

// snapshot is the progress of the initial snapshot.
type snapshot struct {
	// Position is the binlog position the snapshot was taken at (ids of
	// its rows name it); TsMs its time.
	Position string      `json:"position"`
	TsMs     int64       `json:"ts_ms"`
	Tables   []snapTable `json:"tables"`
}

type snapTable struct {
	Table string `json:"table"`
	Done  bool   `json:"done"`
	// LastKey is the primary key of the last row delivered (its columns'
	// text, base64 in the file); empty: none yet.
	LastKey [][]byte `json:"last_key,omitempty"`
}

// Source is the mysql_cdc source.
type Source struct {
	o    options
	log  zerolog.Logger
	lag  metrics.Gauge
	addr string

	db       *sql.DB
	store    *checkpoint.Store
	mariaDB  bool
	serverID uint32 // the server's own id
	schemas  map[tableName]*binlog.TableSchema
	start    state     // the position Open resumes from
	snapConn *sql.Conn // the snapshot's transaction, when one is to be read

	out chan *pendingBatch
	// room wakes a reader waiting for out to drain (took).
	room chan struct{}
	// The memory of batches handled, for new batches.
	events   freeList[eventsBuf]
	rowsBufs freeList[rowsBuf]
	// Renderers for Read, when it renders a batch itself.
	renderers sync.Pool
	// eventSize is the mean size of the events last rendered.
	eventSize atomic.Int64
	closing   chan struct{}
	cancel    context.CancelFunc
	done      chan struct{}
	failed    chan struct{}
	runErr    error

	openMu    sync.Mutex // Open and Close
	opened    bool
	closed    bool
	closeOnce sync.Once

	// mu guards what acknowledgements touch.
	mu         sync.Mutex
	stream     *binlog.Stream // the live dump, closed by Close to unblock it
	txns       []*txn         // read, not committed yet, in binlog order
	gtids      map[uint32]binlog.GTID
	file       string
	pos        uint32
	snap       *snapshot // nil once the snapshot is complete
	dirty      bool
	kick       chan struct{}
	stopCommit chan struct{}
	commitDone chan struct{}
	// endWait, when Close waits for the reader to reach the end of a
	// transaction, is closed at the next change of the transactions.
	endWait chan struct{}
}

// txn is one transaction of the binlog, tracked until every change of it
// (and of every transaction before it) was handled.
type txn struct {
	gtids     []binlog.GTID // its GTID (several when empty ones merged)
	file      string
	end       uint32 // position after it
	pending   int    // batches holding its changes, not acknowledged
	rows      int    // changes emitted
	closed    bool   // its end was read
	failed    bool   // a batch of it was not handled
	abandoned bool   // the stream broke inside it: read again as a new txn
}

func newSource(o options) *Source {
	s := &Source{
		o:       o,
		log:     o.logger,
		closing: make(chan struct{}),
		failed:  make(chan struct{}),
		done:    make(chan struct{}),
		kick:    make(chan struct{}, 1),
		room:    make(chan struct{}, 1),
		out:     make(chan *pendingBatch, outBatches),
		gtids:   map[uint32]binlog.GTID{},
		schemas: map[tableName]*binlog.TableSchema{},
	}
	s.addr = o.dsn.Addr
	s.renderers.New = func() any { return s.newRenderer() }
	s.events.spare, s.events.max = &spareEvents, maxFreeEvents
	s.rowsBufs.spare, s.rowsBufs.max = &spareRows, maxFreeRows
	// A nil o.metrics hands out a gauge exposed nowhere.
	s.lag = o.metrics.Gauge("mysql_cdc_lag_seconds",
		"Seconds between the commit of the last binlog event read and now (0 when caught up).", "task").
		WithLabelValues(o.task)
	close(s.done) // reopened by Open when the reader starts
	return s
}

var _ component.Source = (*Source)(nil)

// Open checks the server (binary log on, row format, the tables there),
// loads or establishes the position, starts the snapshot transaction when
// one is needed and checks that the server will stream from the position.
func (s *Source) Open(ctx context.Context) error {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.closed {
		return errClosed
	}
	if s.opened {
		return nil
	}
	if err := s.open(ctx); err != nil {
		s.cleanup()
		return err
	}
	s.opened = true
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	s.stopCommit = make(chan struct{})
	s.commitDone = make(chan struct{})
	go s.committer()
	go s.run(rctx)
	return nil
}

func (s *Source) open(ctx context.Context) error {
	st, err := checkpoint.Open(checkpoint.Dir(s.o.stateDir, s.o.taskDir, s.o.task), checkpointName)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: %w", err))
	}
	s.store = st
	var prev state
	have, err := st.Load(&prev)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: %w", err))
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	if err := s.checkServer(ctx); err != nil {
		return err
	}
	for _, t := range s.o.tables {
		ts, err := binlog.LoadSchema(ctx, s.db, t.DB, t.Table)
		if err != nil {
			return s.queryErr(fmt.Sprintf("read the columns of %s", t), err)
		}
		if ts == nil {
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: table %s does not exist (or the user may not see it): fix tables, or create the table first", t))
		}
		if len(ts.Key) == 0 {
			s.log.Warn().Str("table", t.String()).Msg("table has no primary key: its events have a null key and its snapshot cannot resume mid-table")
		}
		s.schemas[t] = ts
	}
	switch {
	case have:
		s.start = prev
		if prev.Snapshot != nil {
			if err := s.beginSnapshot(ctx, false); err != nil {
				return err
			}
			s.log.Info().Msg("resuming the interrupted snapshot")
		}
	case s.o.snapshot:
		if err := s.beginSnapshot(ctx, true); err != nil {
			return err
		}
	default:
		pos, err := s.currentPosition(ctx)
		if err != nil {
			return err
		}
		s.start = pos
	}
	s.mu.Lock()
	s.setCommittedLocked(s.start)
	s.dirty = true
	s.mu.Unlock()
	// The starting position must be durable before anything is read: a
	// crash before the first acknowledgement must not move it.
	if err := s.save(); err != nil {
		return component.Retryable(fmt.Errorf("mysql_cdc source: %w", err), 0)
	}
	// Ask for the stream now, so that a position the server no longer
	// has or a missing privilege fails the start.
	stream, _, err := s.dial(ctx, s.start)
	if err != nil {
		return err
	}
	stream.Close()
	s.log.Info().Str("gtid", s.start.GTID).Str("file", s.start.File).Uint32("pos", s.start.Pos).
		Bool("snapshot", s.snapConn != nil).Msg("mysql_cdc source opened")
	return nil
}

// setCommittedLocked makes st the committed position.
func (s *Source) setCommittedLocked(st state) {
	s.gtids = parseGTIDs(st.GTID)
	s.file, s.pos = st.File, st.Pos
	s.snap = st.Snapshot
}

func (s *Source) connect(ctx context.Context) error {
	cfg := s.o.dsn.Clone()
	cfg.DBName = ""
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	// Snapshot values are read as text: TIMESTAMPs in UTC, as the binlog
	// has them.
	cfg.Params["time_zone"] = "'+00:00'"
	cfg.ParseTime = false
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: dsn: %s", stripDSN(err)))
	}
	s.db = sql.OpenDB(conn)
	s.db.SetMaxOpenConns(4)
	s.db.SetConnMaxIdleTime(time.Minute)
	if err := s.db.PingContext(ctx); err != nil {
		return s.connErr(err)
	}
	return nil
}

// connErr classifies a failure to connect or log in.
func (s *Source) connErr(err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) && (me.Number == binlog.ErAccessDenied || me.Number == binlog.ErAccessDeniedNoPass) || binlog.IsAccessDenied(err) {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: the server at %s refused user %q: check the user and password in dsn (%v)", s.addr, s.o.dsn.User, err))
	}
	return component.Retryable(fmt.Errorf("mysql_cdc source: cannot reach the server at %s: %w", s.addr, err), 0)
}

// queryErr classifies a failed query: refused privileges are permanent.
func (s *Source) queryErr(what string, err error) error {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1044, 1045, 1142, 1143, binlog.ErSpecificAccessDenied:
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: %s: %v (grant the user REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the tables)", what, err))
		}
	}
	return component.Retryable(fmt.Errorf("mysql_cdc source: %s: %w", what, err), 0)
}

// checkServer refuses servers whose binlog cannot feed change data capture.
func (s *Source) checkServer(ctx context.Context) error {
	var logBin int
	var format, image, version string
	if err := s.db.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@version, @@server_id").
		Scan(&logBin, &format, &image, &version, &s.serverID); err != nil {
		return s.queryErr("read the server's binlog settings", err)
	}
	s.mariaDB = strings.Contains(version, "MariaDB")
	if logBin != 1 {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: binary logging is off on the server at %s: start it with log_bin = ON (log-bin) and binlog_format = ROW, which change data capture reads", s.addr))
	}
	if !strings.EqualFold(format, "ROW") {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: the server at %s logs in binlog_format = %s: set binlog_format = ROW (changes are read from row events)", s.addr, format))
	}
	if !strings.EqualFold(image, "FULL") {
		s.log.Warn().Str("binlog_row_image", image).Msg("binlog_row_image is not FULL: before images hold the key only and updates only the changed columns")
	}
	if s.serverID == s.o.serverID {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: server_id %d is the server's own id: choose another server_id", s.o.serverID))
	}
	return nil
}

// currentPosition is the server's binlog position now.
func (s *Source) currentPosition(ctx context.Context) (state, error) {
	var st state
	rows, err := s.db.QueryContext(ctx, "SHOW MASTER STATUS")
	if err != nil {
		return st, s.queryErr("read the binlog position (SHOW MASTER STATUS)", err)
	}
	cols, _ := rows.Columns()
	vals := make([]sql.RawBytes, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	ok := rows.Next()
	if ok {
		err = rows.Scan(ptrs...)
	}
	if err == nil && ok {
		st.File = string(vals[0])
		p, _ := strconv.ParseUint(string(vals[1]), 10, 32)
		st.Pos = uint32(p)
	}
	rows.Close()
	if err != nil {
		return st, s.queryErr("read the binlog position", err)
	}
	if !ok {
		return st, component.TaskPermanent(fmt.Errorf("mysql_cdc source: the server at %s reports no binlog position: is log_bin on?", s.addr))
	}
	return s.withGTID(ctx, st)
}

// withGTID adds the MariaDB GTID position of st's file and offset.
func (s *Source) withGTID(ctx context.Context, st state) (state, error) {
	if !s.mariaDB {
		return st, nil
	}
	var g sql.NullString
	if err := s.db.QueryRowContext(ctx, "SELECT BINLOG_GTID_POS(?, ?)", st.File, st.Pos).Scan(&g); err != nil {
		return st, s.queryErr("translate the binlog position to a GTID position", err)
	}
	st.GTID = g.String
	return st, nil
}

// beginSnapshot opens the consistent snapshot transaction. fresh: a first
// snapshot, whose position becomes the stream's start; otherwise an
// interrupted one resumes (at a later instant: the stream, from the first
// snapshot's position, replays what changed in between).
func (s *Source) beginSnapshot(ctx context.Context, fresh bool) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.connErr(err)
	}
	s.snapConn = conn
	for _, q := range []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return s.queryErr("start the snapshot transaction", err)
		}
	}
	if !fresh {
		return nil
	}
	var st state
	if s.mariaDB {
		// MariaDB reports the binlog position of the snapshot itself.
		rows, err := conn.QueryContext(ctx, "SHOW STATUS LIKE 'binlog_snapshot_%'")
		if err != nil {
			return s.queryErr("read the snapshot's binlog position", err)
		}
		for rows.Next() {
			var name, val string
			if err := rows.Scan(&name, &val); err != nil {
				rows.Close()
				return s.queryErr("read the snapshot's binlog position", err)
			}
			switch strings.ToLower(name) {
			case "binlog_snapshot_file":
				st.File = val
			case "binlog_snapshot_position":
				p, _ := strconv.ParseUint(val, 10, 32)
				st.Pos = uint32(p)
			}
		}
		rows.Close()
		if st.File == "" {
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: the server at %s reports no snapshot binlog position: is log_bin on?", s.addr))
		}
		if st, err = s.withGTID(ctx, st); err != nil {
			return err
		}
	} else {
		// MySQL: hold the global read lock while the snapshot starts, so
		// that the position read is the snapshot's (needs RELOAD).
		conn.ExecContext(ctx, "ROLLBACK")
		if _, err := conn.ExecContext(ctx, "FLUSH TABLES WITH READ LOCK"); err != nil {
			return s.queryErr("lock the tables for the snapshot (FLUSH TABLES WITH READ LOCK needs RELOAD)", err)
		}
		_, err := conn.ExecContext(ctx, "START TRANSACTION WITH CONSISTENT SNAPSHOT")
		if err == nil {
			st, err = s.currentPosition(ctx)
		}
		conn.ExecContext(ctx, "UNLOCK TABLES")
		if err != nil {
			return err
		}
	}
	snap := &snapshot{Position: positionText(st), TsMs: time.Now().UnixMilli()}
	for _, t := range s.o.tables {
		snap.Tables = append(snap.Tables, snapTable{Table: t.String()})
	}
	st.Snapshot = snap
	s.start = st
	return nil
}

// positionText names a position in ids: the GTID position, else file:pos.
func positionText(st state) string {
	if st.GTID != "" {
		return st.GTID
	}
	return st.File + ":" + strconv.FormatUint(uint64(st.Pos), 10)
}

// dial connects a replication stream at st's position.
func (s *Source) dial(ctx context.Context, st state) (*binlog.Stream, *binlog.Conn, error) {
	cfg := binlog.Config{Net: s.o.dsn.Net, Addr: s.o.dsn.Addr, User: s.o.dsn.User, Password: s.o.dsn.Passwd, TLS: s.o.dsn.TLS}
	c, err := binlog.Dial(ctx, cfg)
	if err != nil {
		return nil, nil, s.connErr(err)
	}
	o := binlog.DumpOptions{ServerID: s.o.serverID, Heartbeat: s.o.heartbeat, File: st.File, Pos: st.Pos}
	if st.GTID != "" {
		o.GTID = st.GTID
	}
	stream, err := c.StartDump(o)
	if err == nil {
		// The server checks the position when it starts sending: the
		// first event (the rotate naming the file) or an error. That
		// rotate's body is not read: the reader goes on from the
		// checkpoint's file, and reads the rotates written in the binlog.
		var ev binlog.Event
		if ev, err = stream.Next(); err == nil && ev.Type != binlog.RotateEvent && ev.Type != binlog.FormatDescriptionEvent {
			err = fmt.Errorf("the stream began with a %s event, expected ROTATE", ev.Type)
		}
	}
	if err != nil {
		c.Close()
		return nil, nil, s.dumpErr(st, err)
	}
	return stream, c, nil
}

// dumpErr classifies a failure to start or continue the binlog dump.
func (s *Source) dumpErr(st state, err error) error {
	var se *binlog.ServerError
	if errors.As(err, &se) {
		switch se.Code {
		case binlog.ErSpecificAccessDenied, binlog.ErDBAccessDenied:
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: the server refused the binlog stream: %v (grant the user REPLICATION SLAVE)", err))
		case binlog.ErMasterFatalReading:
			where := positionText(st)
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: the server cannot stream from position %s: %v (the binlog there was probably purged, see expire_logs_days/binlog_expire_logs_seconds; to start over with a new snapshot, remove the checkpoint %s)",
				where, se.Message, s.store.Path()))
		case binlog.ErNoBinaryLogging:
			return component.TaskPermanent(fmt.Errorf("mysql_cdc source: binary logging is off on the server at %s: start it with log_bin = ON and binlog_format = ROW", s.addr))
		}
		if binlog.IsAccessDenied(err) {
			return s.connErr(err)
		}
	}
	if msg := unsupportedMsg(err); msg != "" {
		return component.TaskPermanent(fmt.Errorf("mysql_cdc source: %s; %s", msg, s.pastUnsupported()))
	}
	return component.Retryable(fmt.Errorf("mysql_cdc source: binlog stream from %s: %w", positionText(st), err), 0)
}

type unsupportedError struct{ msg string }

func (e *unsupportedError) Error() string { return e.msg }

func unsupportedMsg(err error) string {
	var ue *unsupportedError
	if errors.As(err, &ue) {
		return ue.msg
	}
	var be *binlog.UnsupportedError
	if errors.As(err, &be) {
		return be.Msg
	}
	return ""
}

// pastUnsupported says what changing the setting does, and does not do:
// what the server already wrote stays unreadable.
func (s *Source) pastUnsupported() string {
	return "the binlog already written stays as it is, so the task stops here again after the change; to go past it, remove the checkpoint " +
		s.store.Path() + " (the source then starts as on its first run: a new snapshot, or the server's current position with snapshot = false)"
}

// encOptions are the CloudEvent attributes of the source's events.
func (s *Source) encOptions() cdc.Options {
	src := (&url.URL{Scheme: "mysql", Host: s.o.dsn.Addr}).String()
	return cdc.Options{Connector: "mysql", Source: src, Type: EventType}
}

// took wakes the reader once Read has taken half of the batches waiting:
// a reader ahead of Read then wakes once per half a queue, not per batch.
func (s *Source) took() {
	if len(s.out) <= outBatches/2 {
		select {
		case s.room <- struct{}{}:
		default:
		}
	}
}

// Read returns the next batch of changes.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	select {
	case p := <-s.out:
		s.took()
		return s.ready(p), nil
	default:
	}
	select {
	case p := <-s.out:
		s.took()
		return s.ready(p), nil
	case <-ctx.Done():
		return component.Batch{}, ctx.Err()
	case <-s.closing:
		return component.Batch{}, errClosed
	case <-s.failed:
		select {
		case p := <-s.out:
			s.took()
			return s.ready(p), nil
		default:
		}
		return component.Batch{}, s.runErr
	}
}

var _ component.Rewinder = (*Source)(nil)

// Rewind goes back to the committed position, so that every change not
// handled yet (a nacked batch's, and all after it) is read again: the
// engine calls it when a blocked task is resumed.
func (s *Source) Rewind(ctx context.Context) error {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if !s.opened || s.closed {
		return nil
	}
	s.cancel()
	s.mu.Lock()
	if s.stream != nil {
		s.stream.Close()
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	for len(s.out) > 0 {
		<-s.out // read, never handed out: dropped
	}
	s.mu.Lock()
	st := state{GTID: formatGTIDs(s.gtids), File: s.file, Pos: s.pos}
	if s.snap != nil {
		cp := *s.snap
		cp.Tables = append([]snapTable(nil), s.snap.Tables...)
		st.Snapshot = &cp
	}
	s.txns = nil // acknowledgements of what was read before are moot
	s.stream = nil
	s.mu.Unlock()
	s.start = st
	if s.snapConn != nil {
		s.snapConn.Close()
		s.snapConn = nil
	}
	if st.Snapshot != nil {
		if err := s.beginSnapshot(ctx, false); err != nil {
			return err
		}
	}
	s.runErr = nil
	s.failed = make(chan struct{})
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done = make(chan struct{})
	go s.run(rctx)
	s.log.Info().Str("gtid", st.GTID).Str("file", st.File).Uint32("pos", st.Pos).Msg("rewound to the committed position")
	return nil
}

// run reads the snapshot, then the stream, until Close.
func (s *Source) run(ctx context.Context) {
	defer close(s.done)
	r := newReader(s)
	err := r.run(ctx)
	if err != nil && ctx.Err() == nil {
		s.runErr = err
		close(s.failed)
	}
}

// fail is used by the reader before run returns.
func parseGTIDs(text string) map[uint32]binlog.GTID {
	out := map[uint32]binlog.GTID{}
	for _, part := range strings.Split(text, ",") {
		part = strings.TrimSpace(part)
		f := strings.Split(part, "-")
		if len(f) != 3 {
			continue
		}
		d, err1 := strconv.ParseUint(f[0], 10, 32)
		sv, err2 := strconv.ParseUint(f[1], 10, 32)
		n, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			continue
		}
		out[uint32(d)] = binlog.GTID{Domain: uint32(d), ServerID: uint32(sv), Seq: n}
	}
	return out
}

func formatGTIDs(m map[uint32]binlog.GTID) string {
	if len(m) == 0 {
		return ""
	}
	ds := make([]uint32, 0, len(m))
	for d := range m {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	var b []byte
	for i, d := range ds {
		if i > 0 {
			b = append(b, ',')
		}
		b = m[d].Append(b)
	}
	return string(b)
}

// track registers a transaction that has changes in flight.
func (s *Source) track(t *txn) {
	s.mu.Lock()
	s.txns = append(s.txns, t)
	s.mu.Unlock()
}

// passEmpty records a transaction without changes of ours: it commits as
// soon as everything before it did.
func (s *Source) passEmpty(t *txn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Read to its end: without this mark a transaction of another table
	// queued behind changes in flight would hold the position back for
	// good, and every later transaction with it.
	t.closed = true
	if len(s.txns) == 0 {
		s.applyLocked(t)
		s.dirty = true
		s.signal()
		return
	}
	if tail := s.txns[len(s.txns)-1]; tail.closed && tail.rows == 0 && tail.pending == 0 && !tail.failed && !tail.abandoned {
		tail.gtids = mergeGTIDs(tail.gtids, t.gtids)
		tail.file, tail.end = t.file, t.end
		return
	}
	s.txns = append(s.txns, t)
}

func mergeGTIDs(into, from []binlog.GTID) []binlog.GTID {
	for _, g := range from {
		replaced := false
		for i := range into {
			if into[i].Domain == g.Domain {
				into[i] = g
				replaced = true
			}
		}
		if !replaced {
			into = append(into, g)
		}
	}
	return into
}

// wakeLocked wakes a Close waiting for the reader (awaitingEndLocked).
func (s *Source) wakeLocked() {
	if s.endWait != nil {
		close(s.endWait)
		s.endWait = nil
	}
}

// awaitingEndLocked reports whether the oldest transaction not committed
// has had every change read so far acknowledged but its end (the XID or
// COMMIT event) not read yet: a batch filled up (max_events) inside it. The
// reader reading on commits it; otherwise a graceful stop would leave the
// acknowledged changes to be read again.
func (s *Source) awaitingEndLocked() bool {
	for _, t := range s.txns {
		if t.closed && t.pending == 0 && !t.failed {
			continue
		}
		return !t.closed && t.pending == 0 && !t.failed && !t.abandoned
	}
	return false
}

// closeGrace bounds how long Close lets the reader go on to the end of a
// transaction whose changes were all acknowledged (awaitingEndLocked).
const closeGrace = time.Second

// awaitEnds waits, within closeGrace and ctx, until no acknowledged
// transaction waits for its end to be read.
func (s *Source) awaitEnds(ctx context.Context) {
	timer := time.NewTimer(closeGrace)
	defer timer.Stop()
	for {
		s.mu.Lock()
		if !s.awaitingEndLocked() {
			s.mu.Unlock()
			return
		}
		if s.endWait == nil {
			s.endWait = make(chan struct{})
		}
		wake := s.endWait
		s.mu.Unlock()
		select {
		case <-wake:
		case <-s.done: // the reader stopped (failed): nothing more comes
			return
		case <-timer.C:
			s.log.Warn().Msg("stopping before the end of a transaction whose changes were delivered was read: they will be read again")
			return
		case <-ctx.Done():
			return
		}
	}
}

// closeTxn marks t read to its end.
func (s *Source) closeTxn(t *txn) {
	s.mu.Lock()
	t.closed = true
	s.advanceLocked()
	s.mu.Unlock()
}

// ackTxns settles a stream batch.
func (s *Source) ackTxns(txns []*txn, err error) {
	s.mu.Lock()
	for _, t := range txns {
		t.pending--
		if err != nil {
			t.failed = true
		}
	}
	s.advanceLocked()
	s.mu.Unlock()
	if err != nil {
		s.log.Debug().Err(err).Msg("changes not handled; they will be read again after a restart")
	}
}

// advanceLocked commits the handled prefix of the transactions.
func (s *Source) advanceLocked() {
	s.wakeLocked()
	n := 0
	for _, t := range s.txns {
		if !t.closed || t.pending > 0 || t.failed {
			break
		}
		s.applyLocked(t)
		n++
	}
	if n > 0 {
		clear(s.txns[:n])
		s.txns = s.txns[n:]
		s.dirty = true
		s.signal()
	}
}

func (s *Source) applyLocked(t *txn) {
	if t.abandoned {
		return
	}
	for _, g := range t.gtids {
		s.gtids[g.Domain] = g
	}
	if t.file != "" && t.end >= 4 {
		s.file, s.pos = t.file, t.end
	}
}

// ackSnapshot settles a snapshot batch of table i.
func (s *Source) ackSnapshot(i int, lastKey [][]byte, final bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil || i >= len(s.snap.Tables) {
		return
	}
	t := &s.snap.Tables[i]
	if err != nil || t.Done {
		return
	}
	if lastKey != nil {
		t.LastKey = lastKey
	}
	if final {
		t.Done = true
	}
	for _, t := range s.snap.Tables {
		if !t.Done {
			s.dirty = true
			s.signal()
			return
		}
	}
	s.snap = nil
	s.dirty = true
	s.signal()
	s.log.Info().Msg("snapshot delivered")
}

// signal wakes the committer.
func (s *Source) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// saveInterval spaces checkpoint saves: each is an fsync'd file, and
// acknowledgements arriving meanwhile are committed together by the next.
const saveInterval = 50 * time.Millisecond

// committer saves the checkpoint whenever the position moves, at most
// once per saveInterval.
func (s *Source) committer() {
	defer close(s.commitDone)
	var retry <-chan time.Time
	for {
		select {
		case <-s.stopCommit:
			return
		case <-s.kick:
		case <-retry:
		}
		retry = nil
		if err := s.save(); err != nil {
			s.log.Error().Err(err).Msg("cannot save the checkpoint; retrying (a crash now would repeat changes)")
			retry = time.After(time.Second)
			continue
		}
		select {
		case <-s.stopCommit:
			return
		case <-time.After(saveInterval):
		}
	}
}

// save writes the checkpoint if the position changed.
func (s *Source) save() error {
	s.mu.Lock()
	if !s.dirty || s.store == nil {
		s.mu.Unlock()
		return nil
	}
	st := state{GTID: formatGTIDs(s.gtids), File: s.file, Pos: s.pos}
	if s.snap != nil {
		cp := *s.snap
		cp.Tables = append([]snapTable(nil), s.snap.Tables...)
		st.Snapshot = &cp
	}
	s.dirty = false
	s.mu.Unlock()
	if err := s.store.Save(st); err != nil {
		s.mu.Lock()
		s.dirty = true
		s.mu.Unlock()
		return err
	}
	return nil
}

// Close stops reading, commits what was acknowledged and disconnects.
func (s *Source) Close(ctx context.Context) error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.openMu.Lock()
	defer s.openMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.opened {
		// Read keeps returning errClosed meanwhile: nothing more is handed
		// out, but the reader may still read the end of a transaction.
		s.awaitEnds(ctx)
	}
	if s.cancel != nil {
		s.cancel()
	}
	s.mu.Lock()
	if s.stream != nil {
		s.stream.Close() // unblocks a read waiting for events
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	var err error
	if s.commitDone != nil {
		close(s.stopCommit)
		<-s.commitDone
	}
	if s.opened {
		err = s.save()
	}
	s.cleanup()
	if err != nil {
		return fmt.Errorf("mysql_cdc source: %w", err)
	}
	return nil
}

func (s *Source) cleanup() {
	s.events.release()
	s.rowsBufs.release()
	if s.snapConn != nil {
		s.snapConn.Close()
		s.snapConn = nil
	}
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	if s.store != nil {
		s.store.Close()
		s.store = nil
	}
}
