package config

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzLoad(f *testing.F) {
	f.Add("name = \"a\"\n[source]\ntype = \"thing\"\npath = \"p\"\n[sink]\ntype = \"out\"\n")
	f.Add("name = \"a\"\n[[transform]]\ntype = \"template\"\ntemplate = '''\nx ${env:A:-b} $${y}'''\n[transform.variables]\nk = \"$.a\"\n")
	f.Add("[source]\ntype = 1\n[sink]\nbatch = { max_events = -1, max_wait = 3 }\n[retry]\npolicy='custom'\njitter=2.5\n")
	f.Add("name = \"\u00e9\"\na.b.c = [1, [2, {x = 3}]]\n[[a.d]]\n[[a.d]]\ne = 1979-05-27T07:32:00Z\n")
	f.Add("x = \"\"\"\n\\u00e9\\\"${env:Q}\"\"\"\n")
	f.Add("name = \"a\"\n[snk.tls]\nca = 1\n[transform.0]\nb.c = 2\n")
	f.Fuzz(func(t *testing.T, text string) {
		l := &Loader{Registry: testRegistry(), LookupEnv: func(string) (string, bool) { return "", false }}
		task, err := l.Load("f.toml", []byte(text))
		if err == nil {
			if task == nil || task.Name == "" {
				t.Fatalf("no error and no task for %q", text)
			}
			return
		}
		var ds Diagnostics
		if !errors.As(err, &ds) || len(ds) == 0 {
			t.Fatalf("error is not Diagnostics: %T %v", err, err)
		}
		lines := strings.Split(text, "\n")
		for _, d := range ds {
			if d.Msg == "" || d.File != "f.toml" {
				t.Fatalf("bad diagnostic %#v", d)
			}
			// A position, when there is one, is inside the file.
			if d.Line < 0 || d.Line > len(lines) || d.Col < 0 || (d.Line > 0 && d.Col > utf8.RuneCountInString(lines[d.Line-1])+1) {
				t.Fatalf("diagnostic %q outside the file %q", d.Error(), text)
			}
		}
		_ = ds.Error()
	})
}
