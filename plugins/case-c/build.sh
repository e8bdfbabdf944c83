#!/bin/sh
# Builds case-c.wasm from src/case.c with Debian's clang and wasi-libc
# (apt-get install clang lld wasi-libc).
#   ./build.sh          rebuild case-c.wasm in place
#   ./build.sh OUT      build to OUT (CI compares it with the committed one)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/case-c.wasm}
case $out in /*) ;; *) out=$PWD/$out ;; esac
cd "$here"
clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -Wl,--strip-all -o "$out" src/case.c
