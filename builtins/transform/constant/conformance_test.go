package constant

import (
	"testing"

	"github.com/rs/zerolog"

	"github.com/sluicehq/sluice/builtins/internal/componenttest"
	"github.com/sluicehq/sluice/runtime/component"
)

func TestConformance(t *testing.T) {
	componenttest.Transform(t, componenttest.TransformSuite{
		New: func(t testing.TB) component.Transform {
			env := componenttest.Env(t, zerolog.WarnLevel, "transform", "0")
			return componenttest.Build(t, Register, component.KindTransform, "constant", `value = "fixed ${text}"`, env).(component.Transform)
		},
		Inputs: [][]byte{
			[]byte(`{"specversion":"1.0","id":"1","data":{"order":"o-1","amount":12.5,"tags":["a","b"]}}`),
			[]byte(`{"specversion":"1.0","id":"2","data":{"order":"o-2"}}`),
			[]byte(`{ "data" : { "order" : "o-3", "amount" : 7 } }`),
			[]byte(`not json at all`),
		},
	})
}
