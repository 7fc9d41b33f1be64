#!/usr/bin/python3
"""Checks the one layering rule of ARCHITECTURE.md that the compiler cannot:
roles share only libraries and the bus.

A role folder is a folder under src/ whose .c files define a
`const struct dagi_role dagi_role_<name>`; every other folder is a library.
A file in a role folder may include headers of its own folder and of
libraries; a library folder may include no role's header at all (a library
that depends on a role is a role in disguise).  Only src/main.c, which starts
the roles, may include them all.

usage: check_includes.py [SRC_DIR]      exit 1 and one line per violation
       check_includes.py --self-test    proves the check fails on a violation
"""
import os
import re
import sys
import tempfile

ROLE_DEF = re.compile(r"^const struct dagi_role dagi_role_\w+\s*=", re.M)
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"', re.M)


def folders(src):
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if os.path.isdir(path):
            yield name, path


def sources(path):
    for root, _, files in os.walk(path):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(root, f)


def role_folders(src):
    roles = set()
    for name, path in folders(src):
        for f in sources(path):
            if f.endswith(".c"):
                with open(f, encoding="utf-8", errors="replace") as fh:
                    if ROLE_DEF.search(fh.read()):
                        roles.add(name)
                        break
    return roles


def violations(src):
    roles = role_folders(src)
    out = []
    for name, path in folders(src):
        for f in sources(path):
            with open(f, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            for m in INCLUDE.finditer(text):
                target = m.group(1).split("/", 1)
                if len(target) < 2 or target[0] == name or target[0] not in roles:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                what = "role" if name in roles else "library"
                out.append(f"{os.path.relpath(f, os.path.dirname(src))}:{line}: the {what} "
                           f"'{name}' includes \"{m.group(1)}\" of the role '{target[0]}' "
                           "(share a library or talk over the bus)")
    return roles, out


def self_test():
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "src")
        files = {
            "alpha/alpha.c": '#include "alpha/alpha.h"\n#include "lib/util.h"\n'
                             "const struct dagi_role dagi_role_alpha = {0};\n",
            "alpha/alpha.h": "",
            "beta/beta.c": "const struct dagi_role dagi_role_beta = {0};\n",
            "beta/beta.h": "",
            "lib/util.h": "",
        }
        for rel, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
            with open(os.path.join(src, rel), "w") as f:
                f.write(text)
        roles, found = violations(src)
        assert roles == {"alpha", "beta"}, roles
        assert found == [], found
        with open(os.path.join(src, "beta/beta.c"), "a") as f:
            f.write('#include "alpha/alpha.h"\n')
        with open(os.path.join(src, "lib/util.c"), "w") as f:
            f.write('\n#include "beta/beta.h"\n')
        _, found = violations(src)
        assert len(found) == 2, found
        assert found[0].startswith("src/beta/beta.c:2: the role 'beta'"), found
        assert found[1].startswith("src/lib/util.c:2: the library 'lib'"), found
    print("ok 1 - a role including another role's header and a library including a role's "
          "header are both reported")
    return 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        print("1..1")
        return self_test()
    src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "src")
    src = os.path.normpath(src)
    roles, found = violations(src)
    for v in found:
        print(v)
    if found:
        return 1
    print(f"ok: no cross-role includes ({len(roles)} roles: {', '.join(sorted(roles))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
