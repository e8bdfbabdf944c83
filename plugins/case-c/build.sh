#!/bin/sh
# Builds case-c.wasm from src/case.c with Debian's clang and wasi-libc.
#   ./build.sh          rebuild case-c.wasm in place
#   ./build.sh OUT      build to OUT (CI compares it with the committed one)
#   ./build.sh --check  exit 0 when the toolchain is complete; otherwise say
#                       what is missing on stderr and exit 3
#
# The toolchain is four packages (Debian 12 names; 14 is clang's version):
#   clang                      the compiler
#   lld                        wasm-ld, the linker clang calls for wasm32
#   wasi-libc                  the C library and crt1-reactor.o (/usr/lib/wasm32-wasi)
#   libclang-rt-14-dev-wasm32  the compiler runtime (libclang_rt.builtins-wasm32.a);
#                              without it the link fails for want of __multi3 and friends
set -eu

here=$(cd "$(dirname "$0")" && pwd)
# WASI_SYSROOT is where wasi-libc lives (Debian: /usr, with
# lib/wasm32-wasi); another distribution's wasi-sdk may put it elsewhere.
sysroot=${WASI_SYSROOT:-/usr}

# check prints what is missing of the toolchain and returns 3, or returns 0.
check() {
	if ! command -v clang >/dev/null 2>&1; then
		echo "clang is not installed (apt-get install clang lld wasi-libc libclang-rt-<version>-dev-wasm32)" >&2
		return 3
	fi
	major=$(clang -dumpversion 2>/dev/null | cut -d. -f1)
	missing=""
	if ! command -v wasm-ld >/dev/null 2>&1 && ! command -v "wasm-ld-$major" >/dev/null 2>&1; then
		missing="$missing lld"
	fi
	if [ ! -f "$sysroot/lib/wasm32-wasi/crt1-reactor.o" ]; then
		missing="$missing wasi-libc"
	fi
	rt=$(clang --target=wasm32-wasi --sysroot="$sysroot" -print-libgcc-file-name -rtlib=compiler-rt 2>/dev/null || true)
	if [ -z "$rt" ] || [ ! -f "$rt" ]; then
		missing="$missing libclang-rt-$major-dev-wasm32"
	fi
	if [ -n "$missing" ]; then
		echo "the wasm32 C toolchain is incomplete: apt-get install$missing${rt:+ (the compiler runtime would be $rt)}" >&2
		return 3
	fi
	# A trial link catches what the file checks cannot.
	trial=$(mktemp -d)
	if ! printf 'int f(long long a, long long b) { return (int)(((__int128)a * b) >> 64); }\n' > "$trial/t.c" ||
		! clang --target=wasm32-wasi --sysroot="$sysroot" -O2 -mexec-model=reactor -o "$trial/t.wasm" "$trial/t.c" 2>"$trial/err"; then
		echo "the wasm32 C toolchain cannot link a reactor module:" >&2
		cat "$trial/err" >&2
		rm -rf "$trial"
		return 3
	fi
	rm -rf "$trial"
	return 0
}

if [ "${1:-}" = "--check" ]; then
	check
	exit $?
fi
check || exit 3
out=${1:-$here/case-c.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$here"
clang --target=wasm32-wasi --sysroot="$sysroot" -O2 -mexec-model=reactor -Wl,--strip-all -o "$out" src/case.c
