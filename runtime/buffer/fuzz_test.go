package buffer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/runtime/message"
)

func seedBody(m message.Message, tag Tag) []byte {
	return appendFrame(nil, &m, tag, true)[frameOverhead:]
}

// FuzzDecodeRecord: any body either decodes to a record that encodes and
// decodes back to the same record, or is rejected; it never panics.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(seedBody(testMsg(3), Tag{Group: 2, Last: true}))
	f.Add(seedBody(message.Message{}, Tag{}))
	f.Add(seedBody(message.Message{Payload: []byte("x"), Event: []byte("x")}, Tag{}))
	f.Add(make([]byte, minRecord))
	f.Fuzz(func(t *testing.T, body []byte) {
		var d decodeState
		var m message.Message
		var tag Tag
		flags, err := d.decodeRecord(body, &m, &tag)
		if err != nil {
			return
		}
		again := seedBody(m, tag)
		if flags&flagBatchEnd == 0 {
			again[0] &^= flagBatchEnd
		}
		var m2 message.Message
		var tag2 Tag
		if _, err := d.decodeRecord(again, &m2, &tag2); err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if diff := sameMsg(m2, m); diff != "" || tag2 != tag {
			t.Fatalf("round trip changed the record: %s (tags %v, %v)", diff, tag, tag2)
		}
	})
}

// FuzzSegment puts arbitrary bytes after a valid segment header and opens
// the buffer: Open never fails or panics because of them, keeps only whole
// valid records, and the buffer reads and appends normally afterwards.
func FuzzSegment(f *testing.F) {
	valid := func(msgs ...message.Message) []byte {
		var b []byte
		for i := range msgs {
			b = appendFrame(b, &msgs[i], Tag{Last: true}, i == len(msgs)-1)
		}
		return b
	}
	three := valid(testMsgs(0, 3)...)
	f.Add(three)
	f.Add(three[:len(three)-7])
	f.Add(append(valid(testMsg(1)), valid(testMsgs(2, 2)...)...))
	f.Add(append(bytes.Clone(three), 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		hdr := segHeader{seq: 1}.append(nil)
		if err := os.WriteFile(filepath.Join(dir, "00000000000000000001.seg"), append(hdr, data...), 0o644); err != nil {
			t.Fatal(err)
		}
		b, err := Open(Options{Dir: dir, MaxSize: 1 << 20, NoSync: true})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer b.Close()
		r := b.Recovery()
		if r.Bytes+r.TruncatedBytes != int64(len(hdr)+len(data)) {
			t.Fatalf("recovery %+v does not account for %d bytes", r, len(hdr)+len(data))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for left := r.Records; left > 0; {
			batch, err := b.Read(ctx, 100)
			if err != nil {
				t.Fatalf("Read with %d of %d records left: %v", left, r.Records, err)
			}
			left -= uint64(len(batch.Msgs))
		}
		if s := b.Stats(); s.Lost != 0 || s.Unread != 0 {
			t.Fatalf("stats %+v after reading what recovery kept", s)
		}
		if err := b.Append(ctx, testMsgs(0, 2), nil); err != nil {
			t.Fatal(err)
		}
		got, err := b.Read(ctx, 10)
		if err != nil || len(got.Msgs) != 2 || sameMsg(got.Msgs[1], testMsg(1)) != "" {
			t.Fatalf("after recovery, Read = %d records, %v", len(got.Msgs), err)
		}
	})
}
