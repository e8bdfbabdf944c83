// Package makefile checks the Makefile's rules as tests (make_test.go). It
// has no code of its own.
package makefile
