#!/bin/sh
# Benchmarks, run by hand (`make bench`); never part of `make test`.
#   bench/run.sh            everything
#   bench/run.sh http|bus|js|outbox
# Each prints medians and the ratio to a baseline measured in the same run.
set -eu
cd "$(dirname "$0")/.."
B=${BUILD:-build}
[ -f "$B/release/build.ninja" ] || meson setup "$B/release" --buildtype=release -Dtest_hooks=false >/dev/null
ninja -C "$B/release" dagi >/dev/null
what="${1:-all}"
run() { echo; echo "=== $1 ==="; }
if [ "$what" = all ] || [ "$what" = http ]; then
    run "HTTP: /healthz against nginx"
    /usr/bin/python3 bench/http_bench.py --bin "$B/release/dagi"
fi
for b in bus js outbox; do
    if [ "$what" = all ] || [ "$what" = "$b" ]; then
        if grep -q "'${b}_bench'" meson.build; then
            ninja -C "$B/release" "${b}_bench" >/dev/null
            run "$b"
            "$B/release/${b}_bench"
        fi
    fi
done
