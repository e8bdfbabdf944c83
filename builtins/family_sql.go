//go:build !no_sql

package builtins

import (
	mysqlsink "github.com/sluicehq/sluice/builtins/sink/mysql"
	pgsink "github.com/sluicehq/sluice/builtins/sink/postgres"
	"github.com/sluicehq/sluice/builtins/source/mysqlcdc"
	"github.com/sluicehq/sluice/builtins/source/postgrescdc"
	"github.com/sluicehq/sluice/builtins/source/sqlsource"
	"github.com/sluicehq/sluice/runtime/component"
)

// The sql family: postgreSQL and MariaDB/MySQL: change data capture, the sql source, the upsert sinks: pgx's pgconn (and pglogrepl) and go-sql-driver/mysql. A build with -tags
// no_sql leaves it out (docs/edge.md: what each tag saves).
func init() {
	families = append(families, family{name: "sql", register: func(r *component.Registry) {
		mysqlcdc.Register(r)
		postgrescdc.Register(r)
		sqlsource.Register(r)
		pgsink.Register(r)
		mysqlsink.Register(r)
	}})
}
