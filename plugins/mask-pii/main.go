// Command mask-pii is a Sluice WASM transform that masks e-mail
// addresses, phone numbers and payment card numbers in named fields of
// each event, keeping the last digits visible (see README.md).
package main

import (
	"errors"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table (its keys: params).
type Config struct {
	Fields   []string
	Types    []string
	KeepLast int
	MaskChar string
}

// params declares the config keys and where they go: the SDK decodes them
// without encoding/json or reflect, which would double the module.
var params = []sdk.Param{
	{Name: "fields", Into: &cfg.Fields, Required: true, Doc: "paths of the fields to mask, from the payload's root (data.email, data.customer.phone); strings are masked where they hold PII, strings inside arrays and objects too, and an integer becomes a masked string"},
	{Name: "types", Into: &cfg.Types, Doc: "what to mask: email, phone, card"},
	{Name: "keep_last", Into: &cfg.KeepLast, Doc: "digits of a phone or card number left visible at its end (0..8)"},
	{Name: "mask_char", Into: &cfg.MaskChar, Doc: "the character that replaces masked characters (one printable ASCII character)"},
}

func defaults() Config {
	return Config{Types: []string{"email", "phone", "card"}, KeepLast: 4, MaskChar: "*"}
}

var (
	cfg    = defaults()
	paths  [][]string
	masker Masker
)

func setup() error {
	paths = paths[:0]
	if len(cfg.Fields) == 0 {
		return errors.New("fields: list at least one field to mask")
	}
	for _, f := range cfg.Fields {
		p, err := field.MustNotBeRoot("fields", f)
		if err != nil {
			return err
		}
		paths = append(paths, p)
	}
	m, err := NewMasker(cfg.Types, cfg.KeepLast, cfg.MaskChar)
	if err != nil {
		return err
	}
	masker = m
	return nil
}

func handle(r *sdk.Record, out *sdk.Output) error {
	doc := r.Payload()
	var buf []byte // a copy of doc, made at the first change
	masked := 0
	for _, p := range paths {
		cur := doc
		if buf != nil {
			cur = buf
		}
		s, e, ok := jsonfield.Span(cur, p...)
		if !ok {
			continue
		}
		v := cur[s:e]
		switch jsonfield.KindOf(v) {
		case jsonfield.String, jsonfield.Array, jsonfield.Object:
			if !masker.Needed(v) {
				continue
			}
			if buf == nil {
				buf = append(out.Scratch(), doc...)
			}
			masked += masker.MaskJSON(buf[s:e])
		case jsonfield.Number:
			q, ok := masker.MaskNumber(v)
			if !ok {
				continue
			}
			// The value grows (quotes): splice it into a new copy.
			nb := make([]byte, 0, len(cur)+len(q)-len(v))
			nb = append(append(append(nb, cur[:s]...), q...), cur[e:]...)
			buf = nb
			masked++
		}
	}
	if buf == nil {
		out.Pass()
		return nil
	}
	out.Emit(buf)
	sdk.CounterAdd("masked_values", float64(masked))
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name:    "mask-pii",
		Version: "1.0.0",
		Summary: "masks e-mail addresses, phone numbers and card numbers in named fields, keeping the last digits",
		Params:  params,
		Init:    setup,
		Handler: sdk.FlatMapFunc(handle),
	})
}

func main() {}
