package pgconnect

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestIdent(t *testing.T) {
	for _, c := range []struct {
		parts []string
		want  string
	}{
		{[]string{"orders"}, `"orders"`},
		{[]string{"public", "orders"}, `"public"."orders"`},
		{[]string{`we"ird`}, `"we""ird"`},
		{[]string{`""`}, `""""""`},
		{[]string{"a.b", "c d"}, `"a.b"."c d"`},
		{[]string{"nul\x00led"}, `"nulled"`},
		{[]string{""}, `""`},
		{[]string{"Ünïcode", `back\slash`}, `"Ünïcode"."back\slash"`},
		{nil, ``},
	} {
		if got := Ident(c.parts...); got != c.want {
			t.Errorf("Ident(%q) = %s, want %s", c.parts, got, c.want)
		}
	}
}

// FuzzIdent keeps Ident's output pgx.Identifier.Sanitize's, which the
// connectors used before (a table name in a checkpoint or a statement must
// quote the same).
func FuzzIdent(f *testing.F) {
	f.Add("public", "orders")
	f.Add(`a"b`, "\x00")
	f.Add("", `""`)
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := Ident(a, b), (pgx.Identifier{a, b}).Sanitize(); got != want {
			t.Fatalf("Ident(%q, %q) = %s, pgx says %s", a, b, got, want)
		}
		if got, want := Ident(a), (pgx.Identifier{a}).Sanitize(); got != want {
			t.Fatalf("Ident(%q) = %s, pgx says %s", a, got, want)
		}
	})
}

// cleanEnv unsets the PG* variables pgconn reads (t.Setenv restores them
// after the test), for a test that expects what the DSN says alone; the
// passfile is pointed at a file that does not exist.
func cleanEnv(t *testing.T) {
	for _, k := range []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGAPPNAME", "PGCONNECT_TIMEOUT",
		"PGSSLMODE", "PGSSLKEY", "PGSSLCERT", "PGSSLCERTMODE", "PGSSLSNI", "PGSSLROOTCERT", "PGSSLPASSWORD", "PGSSLNEGOTIATION",
		"PGTARGETSESSIONATTRS", "PGSERVICE", "PGSERVICEFILE", "PGTZ", "PGOPTIONS", "PGMINPROTOCOLVERSION", "PGMAXPROTOCOLVERSION",
		"PGCHANNELBINDING", "PGREQUIREAUTH"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
}

