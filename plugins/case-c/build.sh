#!/bin/sh
# Builds case-c.wasm from src/case.c with Debian's clang and wasi-libc
# (apt-get install clang lld wasi-libc).
#   ./build.sh          rebuild case-c.wasm in place
#   ./build.sh OUT      build to OUT (CI compares it with the committed one)
set -eu
cd "$(dirname "$0")"
out=${1:-case-c.wasm}
clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -Wl,--strip-all -o "$out" src/case.c
