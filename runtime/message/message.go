// Package message defines the record that flows through a task: payload bytes
// plus the metadata a source attached to it.
//
// A Message is a value type. Stages copy it and replace fields (a transform
// sets Payload, a WASM module may change Key and Headers); the byte slices it
// points to are owned by whoever produced them and must not be modified in
// place by later stages. Sinks must not retain a Message's slices after their
// Write returns: the engine reuses the buffers that back transform outputs.
package message

import (
	"strconv"
	"time"
)

// Message is one record inside a task.
type Message struct {
	// Payload is what the next stage reads. At the source it is the event's
	// CloudEvents JSON; after a transform it is that transform's output.
	Payload []byte
	// Event is the original source event (CloudEvents JSON), unchanged for the
	// whole life of the record. Sink templates and dead-letter records read it.
	Event []byte
	// Key is the record key (Kafka key, routing key), if any.
	Key []byte
	// Headers are the record headers, in source order. Keys may repeat.
	Headers []Header
	// Time is the source timestamp (Kafka record time, time of ingest).
	Time time.Time
	// Pos is where the record came from; ids and checkpoints derive from it.
	Pos Position
	// Err is set by a source for an input it could not decode (strict format,
	// over-size event). The engine sends such a record to the dead-letter path
	// at stage "decode" and counts it as handled; Payload and Event then hold
	// the raw input.
	Err error
	// Ref is managed by the engine: the index of the source record this one
	// descends from within the batch being processed. Transforms copy it from
	// input to output (copying the Message value does so).
	Ref int32
	// Seq is managed by the engine: the index of the message this one
	// descends from among the inputs of the transform that made it (copied
	// like Ref). After a fan-out an event reaches a transform as several
	// messages; when some are retried, their outputs go back to their
	// place among the event's other outputs by it.
	Seq int32
}

// Header is one record header.
type Header struct {
	Key   string
	Value []byte
}

// Position locates a record in its source: a Kafka topic-partition-offset, a
// file and byte offset, an HTTP request and index.
type Position struct {
	// Stream names the ordered stream (topic, file path, "stdin").
	Stream string
	// Partition is the partition within Stream (0 where there is one).
	Partition int32
	// Offset is the record's offset in the partition (byte offset for files).
	Offset int64
}

// String renders the position as "stream-partition-offset", the form used
// for deterministic event ids and in dead-letter records.
func (p Position) String() string {
	return string(p.AppendID(nil))
}

// AppendID appends "stream-partition-offset" to dst without allocating.
func (p Position) AppendID(dst []byte) []byte {
	dst = append(dst, p.Stream...)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, int64(p.Partition), 10)
	dst = append(dst, '-')
	return strconv.AppendInt(dst, p.Offset, 10)
}

// HeaderValue returns the value of the first header named key.
func (m *Message) HeaderValue(key string) ([]byte, bool) {
	for i := range m.Headers {
		if m.Headers[i].Key == key {
			return m.Headers[i].Value, true
		}
	}
	return nil, false
}
