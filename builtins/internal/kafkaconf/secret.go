package kafkaconf

import "github.com/sluicehq/sluice/runtime/component"

// Secret is a config string never shown in logs or errors (passwords).
type Secret = component.Secret
