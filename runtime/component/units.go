package component

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a config duration written as a Go duration string ("500ms",
// "2s", "1h30m"). Config keys never carry unit suffixes.
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. \"500ms\", \"2s\", \"1m\")", b)
	}
	if v < 0 {
		return fmt.Errorf("invalid duration %q: must not be negative", b)
	}
	*d = Duration(v)
	return nil
}

// String renders the duration as Go does.
func (d Duration) String() string { return time.Duration(d).String() }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size in bytes written as "512", "64KiB", "32MiB", "1GiB"
// (also KB, MB, GB as powers of 1000).
type ByteSize int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"B", 1},
}

// UnmarshalText parses a size such as "64KiB".
func (s *ByteSize) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	mult := int64(1)
	num := str
	for _, u := range sizeUnits {
		if strings.HasSuffix(str, u.suffix) {
			mult = u.mult
			num = strings.TrimSpace(strings.TrimSuffix(str, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || (mult > 1 && n > (1<<62)/mult) {
		return fmt.Errorf("invalid size %q (want e.g. \"512\", \"64KiB\", \"32MiB\", \"1GiB\")", b)
	}
	*s = ByteSize(n * mult)
	return nil
}

// String renders the size with the largest exact binary unit.
func (s ByteSize) String() string {
	n := int64(s)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Int is the size as an int, at most math.MaxInt. On 32-bit platforms
// (armv7) a size past 2 GiB is more than any buffer there can hold: as a
// limit it means no limit, where int(size) would be negative and fail
// every comparison (a request body limit of 3 GiB made every request
// panic).
func (s ByteSize) Int() int { return int(min(int64(s), math.MaxInt)) }

// MarshalText renders the size as String does.
func (s ByteSize) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// MarshalText renders the duration as String does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
