#!/usr/bin/python3
"""Runs the black-box tests: every `test_*` function in tests/e2e/test_*.py.

Each test gets a fresh `ctx` (ctx.node(...) starts a dagi node that is
stopped and cleaned up afterwards; its temp dir is kept under
build/e2e-logs/ when the test fails).  Prints PASS/FAIL/SKIP per test and a
JSON summary for scripts/count_results.py.

usage: run.py --bin PATH [--sanitized] [--summary FILE] [-k SUBSTRING]..."""
import argparse
import importlib.util
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402


class Skip(Exception):
    pass


class Context:
    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.sanitized = harness.SANITIZED

    def node(self, config=None, args=(), env=None, start=True, tmp=None):
        n = harness.Node(self.name, config=config, args=args, env=env, tmp=tmp)
        self.nodes.append(n)
        return n.start() if start else n

    def skip(self, why):
        raise Skip(why)

    def cleanup(self, failed):
        for n in self.nodes:
            n.cleanup(keep=failed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--sanitized", action="store_true")
    ap.add_argument("--summary")
    ap.add_argument("-k", dest="filters", action="append",
                    help="run only tests whose name contains this (repeatable)")
    a = ap.parse_args()
    harness.BIN = os.path.abspath(a.bin)
    harness.SANITIZED = a.sanitized
    build_dir = os.path.dirname(harness.BIN)
    harness.KEEP_DIR = os.path.join(build_dir, "e2e-logs")
    passed = failed = skipped = 0
    failures = []
    for fname in sorted(os.listdir(HERE)):
        if not (fname.startswith("test_") and fname.endswith(".py")):
            continue
        spec = importlib.util.spec_from_file_location(fname[:-3], os.path.join(HERE, fname))
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for attr in sorted(dir(mod)):
            fn = getattr(mod, attr)
            if not (attr.startswith("test_") and callable(fn)):
                continue
            name = f"{fname[:-3]}.{attr}"
            if a.filters and not any(f in name for f in a.filters):
                continue
            ctx = Context(attr)
            t0 = time.monotonic()
            ok = False
            try:
                fn(ctx)
                ok = True
                passed += 1
                print(f"PASS {name} ({time.monotonic() - t0:.2f}s)", flush=True)
            except Skip as s:
                ok = True
                skipped += 1
                print(f"SKIP {name}: {s}", flush=True)
            except Exception:
                failed += 1
                failures.append(name)
                print(f"FAIL {name} ({time.monotonic() - t0:.2f}s)", flush=True)
                traceback.print_exc()
            finally:
                ctx.cleanup(failed=not ok)
    print(f"e2e ({os.path.basename(build_dir)}): {passed} passed, {failed} failed, {skipped} skipped")
    if failures:
        print("failed: " + ", ".join(failures))
        print(f"logs kept under {harness.KEEP_DIR}")
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump({"passed": passed, "failed": failed, "skipped": skipped,
                       "failures": failures}, f)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
