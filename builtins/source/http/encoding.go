package http

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// coding is a request's Content-Encoding.
type coding uint8

const (
	codingIdentity coding = iota
	codingGzip
	codingDeflate
	codingZstd
)

var codingNames = [...]string{"identity", "gzip", "deflate", "zstd"}

func (c coding) String() string { return codingNames[c] }

const acceptedEncodings = "gzip, deflate, zstd or identity"

// parseCoding reads a Content-Encoding header. One coding is accepted
// (identity entries aside); anything else is refused with 415 before the
// body is read, so compressed bytes are never taken for events.
func parseCoding(h []string) (coding, *statusError) {
	c := codingIdentity
	for _, v := range h {
		for tok := range strings.SplitSeq(v, ",") {
			var next coding
			switch strings.ToLower(strings.TrimSpace(tok)) {
			case "", "identity":
				continue
			case "gzip", "x-gzip":
				next = codingGzip
			case "deflate":
				next = codingDeflate
			case "zstd":
				next = codingZstd
			default:
				return 0, &statusError{code: http.StatusUnsupportedMediaType,
					msg: fmt.Sprintf("unsupported Content-Encoding %q: send %s", strings.TrimSpace(tok), acceptedEncodings)}
			}
			if c != codingIdentity {
				return 0, &statusError{code: http.StatusUnsupportedMediaType,
					msg: "more than one Content-Encoding: send the body compressed once, with " + acceptedEncodings}
			}
			c = next
		}
	}
	return c, nil
}

// maxZstdWindow is the largest zstd window accepted whatever
// max_body_size: what zstd's levels up to 19 use.
const maxZstdWindow = 8 << 20

// errDecoded marks a body that does not decode under its Content-Encoding.
var errDecoded = errors.New("cannot decode the body")

// decoders pools the decompressors: each holds tens of KiB of tables.
type decoders struct {
	maxBody int64
	gzip    sync.Pool // *gzip.Reader
	zstd    sync.Pool // *zstd.Decoder
	flate   sync.Pool // io.ReadCloser implementing flate.Resetter
	zlib    sync.Pool // io.ReadCloser implementing zlib.Resetter
}

// decoded is a body being decompressed; close returns the decoder to its
// pool.
type decoded struct {
	io.Reader
	close func()
}

// open returns a reader of r decoded under c. An error from open (a body
// that does not start as the encoding says) wraps errDecoded; the reader's
// own errors are told apart by the caller, which knows whether the
// connection below failed.
func (d *decoders) open(c coding, r io.Reader) (decoded, error) {
	switch c {
	case codingGzip:
		zr, _ := d.gzip.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(r)
		} else {
			err = zr.Reset(r)
		}
		if err != nil {
			return decoded{}, fmt.Errorf("%w as gzip: %v", errDecoded, err)
		}
		zr.Multistream(true)
		return decoded{zr, func() { d.gzip.Put(zr) }}, nil
	case codingZstd:
		zd, _ := d.zstd.Get().(*zstd.Decoder)
		if zd == nil {
			// One goroutine, low memory, and a bounded window: a frame
			// asking for more than a body may hold (or the 8 MiB of
			// zstd's usual levels) is refused, not allocated.
			window := uint64(max(d.maxBody, maxZstdWindow))
			var err error
			zd, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(window), zstd.WithDecoderMaxMemory(window))
			if err != nil {
				return decoded{}, err
			}
		}
		if err := zd.Reset(r); err != nil {
			return decoded{}, fmt.Errorf("%w as zstd: %v", errDecoded, err)
		}
		return decoded{zd, func() { zd.Reset(nil); d.zstd.Put(zd) }}, nil
	case codingDeflate:
		// HTTP's "deflate" is zlib (RFC 9110 §8.4.1.2), but some clients
		// send raw deflate: tell them apart by the zlib header.
		br := bufio.NewReaderSize(r, 16)
		if hdr, err := br.Peek(2); err == nil && hdr[0]&0x0f == 8 && (uint16(hdr[0])<<8|uint16(hdr[1]))%31 == 0 {
			zr, _ := d.zlib.Get().(io.ReadCloser)
			var err error
			if zr == nil {
				zr, err = zlib.NewReader(br)
			} else {
				err = zr.(zlib.Resetter).Reset(br, nil)
			}
			if err != nil {
				return decoded{}, fmt.Errorf("%w as deflate (zlib): %v", errDecoded, err)
			}
			return decoded{zr, func() { d.zlib.Put(zr) }}, nil
		}
		fr, _ := d.flate.Get().(io.ReadCloser)
		if fr == nil {
			fr = flate.NewReader(br)
		} else {
			fr.(flate.Resetter).Reset(br, nil)
		}
		return decoded{fr, func() { d.flate.Put(fr) }}, nil
	}
	return decoded{Reader: r, close: func() {}}, nil
}
