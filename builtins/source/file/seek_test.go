package file

import (
	"context"
	"strings"
	"testing"
)

// An operator's rewind reads the followed file again from its start, and
// goes on tailing it.
func TestSeekEarliest(t *testing.T) {
	fx := newFixture(t, tailKeys+`path = "app.log"`)
	p := fx.path("app.log")
	writeFile(t, p, "a\nb\n")
	s := fx.open()
	bs := readBatches(t, s, 2)
	equal(t, "first read", datas(t, msgs(bs)), []string{"a", "b"})
	ackAll(bs)
	if err := s.Seek(context.Background(), "latest"); err == nil || !strings.Contains(err.Error(), "only to the start") {
		t.Fatalf("seek latest: %v", err)
	}
	if err := s.Seek(context.Background(), "earliest"); err != nil {
		t.Fatal(err)
	}
	bs = readBatches(t, s, 2)
	equal(t, "after the rewind", datas(t, msgs(bs)), []string{"a", "b"})
	ackAll(bs)
	appendFile(t, p, "c\n")
	equal(t, "still tailing", datas(t, msgs(readBatches(t, s, 1))), []string{"c"})
}
