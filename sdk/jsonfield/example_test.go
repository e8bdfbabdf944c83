package jsonfield_test

import (
	"bytes"
	"fmt"

	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Read one field and rewrite it in a single scan of the document.
func ExampleSpan() {
	doc := []byte(`{"id":"1","data":{"name":"ada","age":36}}`)
	s, e, ok := jsonfield.Span(doc, "data", "name")
	if !ok {
		return
	}
	out := append([]byte{}, doc[:s]...)
	out = append(out, bytes.ToUpper(doc[s:e])...)
	out = append(out, doc[e:]...)
	fmt.Println(string(out))
	// Output: {"id":"1","data":{"name":"ADA","age":36}}
}

func ExampleSet() {
	out, _ := jsonfield.Set(nil, []byte(`{"data":{}}`), []byte(`true`), "data", "seen")
	fmt.Println(string(out))
	// Output: {"data":{"seen":true}}
}
