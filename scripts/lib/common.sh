# Shared by scripts/demo, scripts/test and scripts/bench: installs the Debian
# packages cairn needs (only the missing ones, quietly when none is) and
# configures and builds a meson build directory.

set -euo pipefail

CAIRN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
JOBS="${CAIRN_JOBS:-2}"

# Everything builds from Debian packages; nothing is downloaded at build time.
CAIRN_PACKAGES=(
  g++ meson ninja-build pkg-config python3 cmake iproute2
  liblmdb-dev libyaml-cpp-dev libabsl-dev
  libzstd-dev liblz4-dev libsnappy-dev zlib1g-dev
  libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc
  python3-grpcio python3-protobuf openssl libboost1.74-dev curl
  libgtest-dev libgmock-dev libbenchmark-dev libhiredis-dev libmemcached-dev
  librocksdb-dev etcd-server golang-etcd-server-dev
  redis-server redis-tools python3-redis
)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

# configure DIR [meson options...]: sets up DIR once. When the options asked
# for differ from those it was set up with, it starts DIR afresh (meson 1.0's
# --reconfigure does not apply changed compiler arguments).
configure() {
  local dir="$1"; shift
  local stamp="$CAIRN_ROOT/$dir/.cairn-options"
  if [ -f "$CAIRN_ROOT/$dir/build.ninja" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$*" ]; then
    return 0
  fi
  rm -rf "${CAIRN_ROOT:?}/$dir"
  say "configuring $dir ${*:-}"
  meson setup "$CAIRN_ROOT/$dir" "$CAIRN_ROOT" "$@" >/dev/null
  echo "$*" > "$stamp"
}

# test_targets DIR SUITE: the ninja targets of DIR's tests outside SUITE,
# so a build that runs only those need not build the rest.
test_targets() {
  # Regenerate first: introspection reads the last configure's test list,
  # which may predate a meson.build that moved a test between suites.
  ninja -C "$CAIRN_ROOT/$1" build.ninja >/dev/null
  python3 - "$CAIRN_ROOT/$1" "$2" <<'PY'
import json, os, subprocess, sys
build, skip = sys.argv[1], "cairn:" + sys.argv[2]
def introspect(what):
    return json.loads(subprocess.run(["meson", "introspect", build, what], check=True,
                                     capture_output=True, text=True).stdout)
files = {t["id"]: t["filename"] for t in introspect("--targets")}
wanted = set()
for test in introspect("--tests"):
    if skip in test["suite"]:
        continue
    for dep in test.get("depends", []):
        wanted.update(os.path.relpath(f, build) for f in files.get(dep, []))
print(" ".join(sorted(wanted)))
PY
}

# build DIR [targets...]
build() {
  local dir="$1"; shift
  say "building $dir"
  ninja -C "$CAIRN_ROOT/$dir" -j "$JOBS" "$@"
}
