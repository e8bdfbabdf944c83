// Package wasmhost runs WebAssembly transforms: it compiles a module once
// per content (through wazero's on-disk compilation cache, so a restart does
// not recompile), rewrites it at load so that runaway guests can be stopped
// (package instrument), keeps a bounded pool of instances per transform,
// and calls the guest once per batch following the ABI in docs/abi.md
// (package abi).
//
// Contracts:
//   - One Host per process, shared by every task (Shared puts it in
//     component.Env.Shared). It owns one wazero Runtime; memory limits are
//     per module, applied by capping the module's declared maximum memory
//     at load, so one runtime serves every limit.
//   - A Transformer is one `[[transform]] type = "wasm"` of one task. Its
//     instances share the transform's key-value state, logger and metrics.
//     Process may be called concurrently; each call holds one instance.
//   - Time spent in host functions and bulk memory operations counts
//     against a call's budget (see package instrument), so no guest keeps
//     its thread, and the garbage collector, for long.
//   - The key-value state has a quota (KVQuota), since it lives outside
//     the module's memory limit; a write past it returns FULL.
//   - A trap, a spent time budget, a broken ABI or an oversized output
//     (bytes or count) never reaches the caller as a crash: the instance is discarded (a new
//     one is created on demand), the batch is split until the offending
//     record is alone, and that record fails with the reason while the
//     others are delivered.
//   - Nothing on the per-record path allocates on the host side, except
//     the header slices of outputs whose headers the guest replaced.
package wasmhost
