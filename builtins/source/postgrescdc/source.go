package postgrescdc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/cdc"
	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
	"github.com/sluicehq/sluice/builtins/internal/pgconnect"
	"github.com/sluicehq/sluice/runtime/component"
	"github.com/sluicehq/sluice/runtime/metrics"
)

// state is the checkpoint: the slot holds the stream's position, the
// checkpoint only the snapshot's progress.
type state struct {
	Slot         string               `json:"slot"`
	SnapshotDone bool                 `json:"snapshot_done"`
	Tables       map[string]*progress `json:"tables,omitempty"`
}

// progress is how far the snapshot of one table was delivered: every row
// whose primary key is greater than After is still to be read.
type progress struct {
	Table string   `json:"-"`
	Done  bool     `json:"done,omitempty"`
	After []string `json:"after,omitempty"` // the last delivered row's key, as text
	All   bool     `json:"-"`               // the whole snapshot is delivered
}

// Source is the postgres_cdc source.
type Source struct {
	cfg    *Config
	env    component.Env
	log    zerolog.Logger
	tls    *tls.Config
	cpDir  string
	where  string
	lag    metrics.Gauge
	events *metrics.CounterVec

	// The server's host:port and the database the DSN names: the events'
	// source, and the database a slot found must belong to.
	addr, database string

	store  *checkpoint.Store
	st     state
	ob     *outbox
	meta   *pgconn.PgConn // catalog queries (type lookups while streaming)
	repl   *pgconn.PgConn
	snap   *pgconn.PgConn // the snapshot's transaction, while it runs
	tables []*tableMeta

	// newSlot is the exported snapshot of a slot created by Open, to be
	// read before streaming.
	newSlot *pglogrepl.CreateReplicationSlotResult

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	stream  *session // the replication session under way, if any
	opened  bool
	closing bool
	// rewind is set by Rewind and cleared when run resets the outbox: a
	// snapshot or stream that starts meanwhile ends at once, so that the
	// reset (the rewind itself) comes before anything more is read.
	rewind bool
}

func build(c any, env component.Env) (any, error) {
	cfg := c.(*Config)
	s := &Source{cfg: cfg, env: env, log: env.Logger, cpDir: checkpoint.Dir(env.StateDir, env.Dir, env.Task)}
	if cfg.TLS != nil {
		tc, err := cfg.TLS.Config(env.Dir)
		if err != nil {
			env.Problems.Addf([]string{"tls"}, "%v", err)
			return nil, nil
		}
		s.tls = tc
	}
	cc, err := s.connConfig()
	if err != nil {
		env.Problems.Addf([]string{"dsn"}, "%v", err)
		return nil, nil
	}
	s.where, s.addr, s.database = pgconnect.Where(cc), pgconnect.Addr(cc), cc.Database
	s.lag = env.Metrics.Gauge("postgres_cdc_slot_lag_bytes",
		"WAL bytes between the server's current position and the slot's confirmed position.", "task", "slot").
		WithLabelValues(env.Task, cfg.Slot)
	s.events = env.Metrics.Counter("postgres_cdc_events_total", "Change events read, by op.", "task", "op")
	return s, nil
}

