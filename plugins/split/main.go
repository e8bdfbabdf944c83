// Command split is a Sluice WASM transform that turns one event holding an
// array into one event per element (see README.md).
package main

import (
	"errors"
	"strconv"

	"github.com/sluicehq/sluice/plugins/internal/field"
	"github.com/sluicehq/sluice/sdk"
	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// Config is the plugin's config table (its keys: params).
type Config struct {
	Field       string
	As          string
	IndexField  string
	OnEmpty     string
	OnMissing   string
	MaxElements int
}

// params declares the config keys and where they go: the SDK decodes them
// without encoding/json or reflect, which would double the module.
var params = []sdk.Param{
	{Name: "field", Into: &cfg.Field, Required: true, Doc: "path of the array to split, from the payload's root (data.items)"},
	{Name: "as", Into: &cfg.As, Doc: "path each output holds its element at; empty: the element replaces the array at field"},
	{Name: "index_field", Into: &cfg.IndexField, Doc: "path to write the element's index (0, 1, ...) to; empty: none"},
	{Name: "on_empty", Into: &cfg.OnEmpty, Doc: "what to do with an empty array: drop the event or pass it on unchanged"},
	{Name: "on_missing", Into: &cfg.OnMissing, Doc: "what to do when field is absent or not an array: pass the event on unchanged, drop it, or fail it (dead-letter queue)"},
	{Name: "max_elements", Into: &cfg.MaxElements, Doc: "most elements one event may split into; a larger array fails the event"},
}

func defaults() Config {
	return Config{OnEmpty: "drop", OnMissing: "pass", MaxElements: 10000}
}

var (
	cfg                 = defaults()
	arrayPath, asPath   []string
	indexPath           []string
	onEmpty, onMissing  string
	base, tmp, indexBuf []byte // reused across records
)

func setup() error {
	var err error
	if arrayPath, err = field.MustNotBeRoot("field", cfg.Field); err != nil {
		return err
	}
	asPath = nil
	if cfg.As != "" {
		if asPath, err = field.MustNotBeRoot("as", cfg.As); err != nil {
			return err
		}
	}
	indexPath = nil
	if cfg.IndexField != "" {
		if indexPath, err = field.MustNotBeRoot("index_field", cfg.IndexField); err != nil {
			return err
		}
	}
	if onEmpty, err = field.Choice("on_empty", cfg.OnEmpty, "drop", "pass"); err != nil {
		return err
	}
	if onMissing, err = field.Choice("on_missing", cfg.OnMissing, "pass", "drop", "fail"); err != nil {
		return err
	}
	if cfg.MaxElements < 1 {
		return errors.New("max_elements: " + strconv.Itoa(cfg.MaxElements) + " must be at least 1")
	}
	return nil
}

func handle(r *sdk.Record, out *sdk.Output) error {
	doc := r.Payload()
	s, e, ok := jsonfield.Span(doc, arrayPath...)
	if !ok || jsonfield.KindOf(doc[s:e]) != jsonfield.Array {
		switch onMissing {
		case "pass":
			out.Pass()
		case "fail":
			return errors.New("split: " + cfg.Field + " is absent or not an array")
		}
		return nil
	}
	arr := doc[s:e]
	// Count first: a too large array fails whole, emitting nothing.
	n := 0
	if err := jsonfield.Elements(arr, func(int, []byte) bool { n++; return n <= cfg.MaxElements }); err != nil {
		return errors.New("split: " + cfg.Field + ": " + err.Error())
	}
	if n > cfg.MaxElements {
		return errors.New("split: " + cfg.Field + " has more than max_elements (" + strconv.Itoa(cfg.MaxElements) + ") elements")
	}
	if n == 0 {
		if onEmpty == "pass" {
			out.Pass()
		}
		return nil
	}
	// Without `as` the element takes the array's place; with it the array
	// is removed once and each element set at `as`.
	src := doc
	if asPath != nil {
		var err error
		if base, err = jsonfield.Delete(base[:0], doc, arrayPath...); err != nil {
			return errors.New("split: " + err.Error())
		}
		src = base
	}
	var ferr error
	jsonfield.Elements(arr, func(i int, elem []byte) bool {
		var p []byte
		if asPath == nil {
			p = append(append(append(out.Scratch(), doc[:s]...), elem...), doc[e:]...)
		} else if p, ferr = jsonfield.Set(out.Scratch(), src, elem, asPath...); ferr != nil {
			return false
		}
		if indexPath != nil {
			tmp = append(tmp[:0], p...)
			indexBuf = strconv.AppendInt(indexBuf[:0], int64(i), 10)
			if p, ferr = jsonfield.Set(out.Scratch(), tmp, indexBuf, indexPath...); ferr != nil {
				return false
			}
		}
		out.Emit(p)
		return true
	})
	if ferr != nil {
		return errors.New("split: " + ferr.Error())
	}
	return nil
}

func init() {
	sdk.Register(sdk.Plugin{
		Name:    "split",
		Version: "1.0.0",
		Summary: "turns one event holding an array into one event per element",
		Params:  params,
		Init:    setup,
		Handler: sdk.FlatMapFunc(handle),
	})
}

func main() {}
