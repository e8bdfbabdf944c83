package cdc

import "github.com/sluicehq/sluice/runtime/jsonscan"

// SetSubject replaces the CloudEvents subject of t's events, for databases
// whose tables live in a database rather than a schema: MySQL's subject is
// "db.table" while its source.schema is null. Call it right after
// NewTable, before t is shared.
func (t *Table) SetSubject(subject string) {
	t.subject = jsonscan.AppendEscaped(nil, []byte(subject))
}
