package file

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readLines(t *testing.T, content string, limit int, final bool) []rawLine {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, content)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lr := newLineReader(f, 0, limit)
	var out []rawLine
	for {
		ln, ok, err := lr.next(final)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		ln.data = append([]byte(nil), ln.data...)
		out = append(out, ln)
	}
}

func TestLineReader(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	cases := []struct {
		name    string
		content string
		limit   int
		final   bool
		want    []string // data, with "+N" appended when cut (N = full size)
		offs    []int64
	}{
		{"simple", "a\nbb\n\nccc\n", 100, false, []string{"a", "bb", "", "ccc"}, []int64{0, 2, 5, 6}},
		{"crlf kept for the wrapper", "a\r\nb\r\n", 100, false, []string{"a\r", "b\r"}, []int64{0, 3}},
		{"partial last line held", "a\nb", 100, false, []string{"a"}, []int64{0}},
		{"partial last line at the end", "a\nb", 100, true, []string{"a", "b"}, []int64{0, 2}},
		{"line at the limit", "12345\n", 5, false, []string{"12345"}, []int64{0}},
		{"line at the limit with CR", "12345\r\n", 5, false, []string{"12345\r"}, []int64{0}},
		{"line over the limit is cut", "1234567\nok\n", 5, false, []string{"12345+7", "ok"}, []int64{0, 8}},
		{"huge line cut, buffer bounded", "a\n" + big + "\nz\n", 1000, false, []string{"a", big[:1000] + "+" + itoa(len(big)), "z"}, []int64{0, 2, int64(len(big)) + 3}},
		{"line longer than the buffer, under the limit", big + "\nz\n", 1 << 20, false, []string{big, "z"}, []int64{0, int64(len(big)) + 1}},
		{"cut final line", "1234567", 5, true, []string{"12345+7"}, []int64{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := readLines(t, c.content, c.limit, c.final)
			var gs []string
			var offs []int64
			for _, ln := range got {
				s := string(ln.data)
				if ln.size != int64(len(ln.data)) {
					s += "+" + itoa(int(ln.size))
				}
				gs = append(gs, s)
				offs = append(offs, ln.off)
			}
			equal(t, "lines", gs, c.want)
			for i := range offs {
				if offs[i] != c.offs[i] {
					t.Errorf("line %d offset = %d, want %d", i, offs[i], c.offs[i])
				}
			}
			if n := len(got); n > 0 && !c.final && got[n-1].end != int64(strings.LastIndexByte(c.content, '\n')+1) {
				t.Errorf("last end = %d", got[n-1].end)
			}
		})
	}
}

func TestLineReaderGrowingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	writeFile(t, p, "par")
	f, _ := os.Open(p)
	defer f.Close()
	lr := newLineReader(f, 0, 100)
	if _, ok, _ := lr.next(false); ok {
		t.Fatal("partial line returned")
	}
	appendFile(t, p, "tial\nnext")
	ln, ok, _ := lr.next(false)
	if !ok || string(ln.data) != "partial" || ln.off != 0 || ln.end != 8 {
		t.Fatalf("got %q %v off %d end %d", ln.data, ok, ln.off, ln.end)
	}
	if lr.offset() != 8 {
		t.Fatalf("offset = %d", lr.offset())
	}
	lr.reset(0)
	ln, ok, _ = lr.next(false)
	if !ok || string(ln.data) != "partial" {
		t.Fatalf("after reset: %q %v", ln.data, ok)
	}
}
