#!/usr/bin/python3
"""Adds up the test results of every build and prints "N passed, N failed".

Unit tests speak TAP (cmocka), so each test case counts, not each binary:
the cases are read from meson's testlog.json.  E2E summaries are JSON files
written by tests/e2e/run.py.  A build step that failed counts as a failure,
so a broken build can never look green."""
import json
import os
import re
import sys


def meson_counts(build_dir):
    path = os.path.join(build_dir, "meson-logs", "testlog.json")
    passed = failed = 0
    if not os.path.exists(path):
        return 0, 1
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            out = entry.get("stdout", "") or ""
            oks = len(re.findall(r"^ok \d+", out, re.M))
            not_oks = len(re.findall(r"^not ok \d+", out, re.M))
            if oks or not_oks:
                passed += oks
                failed += not_oks
                if entry.get("result") not in ("OK", "EXPECTEDFAIL") and not not_oks:
                    failed += 1  # crashed after its last case
            elif entry.get("result") in ("OK", "EXPECTEDFAIL"):
                passed += 1
            else:
                failed += 1
    return passed, failed


def e2e_counts(path):
    if not os.path.exists(path):
        return 0, 1
    with open(path) as f:
        s = json.load(f)
    return s["passed"], s["failed"]


def main():
    args = sys.argv[1:]
    failed_steps = ""
    if "--failed-steps" in args:
        i = args.index("--failed-steps")
        failed_steps = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
    passed = failed = 0
    for a in args:
        p, f = e2e_counts(a) if a.endswith(".json") else meson_counts(a)
        print(f"  {a}: {p} passed, {f} failed")
        passed += p
        failed += f
    steps = failed_steps.split()
    if steps:
        print("failed steps: " + " ".join(steps))
        failed += len([s for s in steps if s.startswith("build")])
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 and not steps else 1


if __name__ == "__main__":
    sys.exit(main())
