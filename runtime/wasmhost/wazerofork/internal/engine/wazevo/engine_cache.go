package wazevo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"unsafe"

	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/internal/engine/wazevo/backend"
	"github.com/tetratelabs/wazero/internal/engine/wazevo/ssa"
	"github.com/tetratelabs/wazero/internal/engine/wazevo/wazevoapi"
	"github.com/tetratelabs/wazero/internal/filecache"
	"github.com/tetratelabs/wazero/internal/platform"
	"github.com/tetratelabs/wazero/internal/u32"
	"github.com/tetratelabs/wazero/internal/u64"
	"github.com/tetratelabs/wazero/internal/wasm"
)

var crc = crc32.MakeTable(crc32.Castagnoli)

// fileCacheKey returns a key for the file cache.
// In order to avoid collisions with the existing compiler, we do not use m.ID directly,
// but instead we rehash it with magic.
func fileCacheKey(m *wasm.Module) (ret filecache.Key) {
	s := sha256.New()
	s.Write(m.ID[:])
	s.Write(magic)
	s.Write([]byte(sluiceFormat))
	// Write the CPU features so that we can cache the compiled module for the same CPU.
	// This prevents the incompatible CPU features from being used.
	cpu := platform.CpuFeatures.Raw()
	// Reuse the `ret` buffer to write the first 8 bytes of the CPU features so that we can avoid the allocation.
	binary.LittleEndian.PutUint64(ret[:8], cpu)
	s.Write(ret[:8])
	// Finally, write the hash to the ret buffer.
	s.Sum(ret[:0])
	return
}

func (e *engine) addCompiledModule(module *wasm.Module, cm *compiledModule) (c *compiledModule, err error) {
	c = e.addCompiledModuleToMemory(module, cm)
	// Sluice: only the compilation whose module went into memory writes the
	// entry and maps it: another one, of the same module at the same time,
	// would move the code of the module in use under it.
	if c == cm && !module.IsHostModule && e.fileCache != nil {
		// Sluice: a cache entry that cannot be written (a full disk, a
		// read-only folder) costs the next start a compilation; upstream
		// failed this one, so a full disk stopped every new module.
		if e.addCompiledModuleToCache(module, c) == nil {
			e.runFromCache(module, c)
		}
	}
	return
}

// runFromCache (Sluice) moves the native code of cm, just compiled into
// anonymous memory and written to the file cache, onto a mapping of that
// entry, at the same address: the code then runs from the page cache as
// it does after a cache hit, the pages a task does not run need not stay
// resident, and processes running the module share them. Any failure
// leaves the code where it is.
func (e *engine) runFromCache(module *wasm.Module, cm *compiledModule) {
	e.mux.RLock()
	mapped := cm.executables.mapped
	e.mux.RUnlock()
	if len(cm.executable) == 0 || mapped {
		return
	}
	r, ok, err := e.fileCache.Get(fileCacheKey(module))
	if !ok || err != nil {
		return
	}
	defer r.Close()
	m, ok := r.(filecache.CodeMapper)
	if !ok {
		return
	}
	start, n, err := codeExtent(e.wazeroVersion, r)
	if err != nil || n != len(cm.executable) {
		return
	}
	code, err := m.MapCode(start, n)
	if err != nil {
		return
	}
	if !bytes.Equal(code, cm.executable) || platform.MoveCodeOver(code, cm.executable) != nil {
		_ = platform.MunmapCodeFile(code)
		return
	}
	e.mux.Lock() // compiledModules' readers (Sluice's host) read mapped under it
	cm.executables.mapped = true
	e.mux.Unlock()
}

// codeChecksum is the checksum of the native code. Code mapped from the
// entry is summed from the file, read through a small buffer (Sluice):
// summing the mapping would fault every page of it into the process, the
// larger part of a second start's time in the kernel, and leave it all
// resident until the host releases it.
func codeChecksum(reader io.Reader, code []byte, start int64, mapped bool) (uint32, error) {
	ra, ok := reader.(io.ReaderAt)
	if !mapped || !ok {
		return crc32.Checksum(code, crc), nil
	}
	h := crc32.New(crc)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(ra, start, int64(len(code))), make([]byte, 256<<10)); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// codeExtent reads the start of a cache entry up to its native code and
