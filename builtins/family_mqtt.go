//go:build !no_brokers && !no_mqtt

package builtins

import (
	mqttsink "github.com/sluicehq/sluice/builtins/sink/mqtt"
	mqttsource "github.com/sluicehq/sluice/builtins/source/mqtt"
	"github.com/sluicehq/sluice/runtime/component"
)

// The mqtt family: mQTT source and sink: paho.mqtt.golang. A build with -tags
// no_brokers or no_mqtt leaves it out (docs/edge.md: what each tag saves).
func init() {
	families = append(families, family{name: "mqtt", register: func(r *component.Registry) {
		mqttsource.Register(r)
		mqttsink.Register(r)
	}})
}
