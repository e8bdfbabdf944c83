package sdk

import (
	"bytes"
	"errors"

	"github.com/sluicehq/sluice/sdk/jsonfield"
)

// describeJSON renders the plugin's self-description (docs/abi.md,
// sluice_describe): {"name","version","summary","sdk","parameters"}.
func describeJSON() []byte {
	b := []byte(`{"name":`)
	if plugin == nil {
		return append(b, `"","version":"","sdk":"go","parameters":[]}`...)
	}
	b = jsonfield.AppendString(b, []byte(plugin.Name))
	b = append(b, `,"version":`...)
	b = jsonfield.AppendString(b, []byte(plugin.Version))
	if plugin.Summary != "" {
		b = append(b, `,"summary":`...)
		b = jsonfield.AppendString(b, []byte(plugin.Summary))
	}
	b = append(b, `,"sdk":"go","parameters":[`...)
	for i, p := range plugin.Params {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonfield.AppendString(b, []byte(p.Name))
		if p.Type != "" {
			b = append(b, `,"type":`...)
			b = jsonfield.AppendString(b, []byte(p.Type))
		}
		if p.Required {
			b = append(b, `,"required":true`...)
		}
		if p.Doc != "" {
			b = append(b, `,"doc":`...)
			b = jsonfield.AppendString(b, []byte(p.Doc))
		}
		if p.Default != nil {
			n := len(b)
			if d, ok := appendJSON(append(b, `,"default":`...), p.Default); ok {
				b = d
			} else {
				b = b[:n] // a default the SDK cannot render is left out
			}
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// initPlugin decodes config and runs Init.
func initPlugin(config []byte) error {
	if plugin == nil {
		return errors.New("module registered no plugin (call sdk.Register from an init function)")
	}
	switch {
	case len(bytes.TrimSpace(config)) == 0:
	case !jsonfield.Valid(config):
		return errors.New("invalid config: not valid JSON: " + clip(config))
	case decoder != nil:
		if err := decoder.DecodeConfig(config); err != nil {
			return err
		}
	case !isEmptyObject(config):
		return errors.New("this module takes no config")
	}
	if plugin.Init != nil {
		return plugin.Init()
	}
	return nil
}

// emptyInitError is the rejection sluice_init returns for an Init (or
// config decoding) error whose message is empty: the region of an empty
// message is (0, 0), which is 0, "accept".
const emptyInitError = "the plugin rejected its config with an empty error message"

// clip shortens b for a message.
func clip(b []byte) string {
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}

func isEmptyObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return string(b) == "null" || (len(b) >= 2 && b[0] == '{' && len(bytes.TrimSpace(b[1:len(b)-1])) == 0)
}

func closePlugin() {
	if plugin != nil && plugin.Close != nil {
		plugin.Close()
	}
}
