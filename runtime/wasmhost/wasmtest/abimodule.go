package wasmtest

// ABIModule describes a hand-made module that speaks the Sluice ABI just
// enough for host tests: every record passes unchanged, except that a
// payload starting with '!' traps and one starting with '@' loops forever
// (when PerRecord is set). It needs no compiler and instantiates in
// microseconds.
type ABIModule struct {
	// Version is what sluice_abi_version returns (1 when 0).
	Version int32
	// PerRecord walks the records, updating the cursor and acting on the
	// payload's first byte. Without it the module touches no record: the
	// cheapest possible guest, for measuring the host's own cost.
	PerRecord bool
	// Imports adds function imports (to test the sandbox's refusal).
	Imports []Import
	// NoDescribe leaves out sluice_describe.
	NoDescribe bool
	// InitError makes sluice_init return this message.
	InitError string
	// Pages is the memory size (default 64 pages, 4 MiB).
	Pages int
	// Probe makes sluice_process call a WASI function the sandbox must
	// refuse ("sock_accept" on fd 3, or "path_open" of "etc/passwd" under
	// fd 3) and fail record 0 with the errno as its code (0: the call
	// succeeded). Use with one-record batches.
	Probe string
	// Outputs makes every record emit this many empty outputs (payload
	// of length 0, key and headers kept), all from one table of zeros at
	// OutputsAt: a hostile module that costs the host a message per
	// output while staying under any byte cap. Pages must leave room for
	// the table (32 bytes per output above 8 MiB).
	Outputs int
	// Hog makes sluice_process spin forever on work that dodges a loop
	// countdown: each iteration of its loop is one large operation over
	// the whole memory. "fill" (memory.fill), "copy" (memory.copy),
	// "random" (WASI random_get), "write" (WASI fd_write to stdout), "kv"
	// (sluice.kv_put of a 1 MiB value).
	Hog string
}

// OutputsAt is where the output table of ABIModule.Outputs starts.
const OutputsAt = 8 << 20

// Memory map of the hand-made module.
const (
	abiDescAt   = 1024    // the description JSON
	abiErrAt    = 2048    // the init error message
	abiPathAt   = 3072    // a path for the path_open probe
	abiScratch  = 3584    // where probes write their results
	abiResultAt = 4096    // result header, then outcomes (zero: pass)
	abiInputAt  = 1 << 20 // the input buffer, up to the end of memory
)

