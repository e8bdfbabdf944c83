// Package testkit holds what the tests of every package share: waiting for a
// condition instead of sleeping, gates for the local services integration
// tests talk to, a TCP proxy that cuts and restores connections, and the
// built sluice binary with helpers to run and kill it. Only test binaries
// import it.
//
// Tests never rely on the machine being fast, only on it making progress:
// wait for the condition with WaitFor (its deadline is generous and can be
// stretched with SLUICE_TEST_TIMEOUT_SCALE), never for a fixed time.
package testkit
