#!/usr/bin/env bash
# cairn as another project gets it: installs a built cairn into a staging
# tree (DESTDIR), checks what was installed (headers, libraries, SONAME,
# exported symbols, pkg-config and CMake files, tools, proto, configs),
# compiles each public header on its own, builds and runs
# examples/consumer against the staged tree four ways (meson and CMake,
# each with libcairn.so and with libcairn.a), and compiles and runs every
# complete C++ program README.md and docs/ show. Nothing from the source
# tree is on their include path.
#
#   tests/install/install_test.sh BUILD_DIR     (a built meson build dir)
#
# scripts/test runs it on build-release. Exits non-zero at the first check
# that fails, saying which.
set -euo pipefail

if [ $# -ne 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -eq 1 ] && [ "$1" != "${1#-}" ] && exit 0
  exit 2
fi
build="$(cd "$1" && pwd)"
root="$(cd "$(dirname "$0")/../.." && pwd)"
jobs="${CAIRN_JOBS:-2}"
work="$(mktemp -d /tmp/cairn-install-test.XXXXXX)"
trap 'rm -rf "$work"' EXIT

step() { printf '\033[1m--> %s\033[0m\n' "$*" >&2; }
fail() { echo "install_test: $*" >&2; exit 1; }
option() {  # the value of a meson option of the build
  meson introspect "$build" --buildoptions |
    python3 -c "import json,sys; print(next(o['value'] for o in json.load(sys.stdin) if o['name']=='$1'))"
}

prefix="$(option prefix)"
libdir="$(option libdir)"
version="$(meson introspect "$build" --projectinfo |
           python3 -c 'import json,sys; print(json.load(sys.stdin)["version"])')"
IFS=. read -r major minor _ <<< "$version"
if [ "$major" = 0 ]; then soversion="0.$minor"; else soversion="$major"; fi

step "installing $build (cairn $version) into a staging tree"
stage="$work/stage"
meson install -C "$build" --destdir "$stage" --quiet >/dev/null
top="$stage$prefix"
lib="$top/$libdir"

step "what was installed"
for f in bin/cairn bin/cairn-server include/cairn/store.h include/cairn/version.h \
         "$libdir/libcairn.a" "$libdir/libcairn.so.$version" "$libdir/libcairn.so.$soversion" \
         "$libdir/libcairn.so" "$libdir/pkgconfig/cairn.pc" \
         "$libdir/cmake/cairn/cairnConfig.cmake" "$libdir/cmake/cairn/cairnConfigVersion.cmake" \
         share/cairn/cairn.proto share/doc/cairn/examples/configs/cluster3-smart.yaml; do
  [ -e "$top/$f" ] || fail "not installed: $prefix/$f"
