package instrument

import "fmt"

// MaxTableSize caps a table's elements (8 bytes each in the host, per
// instance): 1,048,576 elements, 8 MiB. Go modules use tens of thousands;
// without a cap a module could declare 134 million (wazero's own limit),
// a gigabyte per instance outside any memory_limit.
const MaxTableSize = 1 << 20

// checkDeclared refuses a module whose declared sizes promise more than
// its bytes hold. A decoder allocates what a vector declares before it
// reads the vector (wazero's does), so a module of a few dozen bytes
// declaring four billion data bytes or function names would take the
// whole process down with an out-of-memory crash. The rewrite reads the
// type, import, function, global, export, element and code sections whole
// and fails on a short one; this covers the rest: the table, tag and data
// sections and the "name" custom section (which wazero decodes).
func (m *module) checkDeclared() error {
	for _, s := range m.sections {
		var err error
		switch {
		case s.id == secTable:
			err = checkTables(s.body)
		case s.id == secTag:
			err = checkVector(s.body, func(r *reader) { r.byte(); r.u32() }) // attribute, type index
		case s.id == secData:
			err = checkVector(s.body, skipDataSegment)
		case s.id == secCustom && s.name == "name":
			err = checkNames(s.body)
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("%s: %w", sectionName(s), err)
		}
	}
	return nil
}

// checkVector reads a vector of body: its count, which must not exceed the
// bytes left (every element takes at least one), then each element with
// skip, to its end.
func checkVector(body []byte, skip func(*reader)) error {
	r := &reader{b: body}
	n := count(r)
	for i := uint32(0); i < n && r.err == nil; i++ {
		skip(r)
	}
	if r.err != nil {
		return r.err
	}
	if !r.done() {
		return fmt.Errorf("%d bytes after the last of %d entries", len(r.b)-r.pos, n)
	}
	return nil
}

// count reads a vector's count and fails if the bytes left cannot hold
// that many elements.
func count(r *reader) uint32 {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(len(r.b)-r.pos) {
		r.fail(fmt.Errorf("declares %d entries in %d bytes", n, len(r.b)-r.pos))
		return 0
	}
	return n
}

// checkTables refuses tables that start with more than MaxTableSize
// elements in all: the limit is per instance, not per table (16 tables of
// MaxTableSize each took 16 times the host memory the ABI allows).
func checkTables(body []byte) error {
	i := 0
	var total uint64
	return checkVector(body, func(r *reader) {
		r.byte() // reference type
		flags := r.byte()
		if r.err == nil && flags > 1 {
			r.fail(fmt.Errorf("table %d uses unsupported flags 0x%02x (shared or 64-bit table)", i, flags))
			return
		}
		min := r.u32()
		total += uint64(min)
		switch {
		case r.err != nil || total <= MaxTableSize:
		case i == 0:
			r.fail(fmt.Errorf("table %d starts with %d elements (at most %d)", i, min, MaxTableSize))
		default:
			r.fail(fmt.Errorf("tables 0 to %d start with %d elements in all (at most %d per instance)", i, total, MaxTableSize))
		}
		if flags == 1 {
			r.u32()
		}
		i++
	})
}

// capTables re-encodes the table section with the tables' maximums adding
// up to at most MaxTableSize (table.grow stops there), as the memory's is
// capped: each table may grow by an equal share of what their starting
// sizes leave (a module has one table, as a rule, which gets all of it).
// The section was checked by checkTables.
func capTables(body []byte) []byte {
	r := &reader{b: body}
	n := r.u32()
	var total uint64
	for range n {
		r.byte()
		flags := r.byte()
		total += uint64(r.u32())
		if flags == 1 {
			r.u32()
		}
	}
	share := uint32((MaxTableSize - total) / uint64(max(n, 1)))
	r = &reader{b: body}
	r.u32()
	b := appendU32(nil, n)
	for range n {
		ref, flags, min := r.byte(), r.byte(), r.u32()
		max := min + share
		if flags == 1 {
			max = minU32(r.u32(), max)
		}
		b = append(b, ref, 1)
		b = appendU32(b, min)
		b = appendU32(b, max)
	}
	return b
}

// skipDataSegment reads a data segment: flags (0 active in memory 0, 1
// passive, 2 active with a memory index), the offset expression of an
// active one, and its bytes.
func skipDataSegment(r *reader) {
	switch flags := r.u32(); flags {
	case 0:
	case 1:
		r.bytes(int(r.u32()))
		return
	case 2:
		r.u32()
	default:
		if r.err == nil {
			r.fail(fmt.Errorf("data segment with unknown flags %d", flags))
		}
		return
	}
	if _, err := copyExpr(nil, r, func(i uint32) uint32 { return i }); err != nil {
		r.fail(err)
		return
	}
	r.bytes(int(r.u32()))
}

// checkNames walks the "name" section's subsections: the module's name
// (0), function names (1) and local names (2) are decoded by wazero, the
// others skipped by their size.
func checkNames(body []byte) error {
	r := &reader{b: body}
	r.name() // the custom section's own name, "name"
	for !r.done() {
		id := r.byte()
		sub := r.bytes(int(r.u32()))
		if r.err != nil {
			return fmt.Errorf("subsection %d: %w", id, r.err)
		}
		var err error
		switch id {
		case 0:
			sr := &reader{b: sub}
			sr.name()
			err = sr.err
		case 1:
			err = checkVector(sub, skipNameAssoc)
		case 2:
			err = checkVector(sub, func(r *reader) {
				r.u32() // function index
				n := count(r)
				for i := uint32(0); i < n && r.err == nil; i++ {
					skipNameAssoc(r)
				}
			})
		}
		if err != nil {
			return fmt.Errorf("subsection %d: %w", id, err)
		}
	}
	return r.err
}

func skipNameAssoc(r *reader) {
	r.u32()
	r.name()
}

func sectionName(s section) string {
	if s.id == secCustom {
		return fmt.Sprintf("custom section %q", s.name)
	}
	names := map[byte]string{secTable: "table section", secTag: "tag section", secData: "data section"}
	if n, ok := names[s.id]; ok {
		return n
	}
	return fmt.Sprintf("section %d", s.id)
}
