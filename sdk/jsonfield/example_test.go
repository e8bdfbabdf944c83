package jsonfield_test

import (
	"bytes"
	"fmt"

	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Read one field and rewrite it in a single scan of the document. The
// string is unquoted before it changes and quoted again after: changing
// the raw JSON text would break its escapes (\u00e9 upper-cased is the
// invalid \U00E9).
func ExampleSpan() {
	doc := []byte(`{"id":"1","data":{"name":"ad\u00e0 \"a\"","age":36}}`)
	s, e, ok := jsonfield.Span(doc, "data", "name")
	if !ok {
		return
	}
	name, _ := jsonfield.Unquote(nil, doc[s:e])
	out := append([]byte{}, doc[:s]...)
	out = jsonfield.AppendString(out, bytes.ToUpper(name))
	out = append(out, doc[e:]...)
	fmt.Println(string(out))
	// Output: {"id":"1","data":{"name":"ADÀ \"A\"","age":36}}
}

func ExampleSet() {
	out, _ := jsonfield.Set(nil, []byte(`{"data":{}}`), []byte(`true`), "data", "seen")
	fmt.Println(string(out))
	// Output: {"data":{"seen":true}}
}
