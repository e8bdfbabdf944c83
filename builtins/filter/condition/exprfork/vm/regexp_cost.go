package vm

import (
	"regexp"
	"regexp/syntax"
)

// Sluice (SLUICE.md): what `matches` costs. Go's regexp is linear in the
// text but also in the program the pattern compiles to: a match walks each
// byte of the text with up to one thread per instruction (16 to 22 ns per
// byte and instruction at worst, 5 to 10 ns for ordinary patterns, which
// is one step), and compiling costs 1 to 3 µs per instruction. A pattern
// taken from the event (`data.s matches data.re`) is compiled at each
// evaluation, at each pass of a loop.

// regexpCompileSteps is the steps charged per instruction of a pattern
// compiled at run time, before it is compiled.
const regexpCompileSteps = 256

// regexpMatchSteps is the steps a match of r, of size instructions, on a
// text of textLen bytes is charged: a step per byte and instruction, or
// for a pattern that is a plain literal (which regexp looks for as
// strings.Contains does) a step per 64 bytes, as contains is.
func regexpMatchSteps(r *regexp.Regexp, textLen int, size uint64) uint64 {
	if _, complete := r.LiteralPrefix(); complete {
		return uint64(textLen) / bytesPerStep
	}
	return satMul(uint64(textLen)+1, size)
}

// regexpSize is an upper bound of the instructions pattern compiles to,
// computed from its parse (which is small: `(?:a{1000}){1000}` parses into
// a few nodes and compiles into a million instructions), so that the
// compilation is charged before it is done.
func regexpSize(pattern string) (uint64, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return 0, err
	}
	return treeSize(re) + 2, nil
}

func treeSize(re *syntax.Regexp) uint64 {
	var n uint64
	switch re.Op {
	case syntax.OpLiteral:
		return uint64(len(re.Rune)) + 1
	case syntax.OpCapture:
		return satAdd(treeSize(re.Sub[0]), 2)
	case syntax.OpConcat, syntax.OpAlternate:
		for _, s := range re.Sub {
			n = satAdd(n, treeSize(s)+1)
		}
		return n
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		return satAdd(treeSize(re.Sub[0]), 1)
	case syntax.OpRepeat:
		copies := re.Max
		if copies < 0 {
			copies = re.Min + 1
		}
		if copies < 1 {
			copies = 1
		}
		return satMul(satAdd(treeSize(re.Sub[0]), 1), uint64(copies))
	}
	return 1
}

func satAdd(a, b uint64) uint64 {
	if a+b < a {
		return ^uint64(0)
	}
	return a + b
}

func satMul(a, b uint64) uint64 {
	if b != 0 && a > ^uint64(0)/b {
		return ^uint64(0)
	}
	return a * b
}

// regexpSizes gives the size of each constant pattern of a program (0 for
// the other constants), computed once when the program is made.
func regexpSizes(constants []any) []uint64 {
	var sizes []uint64
	for i, c := range constants {
		r, ok := c.(*regexp.Regexp)
		if !ok {
			continue
		}
		if sizes == nil {
			sizes = make([]uint64, len(constants))
		}
		n, err := regexpSize(r.String())
		if err != nil {
			n = uint64(len(r.String())) + 2 // compiled already: cannot fail
		}
		sizes[i] = n
	}
	return sizes
}

// compileRegexp compiles a pattern met at run time, charging its
// compilation first. The last pattern is kept, so a loop matching with
// the same pattern compiles it once.
func (vm *VM) compileRegexp(pattern string) (*regexp.Regexp, uint64) {
	if vm.re != nil && vm.rePattern == pattern {
		return vm.re, vm.reSize
	}
	size, err := regexpSize(pattern)
	if err != nil {
		panic(err)
	}
	vm.walk(satMul(size, regexpCompileSteps))
	r, err := regexp.Compile(pattern)
	if err != nil {
		panic(err)
	}
	vm.re, vm.rePattern, vm.reSize = r, pattern, size
	return r, size
}
