package postgrescdc

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/builtins/internal/pgcluster"
	"github.com/sluicehq/sluice/runtime/component"
)

// openFails opens src and checks it fails as task-permanent (StartFailed)
// with a message holding every one of want.
func openFails(t *testing.T, src component.Source, want ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := src.Open(ctx)
	if err == nil {
		src.Close(context.Background())
		t.Fatal("Open succeeded")
	}
	if component.ClassOf(err) != component.ClassTaskPermanent {
		t.Fatalf("Open: class %s, want task_permanent: %v", component.ClassOf(err), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("Open: %v\nwant it to say %q", err, w)
		}
	}
	if err := src.Close(context.Background()); err != nil {
		t.Fatalf("Close after a failed Open: %v", err)
	}
}

func TestMissingTable(t *testing.T) {
	e := newPG(t)
	openFails(t, e.source(t, `tables = ["public.`+e.slot+`_nope"]`), "does not exist", e.slot+"_nope", "fix tables")
}

func TestTableWithoutKey(t *testing.T) {
	e := newPG(t)
	tbl := e.table("nokey", "a int")
	openFails(t, e.source(t, `tables = ["`+tbl+`"]`), "no primary key", "REPLICA IDENTITY FULL")
}

func TestSlotInUse(t *testing.T) {
	slotGrace = time.Second
	t.Cleanup(func() { slotGrace = 10 * time.Second })
	e := newPG(t)
	tbl := e.table("busy", "id int PRIMARY KEY")
	first := e.source(t, `tables = ["`+tbl+`"]`)
	if err := first.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer first.Close(context.Background())
	c := collect(t, first)
	e.exec("INSERT INTO " + tbl + " VALUES (1)")
	c.next() // streaming: the slot is active
	// Another process (another state directory) on the same slot.
	env := componenttest.Env(t, zerolog.InfoLevel)
	env.StateDir = t.TempDir()
	second := componenttest.Build(t, Register, component.KindSource, Name,
		fmt.Sprintf("dsn = %q\nslot = %q\ntables = [%q]", e.dsn, e.slot, tbl), env).(*Source)
	openFails(t, second, "is in use by server process", "pg_terminate_backend", "another slot")
}

func TestBadDSN(t *testing.T) {
	cfg, p := componenttest.Decode(t, Register, component.KindSource, Name, `dsn = "postgres://u:s3cret@h:notaport/db"`+"\nslot = \"x\"")
	if p.Len() > 0 {
		t.Fatal(p.List())
	}
	env := componenttest.Env(t, zerolog.InfoLevel, "source")
	r := component.NewRegistry()
	Register(r)
	spec, _ := r.Lookup(component.KindSource, Name)
	spec.Build(cfg, env)
	if env.Problems.Len() != 1 || strings.Contains(fmt.Sprint(env.Problems.List()), "s3cret") {
		t.Fatalf("problems: %v", env.Problems.List())
	}
}

// TestThrowawayCluster checks, on a cluster of its own, what cannot be
// changed on the shared server: a wrong password and wal_level = replica.
func TestThrowawayCluster(t *testing.T) {
	dsn := pgcluster.Start(t, pgcluster.Options{Password: "right-pw", Settings: []string{"wal_level=replica"}})
	build := func(pw string) *Source {
		env := componenttest.Env(t, zerolog.InfoLevel)
		env.StateDir = t.TempDir()
		return componenttest.Build(t, Register, component.KindSource, Name,
			fmt.Sprintf("dsn = %q\npassword = %q\nslot = \"s1\"\ntables = [\"t\"]", dsn, pw), env).(*Source)
	}
	t.Run("WrongPassword", func(t *testing.T) {
		openFails(t, build("wrong-pw"), "authentication failed", "check the password")
	})
	t.Run("WalLevelReplica", func(t *testing.T) {
		openFails(t, build("right-pw"), `wal_level is "replica"`, "ALTER SYSTEM SET wal_level = logical", "restart the server")
	})
}
