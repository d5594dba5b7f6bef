#!/usr/bin/env python3
"""Writes etcd's v3 API .proto files, as Debian ships them in
golang-etcd-server-dev, without what only Go and the JSON gateway need:
the gogoproto and google.api imports and options. Neither changes a byte
on the wire, so the stubs protoc makes from the result speak etcd's gRPC
API exactly.

  trim_etcd_proto.py SOURCE_ROOT OUT_DIR

SOURCE_ROOT is the directory holding etcd's tree (etcdserver/, mvcc/,
auth/); the three files land in OUT_DIR as etcd_rpc.proto, etcd_kv.proto
and etcd_auth.proto, side by side (a build system's outputs are flat),
with their imports rewritten to match.
"""
import pathlib
import re
import sys

FILES = {
    "etcdserver/etcdserverpb/rpc.proto": "etcd_rpc.proto",
    "mvcc/mvccpb/kv.proto": "etcd_kv.proto",
    "auth/authpb/auth.proto": "etcd_auth.proto",
}


def drop_http_options(text: str) -> str:
    start = re.compile(r"\s*option \(google\.api\.http\) = \{")
    while (m := start.search(text)) is not None:
        depth, i = 1, m.end()
        while depth > 0:
            if i >= len(text):
                raise SystemExit("trim_etcd_proto.py: an unclosed google.api.http option")
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if text[i] != ";":
            raise SystemExit("trim_etcd_proto.py: a google.api.http option without its ';'")
        text = text[:m.start()] + text[i + 1:]
    return text


def trim(text: str) -> str:
    text = re.sub(r'^import "(gogoproto/gogo|google/api/annotations)\.proto";\n', "", text,
                  flags=re.M)
    text = re.sub(r"^option \(gogoproto\.[a-z_]+\) = [a-z]+;\n", "", text, flags=re.M)
    # option (google.api.http) = { ... };  (a block inside an rpc's braces,
    # which may nest additional_bindings { ... })
    text = drop_http_options(text)
    # Field options: [(gogoproto.nullable) = false, ...]
    text = re.sub(r"\s*\[\(gogoproto\.[^\]]*\]", "", text)
    for rel, flat in FILES.items():
        text = text.replace(f'import "etcd/{rel}";', f'import "{flat}";')
    if "gogoproto" in text or "google.api" in text or 'import "etcd/' in text:
        raise SystemExit("trim_etcd_proto.py: an option this script does not know is left")
    return text


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    for rel, flat in FILES.items():
        path = src / rel
        if not path.is_file():
            raise SystemExit(f"trim_etcd_proto.py: {path} is missing "
                             "(Debian's golang-etcd-server-dev ships it)")
        out.mkdir(parents=True, exist_ok=True)
        (out / flat).write_text(trim(path.read_text()))


main()
