package component

import (
	"math"
	"strconv"
	"testing"
)

// A size is used as an int limit on buffers. Past 2 GiB on a 32-bit
// platform (armv7) int(size) was negative, and every comparison with it
// failed: Int saturates instead, which as a limit means no limit.
func TestByteSizeInt(t *testing.T) {
	big := int64(3) << 30
	want := int(min(big, math.MaxInt32))
	if strconv.IntSize == 64 {
		want = int(big)
	}
	if got := ByteSize(big).Int(); got != want {
		t.Errorf("ByteSize(3GiB).Int() = %d, want %d", got, want)
	}
	if got := ByteSize(math.MaxInt64).Int(); got != math.MaxInt {
		t.Errorf("ByteSize(MaxInt64).Int() = %d, want %d", got, math.MaxInt)
	}
	if got := ByteSize(512).Int(); got != 512 {
		t.Errorf("ByteSize(512).Int() = %d", got)
	}
	if ByteSize(big).Int() <= 0 {
		t.Error("a large size is not a positive limit")
	}
}