// Open connects, checks the server, creates the publication and the slot
// when missing and starts reading. Misconfigurations (wal_level, missing
// tables, refused credentials, a slot in use) are task-permanent errors
// that say what to change.
func (s *Source) Open(ctx context.Context) (err error) {
	s.mu.Lock()
	if s.opened {
		s.mu.Unlock()
		return errors.New("postgres_cdc: already open")
	}
	s.mu.Unlock()
	defer func() {
		if err != nil {
			s.release()
		}
	}()
	if s.store, err = checkpoint.Open(s.cpDir, "source.postgres_cdc."+s.cfg.Slot); err != nil {
		return component.TaskPermanent(err)
	}
	if _, err = s.store.Load(&s.st); err != nil {
		return component.TaskPermanent(err)
	}
	if s.st.Slot != s.cfg.Slot {
		s.st = state{Slot: s.cfg.Slot}
	}
	if s.meta, err = s.connect(ctx); err != nil {
		return err
	}
	if err = s.checkServer(ctx, s.meta); err != nil {
		return err
	}
	if s.tables, err = s.ensurePublication(ctx, s.meta); err != nil {
		return err
	}
	si, err := s.waitSlotFree(ctx, s.meta)
	if err != nil {
		return err
	}
	if si.exists && si.plugin != "pgoutput" {
		return component.TaskPermanent(fmt.Errorf("postgres %s: replication slot %q uses plugin %q, this source reads pgoutput: drop the slot or choose another name", s.where, s.cfg.Slot, si.plugin))
	}
	if si.exists && si.database != s.database {
		return component.TaskPermanent(fmt.Errorf("postgres %s: replication slot %q belongs to database %q: choose another slot name", s.where, s.cfg.Slot, si.database))
	}
	if s.repl, err = s.connectReplication(ctx); err != nil {
		return err
	}
	s.ob = newOutbox(s.cfg.Batch.MaxEvents)
	s.ob.onMark = s.committed
	s.ob.confirmed = si.confirmed
	if !si.exists {
		if err = s.createSlot(ctx); err != nil {
			return err
		}
	} else if !s.cfg.Snapshot {
		s.st.SnapshotDone = true
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.mu.Lock()
	s.opened = true
	s.mu.Unlock()
	s.wg.Add(1)
	go s.run(runCtx)
	return nil
}

// createSlot creates the slot and, with a snapshot, opens the snapshot's
// transaction on the slot's exported snapshot before anything else runs
// on the replication connection (the snapshot lives only until then).
func (s *Source) createSlot(ctx context.Context) error {
	action := "NOEXPORT_SNAPSHOT"
	if s.cfg.Snapshot {
		action = "EXPORT_SNAPSHOT"
	}
	res, err := pglogrepl.CreateReplicationSlot(ctx, s.repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: action})
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "53400" {
			return component.TaskPermanent(fmt.Errorf("postgres %s: cannot create replication slot %q: %s: raise max_replication_slots or drop unused slots", s.where, s.cfg.Slot, pe.Message))
		}
		return s.queryErr("CREATE_REPLICATION_SLOT "+s.cfg.Slot, err)
	}
	lsn, err := parseLSN(res.ConsistentPoint)
	if err != nil {
		return component.Retryable(err, 0)
	}
	s.ob.confirmed = lsn
	s.log.Info().Str("slot", s.cfg.Slot).Str("lsn", res.ConsistentPoint).Msg("created replication slot")
	s.st = state{Slot: s.cfg.Slot, SnapshotDone: !s.cfg.Snapshot}
	if s.cfg.Snapshot {
		s.newSlot = &res
		if err := s.beginSnapshot(ctx, res.SnapshotName); err != nil {
			return err
		}
	}
	if err := s.store.Save(&s.st); err != nil {
		return component.Retryable(err, 0)
	}
	return nil
}

// committed is called by the outbox (under its lock) for every mark whose
// batches were all handled: snapshot progress is checkpointed here.
func (s *Source) committed(m mark) {
	if m.progress == nil {
		return
	}
	p := m.progress
	if p.All {
		s.st.SnapshotDone = true
		s.st.Tables = nil
	} else {
		if s.st.Tables == nil {
			s.st.Tables = map[string]*progress{}
		}
		s.st.Tables[p.Table] = &progress{Done: p.Done, After: p.After}
	}
	if err := s.store.Save(&s.st); err != nil {
		s.log.Warn().Err(err).Msg("saving the snapshot's progress failed; a restart may read these rows again")
	}
}