// returns where that code starts in the entry and its length.
func codeExtent(wazeroVersion string, r io.Reader) (start int64, n int, err error) {
	functions, stale, err := readHeader(wazeroVersion, r)
	if err != nil || stale {
		return 0, 0, fmt.Errorf("compilationcache: not an entry of this version: %v", err)
	}
	if _, err = io.CopyN(io.Discard, r, 8*int64(functions)); err != nil {
		return 0, 0, err
	}
	var b [8]byte
	size, err := readUint64(r, &b)
	if err != nil || size > 1<<40 {
		return 0, 0, fmt.Errorf("compilationcache: executable length %d: %v", size, err)
	}
	headerSize := len(magic) + 1 + len(wazeroVersion) + 4
	return alignCode(int64(headerSize) + 8*int64(functions) + 8), int(size), nil
}

// readHeader reads an entry's header: its magic, the version of wazero
// that wrote it (stale: another one) and its number of functions.
func readHeader(wazeroVersion string, r io.Reader) (functions uint32, stale bool, err error) {
	header := make([]byte, len(magic)+1 /* version size */ +len(wazeroVersion)+4 /* number of functions */)
	if _, err := io.ReadFull(r, header); err != nil {
		return 0, false, fmt.Errorf("compilationcache: error reading header: %v", err)
	}
	if !bytes.Equal(header[:len(magic)], magic) {
		return 0, false, fmt.Errorf(
			"compilationcache: invalid magic number: got %s but want %s", magic, header[:len(magic)])
	}
	// Check the version compatibility.
	versionSize := int(header[len(magic)])
	cachedVersionBegin, cachedVersionEnd := len(magic)+1, len(magic)+1+versionSize
	if cachedVersionEnd >= len(header) || string(header[cachedVersionBegin:cachedVersionEnd]) != wazeroVersion {
		return 0, true, nil
	}
	return binary.LittleEndian.Uint32(header[len(header)-4:]), false, nil
}

func (e *engine) getCompiledModule(module *wasm.Module, listeners []experimental.FunctionListener, ensureTermination bool) (cm *compiledModule, ok bool, err error) {
	cm, ok = e.getCompiledModuleFromMemory(module, true)
	if ok {
		return
	}
	cm, ok, err = e.getCompiledModuleFromCache(module)
	if ok {
		cm.parent = e
		cm.module = module
		cm.sharedFunctions = e.sharedFunctions
		cm.ensureTermination = ensureTermination
		cm.offsets = wazevoapi.NewModuleContextOffsetData(module, len(listeners) > 0)
		if len(listeners) > 0 {
			cm.listeners = listeners
			cm.listenerBeforeTrampolines = make([]*byte, len(module.TypeSection))
			cm.listenerAfterTrampolines = make([]*byte, len(module.TypeSection))
			for i := range module.TypeSection {
				typ := &module.TypeSection[i]
				before, after := e.getListenerTrampolineForType(typ)
				cm.listenerBeforeTrampolines[i] = before
				cm.listenerAfterTrampolines[i] = after
			}
		}
		e.addCompiledModuleToMemory(module, cm)
		ssaBuilder := ssa.NewBuilder()
		machine := newMachine()
		be := backend.NewCompiler(context.Background(), machine, ssaBuilder)
		cm.executables.compileEntryPreambles(module, machine, be)

		// Set the finalizer.
		e.setFinalizer(cm.executables, executablesFinalizer)
	}
	return
}

func (e *engine) addCompiledModuleToMemory(m *wasm.Module, cm *compiledModule) *compiledModule {
	e.mux.Lock()
	defer e.mux.Unlock()
	if c, ok := e.compiledModules[m.ID]; ok {
		c.refCount++
		return c.compiledModule
	}
	e.compiledModules[m.ID] = &compiledModuleWithCount{compiledModule: cm, refCount: 1}
	if len(cm.executable) > 0 {
		e.addCompiledModuleToSortedList(cm)
	}
	return cm
}

func (e *engine) getCompiledModuleFromMemory(module *wasm.Module, increaseRefCount bool) (cm *compiledModule, ok bool) {
	e.mux.Lock()
	defer e.mux.Unlock()

	cmWithCount, ok := e.compiledModules[module.ID]
	if ok {
		cm = cmWithCount.compiledModule
		if increaseRefCount {
			cmWithCount.refCount++
		}
	}
	return
}

func (e *engine) addCompiledModuleToCache(module *wasm.Module, cm *compiledModule) (err error) {
	if e.fileCache == nil || module.IsHostModule {
		return
	}
	err = e.fileCache.Add(fileCacheKey(module), serializeCompiledModule(e.wazeroVersion, cm))
	return
}

