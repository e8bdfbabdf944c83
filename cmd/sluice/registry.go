package main

import (
	"github.com/sluicehq/sluice/builtins"
	"github.com/sluicehq/sluice/runtime/component"
)

// registry returns the components compiled into this build.
func registry() *component.Registry {
	r := component.NewRegistry()
	builtins.RegisterAll(r)
	return r
}
