package checkpoint

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type pos struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
}

func TestSaveLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "task-a")
	s, err := Open(dir, "source.file")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got pos
	if ok, err := s.Load(&got); ok || err != nil {
		t.Fatalf("Load on empty store = %v, %v; want false, nil", ok, err)
	}
	for _, want := range []pos{{"a.log", 10}, {"b.log", 1 << 40}} {
		if err := s.Save(want); err != nil {
			t.Fatal(err)
		}
		got = pos{}
		if ok, err := s.Load(&got); !ok || err != nil || got != want {
			t.Fatalf("Load = %+v, %v, %v; want %+v", got, ok, err, want)
		}
	}
	if _, err := os.Stat(s.Path() + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
	if err := s.Remove(); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Load(&got); ok || err != nil {
		t.Fatalf("Load after Remove = %v, %v", ok, err)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir, "source.file")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, "source.file"); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v; want ErrLocked", err)
	}
	b, err := Open(dir, "other")
	if err != nil {
		t.Fatalf("another name must not conflict: %v", err)
	}
	b.Close()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := Open(dir, "source.file")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	c.Close()
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.TempDir(), "../x"); err == nil {
		t.Error("a name with a path separator must be rejected")
	}
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o600)
	_, err := Open(filepath.Join(file, "sub"), "x")
	if err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Errorf("Open under a file = %v; want a state directory error", err)
	}
}

func TestLoadCorrupt(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, "x")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	os.WriteFile(s.Path(), []byte("{\"format\":\"sluice-checkpoint\",\"vers"), 0o600)
	var p pos
	_, err = s.Load(&p)
	if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), s.Path()) {
		t.Fatalf("Load of a torn file = %v; want ErrDecode naming the file", err)
	}
}

func TestDir(t *testing.T) {
	if got := Dir("/var/lib/sluice", "/etc/tasks", "t1"); got != "/var/lib/sluice/t1" {
		t.Errorf("Dir = %s", got)
	}
	if got := Dir("", "/etc/tasks", "t1"); got != "/etc/tasks/.sluice-state/t1" {
		t.Errorf("Dir default = %s", got)
	}
}

func TestDecode(t *testing.T) {
	var buf bytes.Buffer
	if err := Encode(&buf, pos{"a", 1}, time.Unix(0, 0)); err != nil {
		t.Fatal(err)
	}
	good := buf.String()
	cases := []struct {
		name, in, want string
	}{
		{"good", good, ""},
		{"empty", "", "empty document"},
		{"garbage", "\x00\x01garbage", "invalid character"},
		{"array", "[]", "cannot unmarshal array"},
		{"wrong format", `{"format":"x","version":1,"data":{}}`, `not a sluice checkpoint`},
		{"future version", `{"format":"sluice-checkpoint","version":2,"data":{}}`, "unsupported version 2"},
		{"no data", `{"format":"sluice-checkpoint","version":1}`, "no data"},
		{"null data", `{"format":"sluice-checkpoint","version":1,"data":null}`, "no data"},
		{"unknown envelope field", `{"format":"sluice-checkpoint","version":1,"data":{},"x":1}`, `unknown field "x"`},
		{"unknown data field", `{"format":"sluice-checkpoint","version":1,"data":{"y":1}}`, `unknown field "y"`},
		{"wrong type", `{"format":"sluice-checkpoint","version":1,"data":{"offset":"1"}}`, "cannot unmarshal string"},
		{"trailing", good + "{}", "trailing data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var p pos
			err := Decode([]byte(c.in), &p)
			if c.want == "" {
				if err != nil || p != (pos{"a", 1}) {
					t.Fatalf("Decode = %+v, %v", p, err)
				}
				return
			}
			if !errors.Is(err, ErrDecode) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Decode error = %v; want ErrDecode containing %q", err, c.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, pos{"a.log", 12}, time.Unix(0, 0))
	f.Add(buf.Bytes())
	f.Add([]byte(`{"format":"sluice-checkpoint","version":1,"data":{"file":"\u00e9","offset":-1}}`))
	f.Add([]byte(`{"format":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var p pos
		err := Decode(data, &p)
		if err != nil && !errors.Is(err, ErrDecode) {
			t.Fatalf("error does not wrap ErrDecode: %v", err)
		}
		if err == nil {
			// What decodes must encode and decode to the same value.
			var out bytes.Buffer
			if err := Encode(&out, p, time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
			var q pos
			if err := Decode(out.Bytes(), &q); err != nil || q != p {
				t.Fatalf("round trip: %+v -> %+v, %v", p, q, err)
			}
		}
	})
}
