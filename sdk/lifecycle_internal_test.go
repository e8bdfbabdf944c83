package sdk

import (
	"strings"
	"testing"
)

// TestConfigErrorNamesTheKey: a config value of the wrong type is rejected
// with `key "PATH": ...`, which the host turns into the position of that
// key in the task file (docs/abi.md, sluice_init).
func TestConfigErrorNamesTheKey(t *testing.T) {
	var cfg struct {
		Name   string `json:"name"`
		Limits struct {
			Max int `json:"max"`
		} `json:"limits"`
	}
	saved := plugin
	t.Cleanup(func() { plugin = saved })
	plugin = &Plugin{Name: "t", Config: &cfg, Handler: MapFunc(func(r *Record, dst []byte) ([]byte, error) { return r.Payload(), nil })}
	for in, want := range map[string]string{
		`{"limits":{"max":"many"}}`: `invalid config: key "limits.max": expected an integer, got string`,
		`{"name":5}`:                `invalid config: key "name": expected a string, got number`,
		`{"nmae":"x"}`:              `invalid config: unknown field "nmae"`,
	} {
		err := initPlugin([]byte(in))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: got %v, want %s", in, err, want)
		}
	}
}
