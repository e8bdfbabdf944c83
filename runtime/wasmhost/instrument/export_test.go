package instrument

// WithGlobalLoops selects the alternative that counts loop iterations in
// the global, for benchmarks.
func WithGlobalLoops(o Options) Options {
	o.globalLoops = true
	return o
}
