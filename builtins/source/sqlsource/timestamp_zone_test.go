package sqlsource

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/testkit"
)

// TestTimestampDelayLocalTimeColumn: a column without a zone (DATETIME,
// timestamp without time zone) written by sessions in a zone west of UTC
// holds local time; timestamp_delay's cut-off must be in that zone
// (timestamp_zone), or a row written just now is read at once (its local
// time is hours "older" than the UTC cut-off) and a transaction committing
// late with an earlier timestamp is skipped.
func TestTimestampDelayLocalTimeColumn(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	for _, mk := range []func(testing.TB) *db{pgDB, myDB} {
		d := mk(t)
		t.Run(d.driver, func(t *testing.T) {
			tsType, localNow := "timestamp(6)", "localtimestamp"
			if d.driver == "mysql" {
				// No time zone tables: a session at New York's offset now.
				_, off := time.Now().In(ny).Zone()
				zone := fmt.Sprintf("%+03d:%02d", off/3600, (abs(off)%3600)/60)
				tsType, localNow = "datetime(6)", "CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', '"+zone+"')"
			} else {
				d.exec(t, "SET TimeZone = 'America/New_York'")
				t.Cleanup(func() { d.exec(t, "RESET TimeZone") })
			}
			tbl := d.table(t, "id int PRIMARY KEY, at "+tsType)
			// Row 1 was written two hours ago, row 2 just now (local time).
			d.exec(t, fmt.Sprintf("INSERT INTO %s VALUES (1, %s - INTERVAL '2' HOUR), (2, %s)", tbl, localNow, localNow))
			src := d.open(t, t.TempDir(), fmt.Sprintf("table = %q\nmode = \"timestamp+incrementing\"\ntimestamp_column = \"at\"\n"+
				"incrementing_column = \"id\"\ntimestamp_delay = \"1h\"\ntimestamp_zone = \"America/New_York\"", tbl))
			ctx, cancel := context.WithTimeout(context.Background(), testkit.Scale(testkit.DefaultWait))
			defer cancel()
			b, err := src.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(b.Messages) != 1 {
				t.Fatalf("read %d rows, want only the one older than timestamp_delay", len(b.Messages))
			}
			b.Ack(nil)
		})
	}
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
