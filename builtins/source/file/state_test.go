package file

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/builtins/internal/checkpoint"
)

func encodeState(t testing.TB, st *state) []byte {
	var buf bytes.Buffer
	if err := checkpoint.Encode(&buf, st, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var goodState = &state{Mode: "tail", Streams: []streamState{{
	Path: "/var/log/app.log", NextGen: 3,
	Files: []fileState{
		{Dev: 2049, Ino: 77, Gen: 1, Offset: 4096, Fingerprint: "0123456789abcdef", FingerprintLen: 1024, Name: "/var/log/app.log.1"},
		{Dev: 2049, Ino: 78, Gen: 2, Offset: 0, Fingerprint: "cbf29ce484222325", FingerprintLen: 0, Name: "/var/log/app.log"},
	},
}}}

func TestDecodeState(t *testing.T) {
	got, err := decodeState(encodeState(t, goodState))
	if err != nil || !reflect.DeepEqual(got, goodState) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	mutate := func(f func(*state)) []byte {
		st := *goodState
		st.Streams = []streamState{goodState.Streams[0]}
		st.Streams[0].Files = append([]fileState(nil), goodState.Streams[0].Files...)
		f(&st)
		return encodeState(t, &st)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"garbage", []byte("\xff\xfe"), "invalid character"},
		{"bad mode", mutate(func(s *state) { s.Mode = "x" }), `mode: "x"`},
		{"relative path", mutate(func(s *state) { s.Streams[0].Path = "app.log" }), "streams[0].path"},
		{"duplicate stream", mutate(func(s *state) { s.Streams = append(s.Streams, s.Streams[0]) }), "appears twice"},
		{"negative offset", mutate(func(s *state) { s.Streams[0].Files[0].Offset = -1 }), "streams[0].files[0].offset: -1 is negative"},
		{"gen beyond next", mutate(func(s *state) { s.Streams[0].Files[1].Gen = 3 }), "streams[0].files[1].gen"},
		{"duplicate gen", mutate(func(s *state) { s.Streams[0].Files[1].Gen = 1 }), "appears twice"},
		{"bad fingerprint", mutate(func(s *state) { s.Streams[0].Files[0].Fingerprint = "xyz" }), "16 hexadecimal digits"},
		{"fingerprint length", mutate(func(s *state) { s.Streams[0].Files[0].FingerprintLen = 5000 }), "fingerprint_len"},
		{"unknown field", bytes.Replace(encodeState(t, goodState), []byte(`"next_gen"`), []byte(`"nextgen"`), 1), `unknown field "nextgen"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeState(c.data)
			if !errors.Is(err, checkpoint.ErrDecode) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error = %v; want ErrDecode containing %q", err, c.want)
			}
		})
	}
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState(f, goodState))
	f.Add(encodeState(f, &state{Mode: "read", Streams: []streamState{}}))
	f.Add([]byte(`{"format":"sluice-checkpoint","version":1,"data":{"mode":"tail","streams":[{"path":"/a","next_gen":1,"files":[{"gen":0,"offset":5,"fingerprint":"00","fingerprint_len":1}]}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := decodeState(data)
		if err != nil {
			if !errors.Is(err, checkpoint.ErrDecode) {
				t.Fatalf("error does not wrap ErrDecode: %v", err)
			}
			return
		}
		// Whatever decodes is valid and survives a round trip.
		again, err := decodeState(encodeState(t, st))
		if err != nil || !reflect.DeepEqual(st, again) {
			t.Fatalf("round trip of %+v: %+v, %v", st, again, err)
		}
		for _, s := range st.Streams {
			for _, f := range s.Files {
				if f.Offset < 0 || f.Gen >= s.NextGen {
					t.Fatalf("invalid state accepted: %+v", f)
				}
			}
		}
	})
}
