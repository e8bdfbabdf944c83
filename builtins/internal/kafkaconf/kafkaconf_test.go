package kafkaconf

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/runtime/component"
)

func TestSecretNeverPrints(t *testing.T) {
	s := Secret("hunter2")
	cfg := struct {
		User string
		Pass Secret
	}{"u", s}
	sasl := &SASL{Mechanism: MechPlain, Username: "u", Password: s}
	outs := []string{
		fmt.Sprint(s), fmt.Sprintf("%s %v %+v %#v %q %x %d", s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", cfg, cfg, cfg),
		fmt.Sprintf("%v %+v", sasl, *sasl),
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outs = append(outs, string(b))
	for _, o := range outs {
		if strings.Contains(o, "hunter2") {
			t.Errorf("secret leaked: %s", o)
		}
	}
	if s.Reveal() != "hunter2" {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	if Secret("").String() != "" {
		t.Fatal("empty secret should print empty")
	}
}

func TestValidateBrokers(t *testing.T) {
	tests := []struct {
		name    string
		brokers []string
		want    []string // substrings, one per problem
	}{
		{"ok", []string{"127.0.0.1:9092", "kafka-1.example:19092", "[::1]:9092"}, nil},
		{"empty", nil, []string{"at least one broker"}},
		{"no port", []string{"kafka"}, []string{`did you mean "kafka:9092"`}},
		{"bad port", []string{"kafka:0", "kafka:x", ":9092"}, []string{"1..65535", "1..65535", "1..65535"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := component.NewProblems("source")
			ValidateBrokers(p, "brokers", tt.brokers)
			got := p.List()
			if len(got) != len(tt.want) {
				t.Fatalf("got %d problems %v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Msg, w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i].Msg, w)
				}
				if got[i].Path[0] != "source" || got[i].Path[1] != "brokers" {
					t.Errorf("problem %d path = %v", i, got[i].Path)
				}
			}
		})
	}
}

func TestDecodeSASLAndTLS(t *testing.T) {
	type cfg struct {
		SASL *SASL `toml:"sasl"`
		TLS  *TLS  `toml:"tls"`
	}
	tests := []struct {
		name string
		tree map[string]any
		want []string
	}{
		{"ok", map[string]any{
			"sasl": map[string]any{"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"},
			"tls":  map[string]any{"ca_file": "ca.pem"},
		}, nil},
		{"bad mechanism", map[string]any{
			"sasl": map[string]any{"mechanism": "scram", "username": "u", "password": "p"},
		}, []string{"must be one of"}},
		{"missing", map[string]any{"sasl": map[string]any{}}, []string{"mechanism", "password", "username"}},
		{"half mtls", map[string]any{"tls": map[string]any{"cert_file": "c.pem"}}, []string{"without key_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c cfg
			p := component.NewProblems()
			component.Decode(tt.tree, &c, p)
			got := p.List()
			if len(got) != len(tt.want) {
				t.Fatalf("got problems %v, want %d", got, len(tt.want))
			}
			all := fmt.Sprint(got)
			for _, w := range tt.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems %s do not mention %q", all, w)
				}
			}
		})
	}
}

func TestTLSConfigFiles(t *testing.T) {
	dir := t.TempDir()
	_, err := (&TLS{CAFile: "missing.pem"}).Config(dir)
	if err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Fatalf("missing CA file: err = %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junk.pem"), []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = (&TLS{CAFile: "junk.pem"}).Config(dir)
	if err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("junk CA file: err = %v", err)
	}
	off := false
	opts, err := Conn{Brokers: []string{"b:1"}, TLS: &TLS{Enabled: &off, CAFile: "missing.pem"}}.Options(dir, zerolog.Nop())
	if err != nil || len(opts) == 0 {
		t.Fatalf("disabled TLS must not read files: %v", err)
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		err  error
		want component.Class
	}{
		{kerr.MessageTooLarge, component.ClassEventPermanent},
		{fmt.Errorf("wrapped: %w", kerr.CorruptMessage), component.ClassEventPermanent},
		{kerr.InvalidRecord, component.ClassEventPermanent},
		{kerr.UnknownTopicOrPartition, component.ClassTaskPermanent},
		{kerr.TopicAuthorizationFailed, component.ClassTaskPermanent},
		{kerr.SaslAuthenticationFailed, component.ClassTaskPermanent},
		{kerr.NotLeaderForPartition, component.ClassRetryable},
		{kerr.RequestTimedOut, component.ClassRetryable},
		{kgo.ErrRecordTimeout, component.ClassRetryable},
		{errors.New("dial tcp: connection refused"), component.ClassRetryable},
	}
	for _, tt := range tests {
		if got := Class(tt.err); got != tt.want {
			t.Errorf("Class(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if got := component.ClassOf(Classify(tt.err)); got != tt.want {
			t.Errorf("ClassOf(Classify(%v)) = %v, want %v", tt.err, got, tt.want)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestLoggerLevels(t *testing.T) {
	var sb strings.Builder
	l := NewLogger(zerolog.New(&sb).Level(zerolog.DebugLevel))
	if l.Level() != kgo.LogLevelInfo {
		t.Fatalf("debug logger maps to %v, want INFO", l.Level())
	}
	l.Log(kgo.LogLevelInfo, "req", "broker", 1, "err", errors.New("boom"))
	l.Log(kgo.LogLevelDebug, "hidden")
	out := sb.String()
	if !strings.Contains(out, `"level":"debug"`) || !strings.Contains(out, `"broker":1`) || !strings.Contains(out, `"err":"boom"`) {
		t.Fatalf("unexpected log output %s", out)
	}
	if strings.Contains(out, "hidden") {
		t.Fatalf("kgo debug must map to trace: %s", out)
	}
	if NewLogger(zerolog.Nop()).Level() != kgo.LogLevelNone {
		t.Fatal("disabled logger must disable kgo logging")
	}
}

func TestLoggerSamplesWarnings(t *testing.T) {
	var sb strings.Builder
	l := NewLogger(zerolog.New(&sb))
	for range 50 {
		l.Log(kgo.LogLevelWarn, "unable to open connection to broker")
	}
	if n := strings.Count(sb.String(), "unable to open"); n != 10 {
		t.Fatalf("%d warnings logged, want a burst of 10", n)
	}
}

func TestDecompressLimit(t *testing.T) {
	for _, c := range []struct {
		configured int64
		maxEvent   int
		want       int
	}{
		{0, 1 << 20, 64 << 20},
		{0, 0, 64 << 20},
		{0, 100 << 20, 400 << 20},
		{0, 1 << 30, math.MaxInt32},
		{8 << 20, 100 << 20, 8 << 20},
		{4 << 30, 0, math.MaxInt32},
	} {
		if got := DecompressLimit(c.configured, c.maxEvent); got != c.want {
			t.Errorf("DecompressLimit(%d, %d) = %d, want %d", c.configured, c.maxEvent, got, c.want)
		}
	}
}

// TestBatchDecompressor: a batch over the limit and a batch that cannot be
// decompressed both fail as over the limit (franz-go then stops the
// partition at them, naming their offsets); only the second has a cause,
// found by its partition once the client reports the batch read.
func TestBatchDecompressor(t *testing.T) {
	d, err := NewBatchDecompressor(1 << 10)
	if err != nil {
		t.Fatal(err)
	}
	var big bytes.Buffer
	zw := gzip.NewWriter(&big)
	zw.Write(make([]byte, 4<<10))
	zw.Close()
	if _, err := d.Decompress(big.Bytes(), kgo.CodecGzip); !errors.Is(err, kgo.ErrMaxDecompress) {
		t.Fatalf("4 KiB past a 1 KiB limit: %v", err)
	}
	d.OnFetchBatchRead(kgo.BrokerMetadata{}, "t", 1, kgo.FetchBatchMetrics{CompressedBytes: big.Len(), CompressionType: uint8(kgo.CodecGzip)})
	if cause := d.Cause("t", 1); cause != nil {
		t.Fatalf("a batch over the limit has cause %v", cause)
	}

	bad := []byte("not zstd")
	if _, err := d.Decompress(bad, kgo.CodecZstd); !errors.Is(err, kgo.ErrMaxDecompress) {
		t.Fatalf("corrupt zstd: %v, want it to count as over the limit", err)
	}
	d.OnFetchBatchRead(kgo.BrokerMetadata{}, "t", 2, kgo.FetchBatchMetrics{NumRecords: 3, CompressedBytes: len(bad), CompressionType: uint8(kgo.CodecZstd)})
	d.OnFetchBatchRead(kgo.BrokerMetadata{}, "t", 3, kgo.FetchBatchMetrics{CompressedBytes: len(bad), CompressionType: uint8(kgo.CodecZstd)})
	if cause := d.Cause("t", 2); cause != nil {
		t.Fatalf("a batch read whole got cause %v", cause)
	}
	if cause := d.Cause("t", 3); cause == nil || !strings.Contains(cause.Error(), "magic number mismatch") {
		t.Fatalf("cause %v, want zstd's", cause)
	}
	if cause := d.Cause("t", 3); cause != nil {
		t.Fatalf("the cause is given once, got %v again", cause)
	}

	small := []byte("fits")
	var ok bytes.Buffer
	zw = gzip.NewWriter(&ok)
	zw.Write(small)
	zw.Close()
	if out, err := d.Decompress(ok.Bytes(), kgo.CodecGzip); err != nil || !bytes.Equal(out, small) {
		t.Fatalf("Decompress = %q, %v", out, err)
	}
}
