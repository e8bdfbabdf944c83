package sdk

import (
	"time"
)

// Record is one input record. Its byte slices point into the batch the host
// wrote: they are valid until the handler returns and must not be modified.
// Copy what you keep longer.
type Record struct {
	batch   []byte
	desc    []byte
	index   int
	payload []byte
	flags   uint32
}

// Header is one record header.
type Header struct {
	Key, Value []byte
}

func (r *Record) reset(batch []byte, i int) {
	d := batch[batchHeaderSize+recordSize*i : batchHeaderSize+recordSize*(i+1)]
	r.batch, r.desc, r.index = batch, d, i
	// The event and key are sliced when asked for: most handlers read only
	// the payload, and in WASM every bounds check counts.
	r.payload = span(batch, d[0:], d[4:])
	r.flags = le.Uint32(d[36:])
}

func span(b, off, n []byte) []byte {
	o, l := le.Uint32(off), le.Uint32(n)
	return b[o : o+l : o+l]
}

// Index is the record's position in the batch.
func (r *Record) Index() int { return r.index }

// Payload is what this transform reads: the source event's CloudEvents JSON
// for the first transform of a task, the previous transform's output
// otherwise.
func (r *Record) Payload() []byte { return r.payload }

// Event is the original source event (CloudEvents JSON), unchanged by
// earlier transforms. Read its attributes (id, source, type, time) here.
func (r *Record) Event() []byte { return span(r.batch, r.desc[56:], r.desc[60:]) }

// PayloadIsEvent reports whether the payload is still the source event.
func (r *Record) PayloadIsEvent() bool { return r.flags&flagPayloadEvent != 0 }

// Key returns the record key and whether the record has one.
func (r *Record) Key() ([]byte, bool) {
	return span(r.batch, r.desc[8:], r.desc[12:]), r.flags&flagHasKey != 0
}

// Stream names the ordered stream the record came from (a Kafka topic, a
// file path).
func (r *Record) Stream() []byte { return span(r.batch, r.desc[24:], r.desc[28:]) }

// Partition is the record's partition within its stream.
func (r *Record) Partition() int32 { return int32(le.Uint32(r.desc[32:])) }

// Offset is the record's offset in its partition.
func (r *Record) Offset() int64 { return int64(le.Uint64(r.desc[40:])) }

// Time is the source timestamp, if the source set one.
func (r *Record) Time() (time.Time, bool) {
	if r.flags&flagHasTime == 0 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(le.Uint64(r.desc[48:]))), true
}

// NumHeaders is the number of headers.
func (r *Record) NumHeaders() int { return int(le.Uint32(r.desc[20:])) }

// Header returns header i (0 <= i < NumHeaders).
func (r *Record) Header(i int) Header {
	e := r.batch[int(le.Uint32(r.desc[16:]))+headerEntrySize*i:]
	return Header{Key: span(r.batch, e[0:], e[4:]), Value: span(r.batch, e[8:], e[12:])}
}

// HeaderValue returns the value of the first header named key.
func (r *Record) HeaderValue(key string) ([]byte, bool) {
	for i := range r.NumHeaders() {
		h := r.Header(i)
		if string(h.Key) == key {
			return h.Value, true
		}
	}
	return nil, false
}

// Headers returns a copy of the header list (allocates).
func (r *Record) Headers() []Header {
	hs := make([]Header, r.NumHeaders())
	for i := range hs {
		hs[i] = r.Header(i)
	}
	return hs
}
