package mysql

// The MySQL driver logs into the structured log.
import _ "github.com/sluicehq/sluice/builtins/internal/mysqllog"