func (e *engine) getCompiledModuleFromCache(module *wasm.Module) (cm *compiledModule, hit bool, err error) {
	if e.fileCache == nil || module.IsHostModule {
		return
	}

	// Check if the entries exist in the external cache.
	var cached io.ReadCloser
	cached, hit, err = e.fileCache.Get(fileCacheKey(module))
	if !hit || err != nil {
		return
	}

	// Otherwise, we hit the cache on external cache.
	// We retrieve *code structures from `cached`.
	var staleCache bool
	// Note: cached.Close is ensured to be called in deserializeCodes.
	cm, staleCache, err = deserializeCompiledModule(e.wazeroVersion, cached)
	if err != nil {
		// Sluice: a damaged entry (cut short by a crash, its code not
		// matching its checksum) is compiled again and replaced; upstream
		// fails the compilation, so the module could not load until someone
		// removed the file.
		staleCache, err = true, nil
	}
	if staleCache {
		// Sluice: and a cache that cannot remove it (read-only) costs a
		// compilation, not the module.
		_ = e.fileCache.Delete(fileCacheKey(module))
		return nil, false, nil
	}
	return
}

var magic = []byte{'W', 'A', 'Z', 'E', 'V', 'O'}

// Sluice: sluiceFormat names the layout of Sluice's cache entries, whose
// native code starts at a multiple of codeAlign in the file so that a
// cache hit maps it from the file instead of reading it (SLUICE.md). It is
// part of the entries' key: entries of upstream's layout are not read
// (the host's cache pruning removes them when unused).
const sluiceFormat = "sluice-mapped-code-2"

// codeAlign is the file offset alignment of the native code: a multiple of
// every page size Linux uses (4, 16 and 64 KiB).
const codeAlign = 64 << 10

func alignCode(n int64) int64 { return (n + codeAlign - 1) &^ (codeAlign - 1) }

func serializeCompiledModule(wazeroVersion string, cm *compiledModule) io.Reader {
	buf := bytes.NewBuffer(nil)
	// First 6 byte: WAZEVO header.
	buf.Write(magic)
	// Next 1 byte: length of version:
	buf.WriteByte(byte(len(wazeroVersion)))
	// Version of wazero.
	buf.WriteString(wazeroVersion)
	// Number of *code (== locally defined functions in the module): 4 bytes.
	buf.Write(u32.LeBytes(uint32(len(cm.functionOffsets))))
	for _, offset := range cm.functionOffsets {
		// The offset of this function in the executable (8 bytes).
		buf.Write(u64.LeBytes(uint64(offset)))
	}
	// The length of code segment (8 bytes).
	buf.Write(u64.LeBytes(uint64(len(cm.executable))))
	// Sluice: zeros up to the native code's aligned offset.
	metaHead := buf.Len()
	if len(cm.executable) > 0 {
		buf.Write(make([]byte, alignCode(int64(buf.Len()))-int64(buf.Len())))
	}
	// Append the native code.
	buf.Write(cm.executable)
	codeEnd := buf.Len()
	// Append checksum. Sluice: only after code, where the reader reads it
	// (upstream wrote it always, and a module without functions was read
	// back by the luck of zeros).
	if len(cm.executable) > 0 {
		buf.Write(u32.LeBytes(crc32.Checksum(cm.executable, crc)))
	}
	if sm := cm.sourceMap; len(sm.executableOffsets) > 0 {
		buf.WriteByte(1) // indicates that source map is present.
		l := len(sm.wasmBinaryOffsets)
		buf.Write(u64.LeBytes(uint64(l)))
		executableAddr := uintptr(unsafe.Pointer(&cm.executable[0]))
		for i := 0; i < l; i++ {
			buf.Write(u64.LeBytes(sm.wasmBinaryOffsets[i]))
			// executableOffsets is absolute address, so we need to subtract executableAddr.
			buf.Write(u64.LeBytes(uint64(sm.executableOffsets[i] - executableAddr)))
		}
	} else {
		buf.WriteByte(0) // indicates that source map is not present.
	}
	// Catch clause table: number of try_tables (4 bytes), then for each:
	//   clause count (4 bytes), then for each clause: kind (1 byte) + tagIndex (4 bytes).
	buf.Write(u32.LeBytes(uint32(len(cm.catchClauseTable))))
	for _, clauses := range cm.catchClauseTable {
		buf.Write(u32.LeBytes(uint32(len(clauses))))
		for _, c := range clauses {
			buf.WriteByte(c.Kind)
			buf.Write(u32.LeBytes(c.TagIndex))
		}
	}
	// Sluice: the checksum of everything but the code, its padding and
	// itself: the code's own checksum left the function offsets, the source
	// map and the catch clauses unchecked, and a damaged offset ran another
	// function.
	meta := crc32.Update(crc32.Checksum(buf.Bytes()[:metaHead], crc), crc, buf.Bytes()[codeEnd:])
	buf.Write(u32.LeBytes(meta))
	return bytes.NewReader(buf.Bytes())
}

