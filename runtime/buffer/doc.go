// Package buffer is the disk buffer a task can put in front of its sink: a
// persistent FIFO of messages that survives a sink outage, a restart and a
// crash (kill -9), bounded in size, with a policy for when it is full.
//
// The engine's workers Append the outputs of each source batch and ack the
// source batch once Append returned (the records are then on disk); one
// drain goroutine Reads batches in order, delivers them and Commits each
// batch's Cursor. Delivery is at-least-once: after a crash, the records
// after the last committed cursor are read again.
//
//	b, err := buffer.Open(buffer.Options{Dir: dir, MaxSize: 1 << 30})
//	err = b.Append(ctx, outputs, tags)  // workers, concurrently
//	batch, err := b.Read(ctx, 100)      // the drain
//	err = sink.Write(ctx, batch.Msgs)
//	err = b.Commit(batch.Cursor)
//
// # Why a segment log of our own
//
// A FIFO of opaque records needs append, sequential read and deletion of
// the oldest data, nothing else. An embedded B-tree (bbolt) or LSM (pebble)
// would give us keyed random access we never use and make us pay for it:
// bbolt rewrites (copy-on-write) every page a transaction touches and only
// returns freed pages to its freelist, so the file never shrinks after a
// backlog; pebble brings a write-ahead log, memtables and background
// compaction that rewrite the data we are about to delete (a deletion is a
// tombstone), with their own memory budget and tuning, and a large
// dependency. A segment log writes each byte once, reads it once, reclaims
// space by deleting a whole file, costs one fsync per append (fdatasync on
// Linux, shared by the appenders waiting at the same time), and its memory
// is a fixed read-ahead buffer plus the batch being read. The whole format
// is described below and is a few hundred lines to check.
//
// # Files
//
// A buffer directory holds:
//
//	00000000000000000001.seg  segments, named by sequence number (20 digits)
//	cursor                    the committed read position
//	lock                      flock'ed while open: one Buffer per directory
//
// Appends go to the last segment; once it would grow past SegmentSize the
// next Append starts a new one (one Append is never split across two
// segments). A segment is deleted when every record in it is committed, or
// by drop_oldest.
//
// # Segment format (version 1, little-endian)
//
// A 40-byte header:
//
//	0   4  magic "SLBF"
//	4   2  format version (1)
//	6   2  header size (40)
//	8   8  sequence number (as in the file name)
//	16  8  global number of the segment's first record
//	24  8  records with Tag.Last appended before this segment
//	32  4  Unix seconds of the segment's first append (0 = unknown;
//	       reserved and written as 0 by earlier builds)
//	36  4  CRC-32C (Castagnoli) of bytes 0..35
//
// then records, each framed as
//
//	0   4  body size n
//	4   4  CRC-32C of the 4 size bytes followed by the body
//	8   n  body
//
// and the body is
//
//	u8       flags: 1 = last record of its Append call, 2 = Tag.Last,
//	         4 = Event equals Payload and is not stored
//	u32      Tag.Group
//	u32      Pos.Partition (int32)
//	u64      Pos.Offset (int64)
//	u64, u32 Time as Unix seconds (int64) and nanoseconds
//	uvarint  len, bytes: Pos.Stream
//	uvarint  len+1, bytes: Key      (0 = nil, so nil and empty differ)
//	uvarint  len+1, bytes: Payload
//	uvarint  len+1, bytes: Event    (the original source event; absent with flag 4)
//	uvarint  header count, then per header:
//	         uvarint len, bytes: key; uvarint len+1, bytes: value
//
// Unknown flag bits, trailing bytes and fields running past the body are
// errors. Message.Err and Message.Ref are not stored: a record with Err
// never reaches the sink, and Ref means nothing outside its source batch.
// A record is at most MaxRecordSize bytes.
//
// The cursor file has two 64-byte slots written alternately in place
// ("SLCR", version u16, 2 reserved bytes, generation u64, segment u64,
// offset u64, record number u64, Last count u64, 12 reserved bytes, CRC-32C
// of bytes 0..59); Open takes the valid slot with the highest generation.
// A torn cursor write therefore falls back to the previous position (more
// records read again, none skipped).
//
// # Guarantees
//
//   - Append is durable when it returns (fsync; NoSync trades this for
//     speed, keeping only crash-of-the-process safety) and all or nothing:
//     its last record carries an end marker and recovery cuts every record
//     after the last marker, so a crash mid-append leaves none of that
//     append. Concurrent appends are each contiguous.
//   - Read returns records in append order; a record becomes readable once
//     its Append is durable.
//   - Commit persists the read position with one 64-byte write (plus an
//     fsync unless NoSync); a crash after Commit returned never makes Read
//     return those records again, a crash before it does (at-least-once).
//   - The segment files never exceed MaxSize bytes in total. Block makes
//     Append wait for the drain; DropOldest deletes the oldest segments,
//     read or not, and counts the unread records it deleted (Stats.Dropped).
//     Records already returned by Read but not committed are in the
//     drain's hands: they are counted only if the drain gives them back
//     undelivered (Rewind, Close) instead of committing them, since their
//     file is gone and no later Read returns them.
//   - A file system that fills before MaxSize (ENOSPC, EDQUOT) counts as a
//     full buffer: the refused write is cut back to the last whole append
//     and Append waits (Block: until the reader frees a segment, trying
//     again every second) or drops the oldest segment (DropOldest). The
//     cursor file is written whole at Open, so Commit, which frees space,
//     never needs a new block. Once every record is delivered, the
//     segment being written to is deleted and a new one started, so a
//     disk smaller than one segment fills and empties again; the reader
//     closes its file whenever it waits, since a deleted file keeps its
//     blocks while a descriptor holds it. Open on a full disk with no
//     segment to keep does not fail: the first Append waits for room to
//     create one. Stats.DiskFull says when the disk is full.
//   - Files deleted under an open buffer (its folder removed) make Append
//     fail for good, rather than report stored records no restart would
//     find; the task then stops, and its next start creates the folder
//     again.
//   - Stats.Oldest dates the oldest uncommitted record by its append time
//     (one mark a second at most, at most 4096 marks, thinned to twice
//     the spacing when full: a day's backlog is dated within 48 s);
//     segment headers keep the time of their first append, which dates
//     older records after a restart.
//   - Memory is bounded by a 256 KiB read-ahead plus ReadBytes per batch,
//     whatever the backlog; Open reads the last segment once to check it.
//
// # Damage
//
// A crash can only tear the end of the last segment (earlier segments were
// complete and synced before the next one was started), so Open checks the
// records of the last segment after the cursor and cuts the tail at the
// first bad frame or incomplete Append, reporting it in Recovery; it never
// fails because of damage. Damage elsewhere means the disk or the OS
// misbehaved (or NoSync was on and the machine crashed). Open does not read
// the older segments; the reader checks every record's checksum, and when
// one is bad it logs an error, skips the rest of that segment (the records
// after a bad length cannot be found reliably; in the segment still being
// written to, everything written so far) and counts the skipped records in
// Stats.Lost, which the header of the next segment makes exact.
// Stopping the task instead would hold every later record hostage to one
// bad sector, which is the opposite of what an edge buffer is for; a
// segment with a damaged header is removed at Open and the gap it leaves is
// counted the same way. A damaged cursor file makes Open start again from
// the oldest segment.
package buffer
