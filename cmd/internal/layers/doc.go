// Package layers holds the module's import rules as a test (layers_test.go):
// which package may import which, as docs/architecture.md draws the layers.
// It has no code of its own.
package layers
