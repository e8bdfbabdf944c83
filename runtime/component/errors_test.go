package component

import (
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := map[string]time.Duration{
		"":                               0,
		"0":                              0,
		"-5":                             0,
		" 12 ":                           12 * time.Second,
		"99999999999":                    7 * 24 * time.Hour,
		"99999999999999999999":           7 * 24 * time.Hour, // past int64: the cap, not nothing
		"-99999999999999999999":          0,
		"Fri, 02 Jan 2026 03:05:05 GMT":  time.Minute,
		"Friday, 02-Jan-26 03:05:05 GMT": time.Minute, // RFC 850
		"Fri Jan  2 03:05:05 2026":       time.Minute, // asctime
		"Fri, 02 Jan 2026 03:00:00 GMT":  0,
		"Thu, 01 Jan 1970 00:00:00 GMT":  0,
		"Sat, 10 Jan 2026 03:04:05 GMT":  7 * 24 * time.Hour, // 8 days: capped like the seconds form
		"Fri, 31 Dec 9999 23:59:59 GMT":  7 * 24 * time.Hour,
		"tomorrow":                       0,
	}
	for in, want := range cases {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
