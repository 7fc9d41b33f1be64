#!/bin/sh
# Benchmarks, run by hand (`make bench`); never part of `make test`.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
[ -f "$B/release/build.ninja" ] || meson setup "$B/release" --buildtype=release -Dtest_hooks=false >/dev/null
ninja -C "$B/release" >/dev/null
exec /usr/bin/python3 bench/http_bench.py --bin "$B/release/dagi" "$@"
