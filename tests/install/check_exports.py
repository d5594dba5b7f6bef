#!/usr/bin/env python3
"""Checks that an installed libcairn exports cairn's public API and nothing
else.

usage: check_exports.py LIBCAIRN_SO LIBCAIRN_A INCLUDE_DIR

Fails (exit 1, listing each problem) when
  - the shared library exports a symbol that is not cairn's: everything it
    defines must be in namespace cairn, or the typeinfo, vtable, thunk or
    guard variable of something that is (read from the mangled names);
  - an exported symbol names something the installed headers under
    INCLUDE_DIR/cairn do not declare: every part of its qualified name
    (namespace, classes, function) must appear in the headers' code,
    comments left out;
  - an exported symbol belongs to an implementation class: one of a fixed
    list, or one a public header forward-declares CAIRN_INTERNAL;
  - a public header declares something outside CAIRN_API_BEGIN/END, which
    would then be hidden;
  - the static library defines a cairn symbol with default visibility
    (declared by a public header, so part of the API) that the shared
    library does not export.
"""
import glob
import os
import re
import subprocess
import sys

# Implementation classes: public headers may name some of them, but none
# is part of the ABI.
INTERNAL = {
    "ConfigInternal", "Executor", "FailureDetector", "GrpcStore", "HintedHandoff",
    "HttpHandler", "HttpServer", "KeyIndex", "LatencyHistogram", "LogFile",
    "Replica", "RoutedStore", "StoreServer",
}
# A cairn name, mangled: what follows an optional special-name prefix
# (typeinfo, typeinfo name, vtable, VTT, guard variable, thunks) must be
# nested in namespace cairn (N, optional cv-qualifiers, 5cairn).
CAIRN_MANGLED = re.compile(r"^_Z(?:T[ISVT]|GV|Thn?\d+_|Tvn?\d+_n?\d+_|Tc.*?_)?N[rVKRO]*5cairn")
SPECIAL = re.compile(r"^(typeinfo name for|typeinfo for|vtable for|VTT for|guard variable for|"
                     r"non-virtual thunk to|virtual thunk to|covariant return thunk to) ")


def run(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def demangle(names):
    out = run("c++filt", *names) if names else ""
    return out.split("\n")[: len(names)]


def code_of(text):
    """The text without comments or string literals."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    return re.sub(r'"(?:[^"\\\n]|\\.)*"', '""', text)


def strip_templates(name):
    out, depth = [], 0
    for c in name:
        if c == "<":
            depth += 1
        elif c == ">":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(c)
    return "".join(out)


def components(demangled):
    """The parts of a symbol's qualified name, from 'cairn' on: for
    'cairn::LogStore::State::read(...) const::copy' that is cairn, LogStore,
    State, read."""
    name = SPECIAL.sub("", demangled)
    name = strip_templates(name)
    name = name.split("(", 1)[0]
    # A template function's return type comes first, before a space.
    name = name.rsplit(" ", 1)[-1] if " " in name.split("cairn::", 1)[0] else name
    parts = name.split("::")
    while parts and parts[0] != "cairn":
        parts.pop(0)
    return parts


def header_problems(include):
    words, internal, problems = set(), set(INTERNAL), []
    for header in sorted(glob.glob(os.path.join(include, "cairn", "*.h"))):
        text = open(header).read()
        code = code_of(text)
        words.update(re.findall(r"[A-Za-z_]\w*", code))
        internal.update(re.findall(r"(?:class|struct)\s+CAIRN_INTERNAL\s+(\w+)", code))
        if os.path.basename(header) == "export.h":
            continue
        begin, end = code.find("CAIRN_API_BEGIN"), code.rfind("CAIRN_API_END")
        namespaces = [m.start() for m in re.finditer(r"\bnamespace\s+cairn\b", code)]
        if not namespaces:
            continue
        if begin < 0 or end < 0 or min(namespaces) < begin or max(namespaces) > end:
            problems.append(f"{header}: declares in namespace cairn outside "
                            "CAIRN_API_BEGIN ... CAIRN_API_END (hidden from the shared library)")
    return words, internal, problems


def main():
    if len(sys.argv) != 4 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    shared, static, include = sys.argv[1:]
    words, internal, problems = header_problems(include)

    exported = []
    for line in run("nm", "-D", "--defined-only", shared).splitlines():
        parts = line.split()
        if len(parts) >= 3:
            exported.append(parts[2].split("@")[0])
    if not exported:
        problems.append("no symbols at all: is this a shared library?")
    for mangled, name in zip(exported, demangle(exported)):
        if not CAIRN_MANGLED.match(mangled):
            problems.append("not cairn's: " + name)
            continue
        for part in components(name)[1:]:
            part = re.sub(r"\[abi:\w+\]", "", part).lstrip("~")
            if part.startswith("operator") or part.startswith("{") or not part:
                continue
            if part in internal:
                problems.append(f"an implementation class ({part}) is exported: {name}")
                break
            if part not in words:
                problems.append(f"'{part}' is in no installed header: {name}")
                break

    # Declared by a public header (default visibility in the objects) but
    # not exported: the version script or the link lost it.
    declared = set()
    for line in run("readelf", "-sW", static).splitlines():
        f = line.split()
        if (len(f) >= 8 and f[4] in ("GLOBAL", "WEAK") and f[5] == "DEFAULT" and f[6] != "UND"
                and CAIRN_MANGLED.match(f[7])):
            declared.add(f[7])
    missing = sorted(declared - set(exported))
    for mangled, name in zip(missing, demangle(missing)):
        problems.append("public in libcairn.a, not exported by libcairn.so: " + name)

    for p in problems:
        print(p[:300])
    print(f"check_exports: {len(exported)} symbols exported, {len(declared)} public in the "
          f"static library, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
