// Package lines frames payloads as newline-delimited records, the way every
// line-writing sink (stdout, files) must (docs/architecture.md, "Line sources and line sinks"): each payload is
// followed by a newline, a JSON payload is written compact, and a non-JSON
// payload holding a newline is refused rather than breaking the framing.
package lines

import (
	"bytes"
	"errors"

	"github.com/sluicehq/sluice/runtime/jsonscan"
)

// ErrNewline is returned for a non-JSON payload that holds a newline.
var ErrNewline = errors.New("payload is not JSON and holds a newline, which would break the one-record-per-line framing")

// Append appends payload and a newline to dst.
func Append(dst, payload []byte) ([]byte, error) {
	if n := len(payload); n > 0 && (payload[0] == '{' || payload[0] == '[') && (payload[n-1] == '}' || payload[n-1] == ']') {
		// The common case: compact JSON is copied as it is, without a full
		// validation (a raw newline cannot hide in it unnoticed).
		if jsonscan.IsCompact(payload) && bytes.IndexByte(payload, '\n') < 0 {
			dst = append(dst, payload...)
			return append(dst, '\n'), nil
		}
	}
	i := jsonscan.SkipSpace(payload, 0)
	if i < len(payload) && jsonscan.Valid(payload) {
		if jsonscan.IsCompact(payload) && i == 0 && !hasTrailingSpace(payload) {
			dst = append(dst, payload...)
		} else {
			end := len(payload)
			for end > i && isSpace(payload[end-1]) {
				end--
			}
			dst = jsonscan.AppendCompact(dst, payload[i:end])
		}
		return append(dst, '\n'), nil
	}
	if bytes.IndexByte(payload, '\n') >= 0 {
		return dst, ErrNewline
	}
	dst = append(dst, payload...)
	return append(dst, '\n'), nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func hasTrailingSpace(b []byte) bool { return len(b) > 0 && isSpace(b[len(b)-1]) }