func TestConfigSettings(t *testing.T) {
	cleanEnv(t)
	for _, dsn := range []string{
		"postgres://alice:dsnpw@db.example:6543/shop?sslmode=disable&application_name=mine&search_path=s1",
		"host=db.example port=6543 user=alice password=dsnpw dbname=shop sslmode=disable application_name=mine search_path=s1",
	} {
		cc, err := Config(Settings{DSN: dsn})
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		if cc.Password != "dsnpw" || cc.RuntimeParams["application_name"] != "mine" || cc.RuntimeParams["search_path"] != "s1" || cc.TLSConfig != nil {
			t.Errorf("%s: password %q, params %v, TLS %v", dsn, cc.Password, cc.RuntimeParams, cc.TLSConfig)
		}
		if got := Where(cc); got != "db.example:6543/shop as alice" {
			t.Errorf("%s: Where = %q", dsn, got)
		}

		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		cc, err = Config(Settings{DSN: dsn, Password: "keypw", TLS: tc, Params: map[string]string{"TimeZone": "UTC", "application_name": "sluice"}})
		if err != nil {
			t.Fatal(err)
		}
		if cc.Password != "keypw" {
			t.Errorf("%s: the password key did not replace the DSN's: %q", dsn, cc.Password)
		}
		if cc.TLSConfig == nil || cc.TLSConfig == tc || cc.TLSConfig.ServerName != "db.example" || tc.ServerName != "" || cc.Fallbacks != nil {
			t.Errorf("%s: TLS %+v (want a copy naming db.example), fallbacks %v", dsn, cc.TLSConfig, cc.Fallbacks)
		}
		if cc.RuntimeParams["application_name"] != "sluice" || cc.RuntimeParams["TimeZone"] != "UTC" || cc.RuntimeParams["search_path"] != "s1" {
			t.Errorf("%s: params %v: the connector's must replace the DSN's and keep the rest", dsn, cc.RuntimeParams)
		}
	}

	// application_name defaults to sluice; the tls table's server name wins.
	cc, err := Config(Settings{DSN: "postgres://u@h1/d", TLS: &tls.Config{ServerName: "cert.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if cc.RuntimeParams["application_name"] != "sluice" || cc.TLSConfig.ServerName != "cert.example" || cc.Port != 5432 {
		t.Errorf("params %v, server name %q, port %d", cc.RuntimeParams, cc.TLSConfig.ServerName, cc.Port)
	}
	if got := Where(&pgconn.Config{Host: "::1", Port: 5432, Database: "d", User: "u"}); got != "[::1]:5432/d as u" {
		t.Errorf("Where of an IPv6 host = %q", got)
	}
}

// TestConfigEnvironment: what the DSN leaves out comes from the PG*
// variables and the passfile, as before (pgconn reads them).
func TestConfigEnvironment(t *testing.T) {
	cleanEnv(t)
	pass := filepath.Join(t.TempDir(), "pgpass")
	if err := os.WriteFile(pass, []byte("envhost:5433:envdb:envuser:filepw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGHOST", "envhost")
	t.Setenv("PGPORT", "5433")
	t.Setenv("PGDATABASE", "envdb")
	t.Setenv("PGUSER", "envuser")
	t.Setenv("PGPASSFILE", pass)
	cc, err := Config(Settings{DSN: "sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	if Where(cc) != "envhost:5433/envdb as envuser" || cc.Password != "filepw" {
		t.Fatalf("where %s, password %q: want the PG* variables' and the passfile's", Where(cc), cc.Password)
	}
	t.Setenv("PGPASSWORD", "envpw")
	if cc, err = Config(Settings{DSN: "sslmode=disable"}); err != nil || cc.Password != "envpw" {
		t.Fatalf("PGPASSWORD: %q, %v", cc.Password, err)
	}
	if cc, err = Config(Settings{DSN: "sslmode=disable", Password: "keypw"}); err != nil || cc.Password != "keypw" {
		t.Fatalf("the password key over PGPASSWORD: %q, %v", cc.Password, err)
	}
}

// TestConfigDropsPgxSettings: the settings pgx and pgxpool took for
// themselves never reach the server as session parameters (which would
// fail the connection); the others still do.
func TestConfigDropsPgxSettings(t *testing.T) {
	cleanEnv(t)
	var url, kv []string
	for _, k := range PgxOnly {
		v := "5"
		if strings.Contains(k, "time") || strings.Contains(k, "period") || strings.Contains(k, "jitter") {
			v = "1m"
		} else if k == "default_query_exec_mode" {
			v = "exec"
		}
		url = append(url, k+"="+v)
		kv = append(kv, k+"="+v)
	}
	for _, dsn := range []string{
		"postgres://u@h/d?search_path=s1&" + strings.Join(url, "&"),
		"host=h user=u dbname=d search_path=s1 " + strings.Join(kv, " "),
	} {
		cc, err := Config(Settings{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for k := range cc.RuntimeParams {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"application_name", "search_path"}) {
			t.Errorf("%s: session parameters %v", dsn, keys)
		}
	}
}

// TestConfigParseErrorHidesDSN: a DSN pgconn cannot parse is reported
// without being quoted (it may hold a password).
func TestConfigParseErrorHidesDSN(t *testing.T) {
	cleanEnv(t)
	for _, dsn := range []string{
		"postgres://u:s3cretpw@h:notaport/d",
		"host=h password=s3cretpw port=notaport",
		"postgres://u:s3cretpw@h/d?sslmode=nonsense",
	} {
		_, err := Config(Settings{DSN: dsn})
		if err == nil {
			t.Fatalf("%s: no error", dsn)
		}
		if strings.Contains(err.Error(), "s3cretpw") || err != ErrParse {
			t.Errorf("%s: %v", dsn, err)
		}
	}
}