// metaReader reads an entry's fields, summing what it reads (Sluice): all
// but the native code and its padding, which are read around it.
type metaReader struct {
	r   io.Reader
	sum uint32
}

func (m *metaReader) Read(p []byte) (int, error) {
	n, err := m.r.Read(p)
	m.sum = crc32.Update(m.sum, crc, p[:n])
	return n, err
}

func deserializeCompiledModule(wazeroVersion string, raw io.ReadCloser) (cm *compiledModule, staleCache bool, err error) {
	defer raw.Close()
	reader := &metaReader{r: raw}
	cacheHeaderSize := len(magic) + 1 /* version size */ + len(wazeroVersion) + 4 /* number of functions */
	functionsNum, staleCache, err := readHeader(wazeroVersion, reader)
	if err != nil || staleCache {
		return nil, staleCache, err
	}

	// Sluice: the counts below are bounded by the entry's size before
	// anything is allocated for them: a damaged count (a flipped bit) asked
	// for gigabytes and killed the process at every start. And the native
	// code is released on every way out but success.
	size := int64(math.MaxInt64)
	if f, ok := raw.(interface{ Size() int64 }); ok {
		size = f.Size()
	}
	tooMany := func(what string, n uint64, each int64) error {
		if n > uint64(size/each) {
			return fmt.Errorf("compilationcache: %d %s in an entry of %d bytes", n, what, size)
		}
		return nil
	}
	var executable []byte
	mapped := false // executable is mapped from the entry
	defer func() {
		if executable != nil && (err != nil || staleCache || cm == nil) {
			if mapped {
				_ = platform.MunmapCodeFile(executable)
			} else {
				_ = platform.MunmapCodeSegment(executable)
			}
		}
	}()

	if err = tooMany("functions", uint64(functionsNum), 8); err != nil {
		return nil, false, err
	}
	cm = &compiledModule{functionOffsets: make([]int, functionsNum), executables: &executables{}}

	var eightBytes [8]byte
	for i := uint32(0); i < functionsNum; i++ {
		// Read the offset of each function in the executable.
		var offset uint64
		if offset, err = readUint64(reader, &eightBytes); err != nil {
			err = fmt.Errorf("compilationcache: error reading func[%d] executable offset: %v", i, err)
			return
		}
		cm.functionOffsets[i] = int(offset)
	}

	executableLen, err := readUint64(reader, &eightBytes)
	if err != nil {
		err = fmt.Errorf("compilationcache: error reading executable size: %v", err)
		return
	}

	if executableLen > 0 {
		// Sluice: the native code starts at an aligned offset. Mapped from
		// the file where the reader offers it (a file on Linux), only the
		// pages that run are read, and processes running the same module
		// share them; elsewhere, or when the mapping fails (a file system
		// mounted noexec), it is read into anonymous memory as upstream
		// does.
		pos := int64(cacheHeaderSize) + 8*int64(functionsNum) + 8
		start := alignCode(pos)
		if err = tooMany("bytes of code", executableLen, 1); err != nil || executableLen > 1<<40 {
			return nil, false, fmt.Errorf("compilationcache: executable length %d in an entry of %d bytes", executableLen, size)
		}
		if m, ok := raw.(filecache.CodeMapper); ok {
			if executable, err = m.MapCode(start, int(executableLen)); err == nil {
				mapped, cm.executables.mapped = true, true
			}
		}
		if !cm.executables.mapped {
			if _, err = io.CopyN(io.Discard, raw, start-pos); err != nil {
				return nil, false, fmt.Errorf("compilationcache: error reading executable padding: %v", err)
			}
			if executable, err = platform.MmapCodeSegment(int(executableLen)); err != nil {
				executable = nil
				err = fmt.Errorf("compilationcache: error mmapping executable (len=%d): %v", executableLen, err)
				return nil, false, err
			}
			if _, err = io.ReadFull(raw, executable); err != nil {
				err = fmt.Errorf("compilationcache: error reading executable (len=%d): %v", executableLen, err)
				return nil, false, err
			}
		}
		cm.executable = executable

		expected, err := codeChecksum(raw, executable, start, cm.executables.mapped)
		if err != nil {
			return nil, false, fmt.Errorf("compilationcache: error reading executable (len=%d): %v", executableLen, err)
		}
		if _, err = io.ReadFull(reader, eightBytes[:4]); err != nil {
			return nil, false, fmt.Errorf("compilationcache: could not read checksum: %v", err)
		} else if checksum := binary.LittleEndian.Uint32(eightBytes[:4]); expected != checksum {
			return nil, false, fmt.Errorf("compilationcache: checksum mismatch (expected %d, got %d)", expected, checksum)
		}

		if !cm.executables.mapped {
			if err = platform.MprotectCodeSegment(executable); err != nil {
				return nil, false, err
			}
		}
	}

	if _, err := io.ReadFull(reader, eightBytes[:1]); err != nil {
		return nil, false, fmt.Errorf("compilationcache: error reading source map presence: %v", err)
	}

	if eightBytes[0] == 1 {
		sm := &cm.sourceMap
		sourceMapLen, err := readUint64(reader, &eightBytes)
		if err != nil {
			err = fmt.Errorf("compilationcache: error reading source map length: %v", err)
			return nil, false, err
		}
		if err = tooMany("source map entries", sourceMapLen, 16); err != nil {
			return nil, false, err
		}
		if len(cm.executable) == 0 {
			return nil, false, fmt.Errorf("compilationcache: a source map without code")
		}
		executableOffset := uintptr(unsafe.Pointer(&cm.executable[0]))
		for i := uint64(0); i < sourceMapLen; i++ {
			wasmBinaryOffset, err := readUint64(reader, &eightBytes)
			if err != nil {
				err = fmt.Errorf("compilationcache: error reading source map[%d] wasm binary offset: %v", i, err)
				return nil, false, err
			}
			executableRelativeOffset, err := readUint64(reader, &eightBytes)
			if err != nil {
				err = fmt.Errorf("compilationcache: error reading source map[%d] executable offset: %v", i, err)
				return nil, false, err
			}
			sm.wasmBinaryOffsets = append(sm.wasmBinaryOffsets, wasmBinaryOffset)
			// executableOffsets is absolute address, so we need to add executableOffset.
			sm.executableOffsets = append(sm.executableOffsets, uintptr(executableRelativeOffset)+executableOffset)
		}
	}
	// Catch clause table.
	if _, err = io.ReadFull(reader, eightBytes[:4]); err != nil {
		// Treat old cache entries without catch clause data as stale (trigger recompile).
		return nil, true, nil
	}
	tableLen := binary.LittleEndian.Uint32(eightBytes[:4])
	if err = tooMany("try_tables", uint64(tableLen), 4); err != nil {
		return nil, false, err
	}
	if tableLen > 0 {
		cm.catchClauseTable = make([][]wazevoapi.CatchClauseInstance, tableLen)
		for i := uint32(0); i < tableLen; i++ {
			if _, err = io.ReadFull(reader, eightBytes[:4]); err != nil {
				return nil, false, fmt.Errorf("compilationcache: error reading catch clause count for try_table[%d]: %v", i, err)
			}
			clauseCount := binary.LittleEndian.Uint32(eightBytes[:4])
			if err = tooMany("catch clauses", uint64(clauseCount), 5); err != nil {
				return nil, false, err
			}
			clauses := make([]wazevoapi.CatchClauseInstance, clauseCount)
			for j := uint32(0); j < clauseCount; j++ {
				if _, err = io.ReadFull(reader, eightBytes[:5]); err != nil {
					return nil, false, fmt.Errorf("compilationcache: error reading catch clause[%d][%d]: %v", i, j, err)
				}
				clauses[j] = wazevoapi.CatchClauseInstance{
					Kind:     eightBytes[0],
					TagIndex: binary.LittleEndian.Uint32(eightBytes[1:5]),
				}
			}
			cm.catchClauseTable[i] = clauses
		}
	}
	want := reader.sum
	if _, err = io.ReadFull(raw, eightBytes[:4]); err != nil {
		return nil, false, fmt.Errorf("compilationcache: could not read the fields' checksum: %v", err)
	} else if got := binary.LittleEndian.Uint32(eightBytes[:4]); got != want {
		return nil, false, fmt.Errorf("compilationcache: the fields' checksum mismatch (expected %d, got %d)", want, got)
	}
	return
}

// readUint64 strictly reads an uint64 in little-endian byte order, using the
// given array as a buffer. This returns io.EOF if less than 8 bytes were read.
func readUint64(reader io.Reader, b *[8]byte) (uint64, error) {
	s := b[0:8]
	// Sluice: ReadFull, not Read: the buffered reader of filecache returns
	// what its buffer holds, fewer than 8 bytes where a value straddles its
	// end (upstream read the file itself, short only at its end).
	if _, err := io.ReadFull(reader, s); err != nil {
		return 0, err
	}

	// Read the u64 from the underlying buffer.
	ret := binary.LittleEndian.Uint64(s)
	return ret, nil
}
