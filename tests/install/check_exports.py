#!/usr/bin/env python3
"""Checks that an installed libcairn.so exports cairn's public API and
nothing else.

usage: check_exports.py LIBCAIRN_SO INCLUDE_DIR

Every dynamic symbol the library defines must be cairn's (cairn::..., or
the typeinfo, vtable or thunk of a cairn class) and must name something
the installed headers under INCLUDE_DIR/cairn declare. A few classes the
headers only mention in passing (forward declarations of internal types)
must not be exported at all. Exits 1 listing what is wrong.
"""
import glob
import os
import re
import subprocess
import sys

# Implementation classes: the installed headers may name some of them
# (forward declarations), but none is part of the ABI.
INTERNAL = {
    "ConfigInternal", "Executor", "FailureDetector", "GrpcStore", "HintedHandoff",
    "HttpHandler", "HttpServer", "KeyIndex", "LatencyHistogram", "LogFile",
    "Replica", "RoutedStore", "Server",
}
PREFIXES = re.compile(r"^(typeinfo name for|typeinfo for|vtable for|VTT for|guard variable for|"
                      r"non-virtual thunk to|virtual thunk to|covariant return thunk to) ")


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    lib, include = sys.argv[1], sys.argv[2]
    words = set()
    for header in glob.glob(os.path.join(include, "cairn", "*.h")):
        with open(header) as f:
            words.update(re.findall(r"[A-Za-z_]\w*", f.read()))
    out = subprocess.run(["nm", "-D", "--defined-only", "-C", lib], check=True,
                         capture_output=True, text=True).stdout
    problems, count = [], 0
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) < 3:
            continue
        count += 1
        name = PREFIXES.sub("", parts[2])
        # The return type of a template function comes first: skip to cairn::.
        m = re.match(r"(?:.*?\s)?(cairn::(?:internal::)?)(\w+)", name)
        if m is None or not name[m.start(1):].startswith("cairn::"):
            problems.append("not cairn's: " + parts[2])
            continue
        ident = m.group(2)
        if ident in INTERNAL:
            problems.append("an internal class is exported: " + parts[2])
        elif ident not in words:
            problems.append("not declared in any installed header: " + parts[2])
    if count == 0:
        problems.append("no symbols at all: is this a shared library?")
    for p in problems:
        print(p[:300])
    print(f"check_exports: {count} symbols, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