// run reads the snapshot (when due) and then the stream, reconnecting
// after a lost connection from the confirmed position.
func (s *Source) run(ctx context.Context) {
	defer s.wg.Done()
	backoff := 500 * time.Millisecond
	for ctx.Err() == nil {
		err := s.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if component.ClassOf(err) == component.ClassTaskPermanent {
			s.ob.setErr(err, true)
			return
		}
		s.ob.setErr(err, false)
		s.log.Warn().Err(err).Dur("retry_in", backoff).Msg("replication interrupted; reconnecting")
		if s.repl != nil {
			s.repl.Close(context.Background())
			s.repl = nil
		}
		s.mu.Lock()
		snap := s.snap
		s.snap = nil
		s.mu.Unlock()
		if snap != nil {
			snap.Close(context.Background())
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 30*time.Second)
		s.mu.Lock()
		s.rewind = false
		s.mu.Unlock()
		s.ob.reset()
	}
}

func (s *Source) runOnce(ctx context.Context) error {
	var err error
	if s.meta == nil || s.meta.IsClosed() {
		if s.meta, err = s.connect(ctx); err != nil {
			return err
		}
	}
	if s.repl == nil {
		if _, err := s.waitSlotFree(ctx, s.meta); err != nil {
			return err
		}
		if s.repl, err = s.connectReplication(ctx); err != nil {
			return err
		}
	}
	if !s.st.SnapshotDone {
		if err := s.snapshot(ctx); err != nil {
			return err
		}
	}
	return s.streamChanges(ctx)
}

// Read returns the next batch of change events.
func (s *Source) Read(ctx context.Context) (component.Batch, error) {
	if s.ob == nil {
		return component.Batch{}, errors.New("postgres_cdc: Read before Open")
	}
	b, err := s.ob.read(ctx)
	if errors.Is(err, errClosed) && ctx.Err() != nil {
		return b, ctx.Err()
	}
	return b, err
}

// Rewind reads again, from the slot's confirmed position, everything not
// acknowledged: the replication connection is dropped and reopened. During
// the snapshot, its connection is closed: the snapshot starts again from
// the last chunk checkpointed, as after a crash (before, a rewind during
// the snapshot did nothing: the rows of a nacked batch were not read again
// and the nack kept every position where it was until a restart).
func (s *Source) Rewind(ctx context.Context) error {
	s.mu.Lock()
	s.rewind = true
	sess := s.stream
	if s.snap != nil {
		if nc := s.snap.Conn(); nc != nil {
			nc.Close()
		}
	}
	s.mu.Unlock()
	if sess != nil {
		sess.abort()
	}
	return nil
}

// errRewound ends a snapshot or stream that would start while a rewind
// waits for run's reset.
var errRewound = errors.New("rewound: reading again from the last committed position")

// Close reports the confirmed position to the server, waits for it to be
// taken, and disconnects.
func (s *Source) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.opened {
		s.mu.Unlock()
		s.release()
		return nil
	}
	s.opened = false
	s.closing = true
	sess := s.stream
	s.mu.Unlock()
	if sess != nil {
		sess.finish(ctx)
	}
	s.ob.close()
	s.cancel()
	if sess != nil {
		sess.abort()
	}
	s.mu.Lock()
	if s.snap != nil {
		// A snapshot query under way ends when its connection does.
		if nc := s.snap.Conn(); nc != nil {
			nc.Close()
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.release()
	return nil
}

// release closes whatever Open or run left open.
func (s *Source) release() {
	bg := context.Background()
	if s.snap != nil {
		s.snap.Close(bg)
		s.snap = nil
	}
	if s.repl != nil {
		s.repl.Close(bg)
		s.repl = nil
	}
	if s.meta != nil {
		s.meta.Close(bg)
		s.meta = nil
	}
	if s.store != nil {
		s.store.Close()
		s.store = nil
	}
}

// newEncoder returns an encoder for this source's events.
func (s *Source) newEncoder() *cdc.Encoder {
	return cdc.NewEncoder(cdc.Options{
		Connector: "postgresql",
		Source:    "postgres://" + s.addr + "/" + s.database,
		Type:      EventType,
	})
}

func (s *Source) countEvent(op cdc.Op) {
	if s.events != nil {
		s.events.WithLabelValues(s.env.Task, string(op)).Inc()
	}
}

var _ component.Source = (*Source)(nil)
var _ component.Rewinder = (*Source)(nil)
