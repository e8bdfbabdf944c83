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
	// Without the prefix and timestamp the driver's default logger adds:
	// the library field says whose line it is, the record has the time,
	// and the driver puts the file:line in the message itself.
	_ = mysql.SetLogger(log.New(logx.LibraryWriter("mysql"), "", 0))
}
