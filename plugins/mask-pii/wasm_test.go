package main

import (
	"testing"

	"github.com/sluicehq/sluice/plugins/internal/plugintest"
	"github.com/sluicehq/sluice/runtime/wasmhost"
)

// TestWASM runs the built module in the real host.
func TestWASM(t *testing.T) {
	tr := plugintest.Load(t, "mask-pii.wasm", plugintest.Build(t, "mask-pii"),
		`{"fields":["data.email","data.phone"],"keep_last":2}`, wasmhost.TransformerConfig{})
	if d := tr.Description(); d.Name != "mask-pii" || len(d.Parameters) != 4 {
		t.Fatalf("description %+v", d)
	}
	r := plugintest.Run(t, tr, plugintest.Events(
		`{"data":{"email":"grace@navy.mil","phone":"555-0100-77"}}`,
		`{"data":{"email":"none"}}`,
		`{"data":{"phone":15550100}}`,
	))
	want := []string{
		`{"data":{"email":"g****@navy.mil","phone":"***-****-77"}}`,
		`{"data":{"email":"none"}}`,
		`{"data":{"phone":"******00"}}`,
	}
	if len(r.Failures) > 0 || len(r.Payloads) != len(want) {
		t.Fatalf("result %+v", r)
	}
	for i := range want {
		if r.Payloads[i] != want[i] {
			t.Errorf("output %d:\n got %s\nwant %s", i, r.Payloads[i], want[i])
		}
	}
}

// BenchmarkWASM masks an e-mail address in each ~250-byte event.
func BenchmarkWASM(b *testing.B) {
	tr := plugintest.Load(b, "mask-pii.wasm", plugintest.Build(b, "mask-pii"), `{"fields":["data.email"]}`, wasmhost.TransformerConfig{})
	in := plugintest.BenchBatch(256)
	for i := range in {
		p := []byte(`{"specversion":"1.0","id":"x","source":"bench","type":"t","data":{"order":1,"email":"ada.lovelace@example.com","region":"eu-west-1","amount":123.45}}`)
		in[i].Payload, in[i].Event = p, p
	}
	plugintest.Bench(b, tr, in, len(in))
}

// TestWASMNumberFollowedByDigits masks a card or phone number that the
// text follows with other digits after a space (an expiry date, a
// security code, a count) or that follows a date: the number stays in
// clear if the digits around it are taken as part of one longer group.
func TestWASMNumberFollowedByDigits(t *testing.T) {
	tr := plugintest.Load(t, "mask-pii.wasm", plugintest.Build(t, "mask-pii"), `{"fields":["data.note"]}`, wasmhost.TransformerConfig{})
	r := plugintest.Run(t, tr, plugintest.Events(
		`{"data":{"note":"card 4111 1111 1111 1111 05/27"}}`,
		`{"data":{"note":"card 4111111111111111 123"}}`,
		`{"data":{"note":"paid with 5555 5555 5555 4444 2 times"}}`,
		`{"data":{"note":"on 2026-11-25 4155550132"}}`,
		`{"data":{"note":"order 1234 of 2026-11-25 09:00"}}`,
	))
	want := []string{
		`{"data":{"note":"card **** **** **** 1111 05/27"}}`,
		`{"data":{"note":"card ************1111 123"}}`,
		`{"data":{"note":"paid with **** **** **** 4444 2 times"}}`,
		`{"data":{"note":"on 2026-11-25 ******0132"}}`,
		`{"data":{"note":"order 1234 of 2026-11-25 09:00"}}`,
	}
	if len(r.Failures) > 0 || len(r.Payloads) != len(want) {
		t.Fatalf("result %+v", r)
	}
	for i := range want {
		if r.Payloads[i] != want[i] {
			t.Errorf("output %d:\n got %s\nwant %s", i, r.Payloads[i], want[i])
		}
	}
}
