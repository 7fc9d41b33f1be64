#!/bin/sh
# Benchmarks, run by hand (`make bench`); never part of `make test`.
#   bench/run.sh            everything
#   bench/run.sh http|agents|agents-nats|config|bus|js|outbox|gate|authz|privacy|quota
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
if [ "$what" = all ] || [ "$what" = agents ]; then
    ninja -C "$B/release" fake_upstream >/dev/null
    run "agents: /v1/chat/completions against nginx proxying to the same fake upstream"
    /usr/bin/python3 bench/agents_bench.py --bin "$B/release/dagi" --fake "$B/release/fake_upstream"
fi
if [ "$what" = all ] || [ "$what" = agents-nats ]; then
    ninja -C "$B/release" fake_upstream >/dev/null
    run "agents through nats-server: gateway, router and swapper as three processes"
    /usr/bin/python3 bench/agents_bench.py --mode nats --bin "$B/release/dagi" \
        --fake "$B/release/fake_upstream"
fi
if [ "$what" = all ] || [ "$what" = config ]; then
    run "config: a pushed document reaching another node's router through KV"
    /usr/bin/python3 bench/config_bench.py --bin "$B/release/dagi"
fi
for b in bus js outbox gate authz privacy quota; do
    if [ "$what" = all ] || [ "$what" = "$b" ]; then
        if ninja -C "$B/release" -t targets all | grep -q "^${b}_bench:"; then
            ninja -C "$B/release" "${b}_bench" >/dev/null
            run "$b"
            "$B/release/${b}_bench"
        fi
    fi
done