done
# Only the public headers: everything under include/ is include/cairn/*.h.
extra="$(find "$top/include" -type f ! -path "$top/include/cairn/*.h")"
[ -z "$extra" ] || fail "installed outside include/cairn/*.h: $extra"
diff <(cd "$root/include/cairn" && ls ./*.h | sed 's|^\./||') \
     <(cd "$top/include/cairn" && ls ./*.h | sed 's|^\./||' | grep -vx version.h) >/dev/null ||
  fail "the installed headers differ from include/cairn/"
soname="$(readelf -d "$lib/libcairn.so.$version" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')"
[ "$soname" = "libcairn.so.$soversion" ] || fail "SONAME is '$soname', not libcairn.so.$soversion"
for tool in cairn cairn-server; do
  out="$("$top/bin/$tool" --version)"
  [ "$out" = "$tool $version" ] || fail "$tool --version says '$out', not '$tool $version'"
done

step "libcairn.so exports the public API only"
python3 "$root/tests/install/check_exports.py" "$lib/libcairn.so.$version" "$lib/libcairn.a" \
  "$top/include"

export PKG_CONFIG_PATH="$lib/pkgconfig"
[ "$(pkg-config --modversion cairn)" = "$version" ] || fail "pkg-config --modversion cairn"
cflags="$(pkg-config --cflags cairn)"
case "$cflags" in *"$stage"*) ;; *) fail "pkg-config --cflags cairn does not point into the staging tree: $cflags" ;; esac

step "each public header compiles on its own"
header_check() {
  printf '#include <cairn/%s>\n' "$1" |
    c++ -std=c++20 -Wall -Wextra -Wpedantic -Werror -fsyntax-only $cflags -x c++ - ||
    { echo "install_test: <cairn/$1> does not compile on its own" >&2; return 1; }
}
export -f header_check
export cflags
(cd "$top/include/cairn" && ls ./*.h | sed 's|^\./||') |
  xargs -P "$jobs" -I{} bash -c 'header_check {}'

consumer="$root/examples/consumer"
check_linked() {  # BINARY shared|static: needs libcairn.so (and loads the staged one), or not at all
  local needed
  needed="$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')"
  if [ "$2" = static ]; then
    ! grep -q libcairn <<< "$needed" || fail "$1 needs libcairn.so; it should link libcairn.a"
  else
    grep -qx "libcairn.so.$soversion" <<< "$needed" || fail "$1 does not need libcairn.so.$soversion: $needed"
    # Captured first: under pipefail, `ldd | grep -q` fails whenever grep
    # exits on its match before ldd has written the rest (SIGPIPE), as a
    # fresh-clone CI run did.
    local loaded
    loaded="$(LD_LIBRARY_PATH="$lib" ldd "$1")"
    grep -q "libcairn.so.$soversion => $lib/" <<< "$loaded" ||
      fail "$1 does not load the staged libcairn.so"
  fi
}
# The programs below run with the staged library (the tools' rpath is the
# build tree's, and /usr/local may hold another cairn).
export LD_LIBRARY_PATH="$lib"

for kind in shared static; do
  step "examples/consumer with meson, $kind"
  static=false; [ "$kind" = static ] && static=true
  # Release: the public headers must pass -O3 with -Werror in a user's build too.
  meson setup "$work/meson-$kind" "$consumer" --buildtype=release -Dcairn_static=$static >/dev/null
  ninja -C "$work/meson-$kind" -j "$jobs" >"$work/ninja-$kind.log" ||
    { cat "$work/ninja-$kind.log"; fail "consumer build (meson, $kind)"; }
  check_linked "$work/meson-$kind/consumer" "$kind"
  meson test -C "$work/meson-$kind" --print-errorlogs >/dev/null ||
    { cat "$work/meson-$kind/meson-logs/testlog.txt"; fail "consumer tests (meson, $kind)"; }

  step "examples/consumer with CMake, $kind"
  on=OFF; [ "$kind" = static ] && on=ON
  cmake -S "$consumer" -B "$work/cmake-$kind" -G Ninja -DCMAKE_PREFIX_PATH="$top" \
    -DCMAKE_BUILD_TYPE=Release -DCAIRN_STATIC=$on >/dev/null
  cmake --build "$work/cmake-$kind" -j "$jobs" >"$work/cmake-build-$kind.log" ||
    { cat "$work/cmake-build-$kind.log"; fail "consumer build (CMake, $kind)"; }
  check_linked "$work/cmake-$kind/consumer" "$kind"
  ctest --test-dir "$work/cmake-$kind" --output-on-failure >/dev/null ||
    { ctest --test-dir "$work/cmake-$kind" --output-on-failure; fail "consumer tests (CMake, $kind)"; }
done

step "the C++ programs the docs show compile, link and run"
mkdir -p "$work/doc-programs/run"
ln -s "$root/examples" "$work/doc-programs/run/examples"
programs="$(python3 "$root/tests/install/doc_programs.py" "$work/doc-programs" "$root/README.md" "$root"/docs/*.md)"
[ -n "$programs" ] || fail "no C++ program found in the docs"
for src in $programs; do
  where="$(head -1 "$src" | cut -c4-)"
  # The two command lines docs/library.md shows: shared, then libcairn.a.
  c++ -std=c++20 -Wall -Wextra -Werror "$src" -o "${src%.cc}" $(pkg-config --cflags --libs cairn) ||
    fail "$where: does not compile against the installed cairn"
  c++ -std=c++20 -Wall -Wextra -Werror "$src" -o "${src%.cc}-static" $(pkg-config --cflags cairn) \
    $(pkg-config --static --libs cairn | sed 's/-lcairn /-l:libcairn.a /') ||
    fail "$where: does not link with libcairn.a"
  check_linked "${src%.cc}" shared
  check_linked "${src%.cc}-static" static
  for program in "${src%.cc}" "${src%.cc}-static"; do
    (cd "$work/doc-programs/run" && "$program" >/dev/null) || fail "$where: $(basename "$program") fails"
  done
done

step "the consumer's program, as a user runs it"
(cd "$work" && "$work/meson-shared/consumer" "$consumer/consumer.yaml")
echo "install_test: cairn $version installs, and examples/consumer builds and passes with meson and CMake, shared and static" >&2
