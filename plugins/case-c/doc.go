// Package casec holds the Go tests of case-c, the first-party plugin
// written in C (src/case.c, built to the committed case-c.wasm by build.sh):
// they run the module in the real host, rebuild it when clang and
// wasi-libc are installed, and benchmark it as the C guest.
package casec
