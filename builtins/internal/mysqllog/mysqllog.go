// Package mysqllog sends the MySQL driver's log lines (a connection lost
// mid-query, a bad packet) into Sluice's structured log: the driver
// writes them to stderr as plain text by default. Every Sluice package
// that uses the driver imports it for its side effect.
package mysqllog

import (
	"log"

	"github.com/go-sql-driver/mysql"

	"github.com/sluicehq/sluice/runtime/logx"
)

func init() {
	// The driver's own logger adds "[mysql] " and the file:line; the
	// library field says it is the driver's.
	_ = mysql.SetLogger(log.New(logx.LibraryWriter("mysql"), "", 0))
}
