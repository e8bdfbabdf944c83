package wasmhost

// Unprotected returns opt with the runaway instrumentation off, for
// benchmarks that measure its cost.
func Unprotected(opt LoadOptions) LoadOptions {
	opt.unprotected = true
	return opt
}
