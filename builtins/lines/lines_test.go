package lines

import (
	"errors"
	"testing"
)

func TestAppend(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"a":1}`, "{\"a\":1}\n"},
		{"{ \"a\" : [1, 2] }\n", "{\"a\":[1,2]}\n"},
		{"[1,\n2]", "[1,2]\n"},
		{`plain text`, "plain text\n"},
		{`"a json string"`, "\"a json string\"\n"},
		{"\"multi\nline\"", ""},
		{"text\nwith newline", ""},
		{`{"broken": `, "{\"broken\": \n"},
		{"", "\n"},
	}
	for _, c := range cases {
		got, err := Append([]byte(">"), []byte(c.in))
		if c.want == "" {
			if !errors.Is(err, ErrNewline) || string(got) != ">" {
				t.Errorf("Append(%q) = %q, %v; want ErrNewline", c.in, got, err)
			}
			continue
		}
		if err != nil || string(got) != ">"+c.want {
			t.Errorf("Append(%q) = %q, %v; want %q", c.in, got, err, ">"+c.want)
		}
	}
}
