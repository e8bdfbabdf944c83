// Package binlog speaks the part of the MySQL/MariaDB client/server protocol
// a replica needs: it connects and authenticates, registers as a replica,
// asks for the binary log from a file/position or (MariaDB) a GTID position,
// and parses the events of a row-based binary log into transactions, table
// maps and rows whose values it renders as JSON.
//
// It is written for the mysql_cdc source, against MariaDB 10.11 and the
// published protocol, and keeps to what that source needs:
//
//   - authentication: mysql_native_password, caching_sha2_password (fast
//     path, and the full path over TLS or with the server's RSA key), an
//     authentication switch to either; TLS when the configuration asks;
//   - events: format description (with CRC32 checksums verified on every
//     event when the server writes them), rotate, MariaDB GTID and GTID list,
//     MySQL GTID, query (BEGIN, COMMIT, DDL), XID, table map (with the
//     optional metadata of binlog_row_metadata = MINIMAL/FULL), write,
//     update and delete rows in versions 1 (MariaDB) and 2 (MySQL 5.6+),
//     heartbeat; other events are handed over raw and skipped by callers;
//   - values: every column type of MySQL and MariaDB except MySQL's partial
//     JSON updates (PARTIAL_UPDATE_ROWS_EVENT) and MariaDB's compressed
//     events (log_bin_compress), which are reported as errors.
//
// Ordinary queries go through go-sql-driver/mysql; this package's connection
// is only for the replication stream, which that driver cannot read.
//
// Parsing functions never panic on malformed input: every length is checked
// and a short or inconsistent event is an error (the fuzz tests hold them to
// that, seeded with events captured from a real server).
package binlog
