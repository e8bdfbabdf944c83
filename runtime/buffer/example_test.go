package buffer_test

import (
	"context"
	"fmt"
	"os"

	"github.com/sluicehq/sluice/runtime/buffer"
	"github.com/sluicehq/sluice/runtime/message"
)

// Workers append the outputs of each source event (tagging the last one),
// acknowledge the source once Append returned, and one drain delivers and
// commits.
func Example() {
	dir, _ := os.MkdirTemp("", "sluice-buffer-example")
	defer os.RemoveAll(dir)
	b, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 64 << 20, WhenFull: buffer.Block})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	ctx := context.Background()

	// Source event 0 gave two outputs, event 1 gave one.
	outs := []message.Message{{Payload: []byte("a0")}, {Payload: []byte("a1")}, {Payload: []byte("b0")}}
	tags := []buffer.Tag{{Group: 0}, {Group: 0, Last: true}, {Group: 1, Last: true}}
	if err := b.Append(ctx, outs, tags); err != nil {
		fmt.Println(err)
		return
	}
	// ... the source batch may be acknowledged now.

	batch, err := b.Read(ctx, 100)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, m := range batch.Msgs {
		fmt.Printf("%s group=%d last=%v\n", m.Payload, batch.Tags[i].Group, batch.Tags[i].Last)
	}
	// ... deliver batch.Msgs to the sink, then:
	if err := b.Commit(batch.Cursor); err != nil {
		fmt.Println(err)
	}
	st := b.Stats()
	fmt.Printf("records=%d bytes=%d segments=%d backlog dated: %v\n", st.Records, st.Bytes, st.Segments, !st.Oldest.IsZero())
	// Output:
	// a0 group=0 last=false
	// a1 group=0 last=true
	// b0 group=1 last=true
	// records=0 bytes=172 segments=1 backlog dated: false
}
