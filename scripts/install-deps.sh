#!/bin/sh
# Installs the Debian packages dagi needs, and nothing else.  Idempotent: a
# package already installed is skipped, and apt-get runs only when something
# is missing.  Usage: scripts/install-deps.sh [build|bench|fuzz]...  (default: build)
set -eu

# build: compile (gcc and clang), unit tests (cmocka), sanitizers, e2e harness
# (Python's standard library only), TLS fixtures (openssl), the embedded bus
# (nats-server, also started by tests), the stores (SQLite; PostgreSQL, whose
# server the tests start in a temp dir).
BUILD_PKGS="build-essential pkg-config meson ninja-build clang libcmocka-dev \
libevent-dev libssl-dev libcurl4-openssl-dev libjansson-dev libyaml-dev libsodium-dev \
libnats-dev nats-server libsqlite3-dev libpq-dev postgresql-15 python3 openssl \
ca-certificates tzdata libjemalloc-dev"
# bench: the load generator and the baseline server.
BENCH_PKGS="wrk nginx-light procps util-linux"
# fuzz: clang's libFuzzer and sanitizer runtimes.
FUZZ_PKGS="libclang-rt-14-dev"

profiles="${*:-build}"
wanted=""
for p in $profiles; do
    case "$p" in
    build) wanted="$wanted $BUILD_PKGS" ;;
    bench) wanted="$wanted $BUILD_PKGS $BENCH_PKGS" ;;
    fuzz) wanted="$wanted $BUILD_PKGS $FUZZ_PKGS" ;;
    *) echo "install-deps: unknown profile '$p' (build, bench, fuzz)" >&2; exit 2 ;;
    esac
done

missing=""
for pkg in $wanted; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
    fi
done
[ -z "$missing" ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
