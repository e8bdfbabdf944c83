package kafkaconf

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/twmb/franz-go/pkg/kgo"
)

// MinDecompressLimit is the least a record batch may always decompress to
// (DecompressLimit).
const MinDecompressLimit = 64 << 20

// DecompressLimit returns the most bytes one fetched record batch may
// decompress to: configured when it is set (> 0), else 4 x maxEvent (the
// task's max_event_size) and at least MinDecompressLimit. franz-go's own
// default is 1 GiB per batch, and fetch_max_bytes only counts compressed
// bytes: a few KiB of zstd can hold hundreds of MiB.
func DecompressLimit(configured int64, maxEvent int) int {
	n := configured
	if n <= 0 {
		n = max(MinDecompressLimit, 4*int64(maxEvent))
	}
	return int(min(n, math.MaxInt32)) // franz-go's bound
}

// BatchDecompressor decompresses fetched record batches up to a limit, as
// franz-go's default decompressor does, and also stops a partition at a
// batch whose data cannot be decompressed at all (corrupt, or a codec
// error). franz-go stops a partition for good only at a batch over the
// limit (kgo.ErrDecompressTooLarge, which names the batch's offsets); any
// other decompression failure leaves the partition fetching the same batch
// again and again, never past it. So every failure is reported as over the
// limit, and the real cause is kept for Cause: the client calls the
// decompressor and then OnFetchBatchRead for the same batch, which names
// its partition.
//
// Pass it to the client with both kgo.WithDecompressor and kgo.WithHooks.
type BatchDecompressor struct {
	inner kgo.Decompressor
	limit int

	mu sync.Mutex
	// failed are the causes of batches that failed to decompress, by the
	// size and codec of their compressed data, waiting for
	// OnFetchBatchRead to name their partition.
	failed map[compressedBatch][]error
	causes map[topicPartition]error
}

type compressedBatch struct {
	size  int
	codec uint8
}

type topicPartition struct {
	topic     string
	partition int32
}

// NewBatchDecompressor returns a decompressor that refuses batches
// decompressing past limit bytes.
func NewBatchDecompressor(limit int) (*BatchDecompressor, error) {
	// franz-go's default decompressor takes its bound from the client it
	// is built for (kgo.MaxDecompressBatchBytes); one it did not build is
	// bounded at 2 GiB. A client that is never started builds one with
	// our bound.
	cl, err := kgo.NewClient(kgo.MaxDecompressBatchBytes(limit))
	if err != nil {
		return nil, fmt.Errorf("decompressor bounded at %d bytes: %w", limit, err)
	}
	inner, ok := cl.OptValue(kgo.WithDecompressor).(kgo.Decompressor)
	cl.Close()
	if !ok || inner == nil {
		return nil, errors.New("franz-go gave no default decompressor")
	}
	return &BatchDecompressor{inner: inner, limit: limit, failed: map[compressedBatch][]error{}, causes: map[topicPartition]error{}}, nil
}

// Limit returns the most bytes a batch may decompress to.
func (d *BatchDecompressor) Limit() int { return d.limit }

// Decompress implements kgo.Decompressor.
func (d *BatchDecompressor) Decompress(src []byte, codec kgo.CompressionCodecType) ([]byte, error) {
	out, err := d.inner.Decompress(src, codec)
	if err == nil || errors.Is(err, kgo.ErrMaxDecompress) {
		return out, err
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		// The frame asks for a window past the limit (which bounds the
		// decoder's memory): franz-go only knows zstd's other size error.
		return nil, fmt.Errorf("%w: %w", kgo.ErrMaxDecompress, err)
	}
	d.mu.Lock()
	k := compressedBatch{len(src), uint8(codec)}
	if len(d.failed[k]) < 16 { // a batch whose partition is never named must not pile up
		d.failed[k] = append(d.failed[k], err)
	}
	d.mu.Unlock()
	return nil, corruptBatch{err}
}

// OnFetchBatchRead implements kgo.HookFetchBatchRead: a batch that failed to
// decompress (no records) names its partition.
func (d *BatchDecompressor) OnFetchBatchRead(_ kgo.BrokerMetadata, topic string, partition int32, m kgo.FetchBatchMetrics) {
	if m.NumRecords != 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	k := compressedBatch{m.CompressedBytes, m.CompressionType}
	errs := d.failed[k]
	if len(errs) == 0 {
		return
	}
	d.causes[topicPartition{topic, partition}] = errs[0]
	if len(errs) == 1 {
		delete(d.failed, k)
	} else {
		d.failed[k] = errs[1:]
	}
}

// Cause returns (and forgets) why the last batch of a partition that
// failed with kgo.ErrDecompressTooLarge could not be decompressed when it
// was not its size: nil means the batch decompresses past the limit.
func (d *BatchDecompressor) Cause(topic string, partition int32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := topicPartition{topic, partition}
	err := d.causes[k]
	delete(d.causes, k)
	return err
}

// corruptBatch is a decompression failure that is not about the size; it
// counts as over the limit for franz-go, which then stops the partition at
// the batch.
type corruptBatch struct{ err error }

func (e corruptBatch) Error() string { return e.err.Error() }

func (e corruptBatch) Is(target error) bool { return target == kgo.ErrMaxDecompress }

func (e corruptBatch) Unwrap() error { return e.err }

var (
	_ kgo.Decompressor       = (*BatchDecompressor)(nil)
	_ kgo.HookFetchBatchRead = (*BatchDecompressor)(nil)
)