// Bytes assembles the module.
func (a ABIModule) Bytes() []byte {
	if a.Version == 0 {
		a.Version = 1
	}
	if a.Pages == 0 {
		a.Pages = 64
	}
	desc := `{"name":"handmade","version":"0.1.0","parameters":[{"name":"any","type":"string"}]}`
	data := make([]byte, abiResultAt-abiDescAt)
	copy(data, desc)
	copy(data[abiErrAt-abiDescAt:], a.InitError)
	voidI32 := FuncType{Results: []byte{I32}}
	const (
		ptr, n, count, i, p = 0, 1, 2, 3, 4
	)
	var imports []Import
	imports = append(imports, a.Imports...)
	probeFn := uint32(len(imports))
	switch a.Probe {
	case "sock_accept":
		imports = append(imports, Import{Module: "wasi_snapshot_preview1", Name: "sock_accept",
			Type: FuncType{Params: []byte{I32, I32, I32}, Results: []byte{I32}}})
	case "path_open":
		imports = append(imports, Import{Module: "wasi_snapshot_preview1", Name: "path_open",
			Type: FuncType{Params: []byte{I32, I32, I32, I32, I32, I64, I64, I32, I32}, Results: []byte{I32}}})
		copy(data[abiPathAt-abiDescAt:], "etc/passwd")
	}
	body := Code{}.
		LocalGet(ptr).I32Load(4).LocalSet(count)
	if a.Hog != "" {
		hogFn := uint32(len(imports))
		memSize := Code{}.Op(0x3f, 0).I32Const(16).Op(OpI32Shl)
		var op Code
		switch a.Hog {
		case "fill":
			op = Code{}.I32Const(0).I32Const(0).Op(memSize...).Op(0xfc, 11, 0)
		case "copy":
			op = Code{}.I32Const(0).I32Const(1).Op(memSize...).I32Const(1).Op(OpI32Sub).Op(0xfc, 10, 0, 0)
		case "random":
			imports = append(imports, Import{Module: "wasi_snapshot_preview1", Name: "random_get",
				Type: FuncType{Params: []byte{I32, I32}, Results: []byte{I32}}})
			op = Code{}.I32Const(0).Op(memSize...).Call(hogFn).Op(OpDrop)
		case "write":
			imports = append(imports, Import{Module: "wasi_snapshot_preview1", Name: "fd_write",
				Type: FuncType{Params: []byte{I32, I32, I32, I32}, Results: []byte{I32}}})
			body = body.I32Const(abiScratch).I32Const(0).I32Store(0).
				I32Const(abiScratch).Op(memSize...).I32Store(4)
			op = Code{}.I32Const(1).I32Const(abiScratch).I32Const(1).I32Const(abiScratch + 8).Call(hogFn).Op(OpDrop)
		case "kv":
			imports = append(imports, Import{Module: "sluice", Name: "kv_put",
				Type: FuncType{Params: []byte{I32, I32, I32, I32, I64}, Results: []byte{I32}}})
			op = Code{}.I32Const(abiDescAt).I32Const(8).I32Const(0).I32Const(1 << 20).I64Const(0).Call(hogFn).Op(OpDrop)
		default:
			panic("wasmtest: unknown hog " + a.Hog)
		}
		body = body.Loop().Op(op...).Br(0).End()
	}
	switch a.Probe {
	case "sock_accept":
		body = body.I32Const(3).I32Const(0).I32Const(abiScratch).Call(probeFn).LocalSet(p)
	case "path_open":
		body = body.I32Const(3).I32Const(0).I32Const(abiPathAt).I32Const(10).I32Const(0).
			I64Const(1 << 1).I64Const(0).I32Const(0).I32Const(abiScratch).Call(probeFn).LocalSet(p)
	}
	if a.Probe != "" {
		// outcome 0: FAIL, code errno, message "probe"
		body = body.I32Const(abiResultAt).I32Const(4).I32Store(16).
			I32Const(abiResultAt).LocalGet(p).I32Store(20).
			I32Const(abiResultAt).I32Const(abiErrAt).I32Store(24).
			I32Const(abiResultAt).I32Const(5).I32Store(28)
		copy(data[abiErrAt-abiDescAt:], "probe")
	}
	if a.PerRecord {
		body = body.Block().Loop().
			LocalGet(i).LocalGet(count).Op(OpI32GeU).BrIf(1).
			// cursor = i
			LocalGet(ptr).LocalGet(i).I32Store(12).
			// p = ptr + payload_off(i)
			LocalGet(ptr).LocalGet(ptr).LocalGet(i).I32Const(64).Op(OpI32Mul).Op(OpI32Add).I32Load(16).Op(OpI32Add).LocalSet(p).
			// trap on '!'
			LocalGet(p).I32Load8U(0).I32Const('!').Op(OpI32Eq).If().Op(OpUnreachable).End().
			// spin on '@'
			LocalGet(p).I32Load8U(0).I32Const('@').Op(OpI32Eq).If().Loop().Br(0).End().End().
			LocalGet(i).I32Const(1).Op(OpI32Add).LocalSet(i).
			Br(0).End().End()
	}
	outAddr, outN := int32(0), int32(0)
	if a.Outputs > 0 {
		outAddr, outN = OutputsAt, int32(a.Outputs)
		// outcome i: EMIT outputs [0, Outputs)
		body = body.I32Const(0).LocalSet(i).Block().Loop().
			LocalGet(i).LocalGet(count).Op(OpI32GeU).BrIf(1).
			LocalGet(i).I32Const(16).Op(OpI32Mul).LocalTee(p).I32Const(1).I32Store(abiResultAt + 16).
			LocalGet(p).I32Const(0).I32Store(abiResultAt + 20).
			LocalGet(p).I32Const(outN).I32Store(abiResultAt + 24).
			LocalGet(i).I32Const(1).Op(OpI32Add).LocalSet(i).
			Br(0).End().End()
	}
	// Result header: version 1, count, outputs.
	body = body.
		I32Const(abiResultAt).I32Const(1).I32Store(0).
		I32Const(abiResultAt).LocalGet(count).I32Store(4).
		I32Const(abiResultAt).I32Const(outAddr).I32Store(8).
		I32Const(abiResultAt).I32Const(outN).I32Store(12).
		// (abiResultAt << 32) | (16 + 16*count)
		I64Const(abiResultAt << 32).
		LocalGet(count).I32Const(16).Op(OpI32Mul).I32Const(16).Op(OpI32Add).Op(OpI64ExtendU).
		Op(OpI64Or)
	funcs := []Func{
		{Type: voidI32, Export: "sluice_abi_version", Body: Code{}.I32Const(a.Version)},
		{Type: FuncType{Params: []byte{I32}, Results: []byte{I32}}, Export: "sluice_alloc", Body: Code{}.I32Const(abiInputAt)},
		{Type: FuncType{Params: []byte{I32, I32}, Results: []byte{I64}}, Export: "sluice_process", Locals: []byte{I32, I32, I32}, Body: body},
	}
	initBody := Code{}.I64Const(0)
	if a.InitError != "" {
		initBody = Code{}.I64Const(int64(abiErrAt)<<32 | int64(len(a.InitError)))
	}
	funcs = append(funcs, Func{Type: FuncType{Params: []byte{I32, I32}, Results: []byte{I64}}, Export: "sluice_init", Body: initBody})
	if !a.NoDescribe {
		funcs = append(funcs, Func{Type: FuncType{Results: []byte{I64}}, Export: "sluice_describe",
			Body: Code{}.I64Const(int64(abiDescAt)<<32 | int64(len(desc)))})
	}
	return Module{Imports: imports, Funcs: funcs, MemoryPages: a.Pages, ExportMemory: true,
		Data: data, DataOffset: abiDescAt}.Bytes()
}

// Spin is a loop-heavy module for measuring the runaway protection: its
// export spin(n) runs n iterations of a byte-hashing loop over its memory.
func Spin() []byte {
	const n, i, acc = 0, 1, 2
	body := Code{}.Block().Loop().
		LocalGet(i).LocalGet(n).Op(OpI32GeU).BrIf(1).
		// acc = acc*31 ^ mem[i & 0xffff]
		LocalGet(acc).I32Const(31).Op(OpI32Mul).
		LocalGet(i).I32Const(0xffff).Op(OpI32And).I32Load8U(0).
		Op(OpI32Xor).LocalSet(acc).
		LocalGet(i).I32Const(1).Op(OpI32Add).LocalSet(i).
		Br(0).End().End().LocalGet(acc)
	return Module{MemoryPages: 1, Funcs: []Func{{
		Type: FuncType{Params: []byte{I32}, Results: []byte{I32}}, Locals: []byte{I32, I32}, Export: "spin", Body: body,
	}}}.Bytes()
}
