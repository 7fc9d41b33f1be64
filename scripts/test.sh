#!/bin/sh
# Builds dagi three ways and runs every test:
#   build/test   gcc, test hooks: unit tests, fuzz-corpus replays, e2e tests
#   build/asan   gcc + AddressSanitizer + UBSan, test hooks: the same tests again
#   build/clang  clang, release options (no test hooks): must compile warning-free
# Ends with one line "N passed, N failed".  Exit status 0 only when nothing failed.
set -u
cd "$(dirname "$0")/.."
B=${BUILD:-build}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
failed_steps=""

step() { # name, command...
    name=$1; shift
    echo "==> $name"
    if ! "$@"; then
        echo "==> $name: FAILED"
        failed_steps="$failed_steps $name"
    fi
}

setup() { # dir, meson args...
    dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || return 1
    fi
    ninja -C "$dir" >/dev/null || ninja -C "$dir"
}

step build-test setup "$B/test" -Dtest_hooks=true
step build-asan setup "$B/asan" -Dtest_hooks=true -Db_sanitize=address,undefined -Db_lundef=false
setup_clang() { (export CC=clang; setup "$@"); }
step build-clang setup_clang "$B/clang" --buildtype=release -Dtest_hooks=false

export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
step unit-test meson test -C "$B/test" --print-errorlogs --no-rebuild
step unit-asan meson test -C "$B/asan" --print-errorlogs --no-rebuild
step e2e-test "$PY" tests/e2e/run.py --bin "$B/test/dagi" --summary "$B/e2e-test.json"
step e2e-asan "$PY" tests/e2e/run.py --bin "$B/asan/dagi" --sanitized --summary "$B/e2e-asan.json"
# The release build (what `make run` ships): the lifecycle tests that need no test hooks.
step e2e-release "$PY" tests/e2e/run.py --bin "$B/clang/dagi" --summary "$B/e2e-release.json" \
    -k test_start_ready_metrics_admin_key -k test_sigint_stops_cleanly \
    -k test_admin_routes_need_the_key -k test_version_and_help -k test_release_build_has_no_test_routes \
    -k test_readyz_reports_the_bus -k test_kill_9_leaves_no_nats_server -k test_config.test_

"$PY" scripts/count_results.py "$B/test" "$B/asan" "$B/e2e-test.json" "$B/e2e-asan.json" \
    "$B/e2e-release.json" \
    --failed-steps "$failed_steps"
