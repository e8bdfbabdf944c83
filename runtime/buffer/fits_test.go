package buffer

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

// TestFitsAgreesWithAppend: Fits refuses exactly the batches Append refuses
// as too large, so a caller can check a group before appending part of it.
func TestFitsAgreesWithAppend(t *testing.T) {
	msgs := []message.Message{
		{Payload: []byte("p"), Event: []byte("p"), Pos: message.Position{Stream: "s", Offset: 1}},
		{Payload: []byte("p"), Event: []byte("e"), Key: []byte{}, Time: time.Unix(5, 6)},
		{Payload: bytes.Repeat([]byte("x"), 300), Headers: []message.Header{{Key: "k", Value: nil}, {Key: "kk", Value: []byte("v")}}},
	}
	for i := range msgs {
		if got, want := frameSize(&msgs[i]), len(appendFrame(nil, &msgs[i], Tag{Last: true}, true)); got != want {
			t.Errorf("frameSize of message %d = %d, appendFrame writes %d", i, got, want)
		}
	}
	for _, size := range []int{1 << 10, 60 << 10, 64<<10 - 200, 64 << 10, 100 << 10} {
		b := openT(t, Options{Dir: t.TempDir(), MaxSize: 64 << 10}) // empty: only a batch too large is refused
		batch := append(msgs[:2:2], message.Message{Payload: bytes.Repeat([]byte("y"), size)})
		fits := b.Fits(batch)
		if fits != nil && !errors.Is(fits, ErrTooLarge) {
			t.Fatalf("Fits(%d bytes): %v, not ErrTooLarge", size, fits)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := b.Append(ctx, batch, nil)
		cancel()
		if tooLarge := errors.Is(err, ErrTooLarge); tooLarge != (fits != nil) {
			t.Errorf("payload of %d bytes: Fits says %v, Append %v", size, fits, err)
		}
		if err != nil && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("append: %v", err)
		}
	}
}
