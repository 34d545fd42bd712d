#!/usr/bin/env bash
# Checks the C client as a user of an installed copy sees it:
#  1. `make install DESTDIR=… PREFIX=/usr` lays out the headers, both
#     libraries with their links and orgd-client.pc (whose paths name /usr),
#     and `make uninstall` removes every file again;
#  2. `make install PREFIX=<temporary>`, then examples/orgd_example.c, copied
#     away from the source tree, is built with nothing but
#     `pkg-config --cflags --libs orgd-client` (PKG_CONFIG_PATH at that
#     prefix): linked with the shared library (rpath to the prefix; ldd must
#     show the installed liborgdclient.so.0) and statically
#     (`pkg-config --static`); the shared library exports exactly the
#     functions orgd_client.h declares (plus the protoc-c code);
#  3. both programs print their usage, then create an organisation on a fresh
#     orgd (from $ORGD_BIN_DIR, else the package's debug build).
# Any failed step fails the script.
set -euo pipefail
cd "$(dirname "$0")"
here="$(pwd)"
root="$(cd ../.. && pwd)"
bin="${ORGD_BIN_DIR:-$root/.build/debug}"
work="$(mktemp -d "${TMPDIR:-/tmp}/orgd-c-install-XXXXXX")"
daemon=""
cleanup() {
  if [ -n "$daemon" ]; then kill "$daemon" 2>/dev/null || true; wait "$daemon" 2>/dev/null || true; fi
  rm -rf "$work"
  # The installs below wrote build/orgd-client.pc for their prefixes; put
  # back the one for the default PREFIX.
  make -s -C "$here" build/orgd-client.pc >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
fail() { echo "install-check: $*" >&2; exit 1; }
# Runs a command with its output to a log, shown only if it fails.
quiet() {
  local log="$work/step.log"
  "$@" > "$log" 2>&1 || { cat "$log" >&2; fail "failed: $*"; }
}

version="$(sed -n 's/^VERSION = //p' Makefile)"
soversion="$(sed -n 's/^SOVERSION = //p' Makefile)"
[ -n "$version" ] && [ -n "$soversion" ] || fail "no VERSION or SOVERSION in the Makefile"
quiet make -s all

# 1. A staged install for /usr, and its uninstall.
stage="$work/stage"
quiet make -s install DESTDIR="$stage" PREFIX=/usr
expected=(usr/include/orgd-client/orgd_client.h usr/lib/liborgdclient.a "usr/lib/liborgdclient.so.$version"
          usr/lib/pkgconfig/orgd-client.pc)
while IFS= read -r header; do expected+=("usr/include/orgd-client/${header#gen/}"); done < <(find gen -name '*.pb-c.h')
for file in "${expected[@]}"; do [ -f "$stage/$file" ] || fail "make install did not install $file"; done
[ "$(readlink "$stage/usr/lib/liborgdclient.so.$soversion")" = "liborgdclient.so.$version" ] || fail "bad link liborgdclient.so.$soversion"
[ "$(readlink "$stage/usr/lib/liborgdclient.so")" = "liborgdclient.so.$soversion" ] || fail "bad link liborgdclient.so"
installed="$(cd "$stage" && find . ! -type d | wc -l)"
[ "$installed" -eq $((${#expected[@]} + 2)) ] || fail "make install installed $installed files, expected $((${#expected[@]} + 2))"
grep -qx 'prefix=/usr' "$stage/usr/lib/pkgconfig/orgd-client.pc" || fail "orgd-client.pc does not name prefix /usr"
grep -q "$stage" "$stage/usr/lib/pkgconfig/orgd-client.pc" && fail "orgd-client.pc names the DESTDIR"
quiet make -s uninstall DESTDIR="$stage" PREFIX=/usr
left="$(cd "$stage" && find . ! -type d)"
[ -z "$left" ] || fail "make uninstall left: $left"
echo "install-check: make install DESTDIR=… PREFIX=/usr and make uninstall: ok"

# 2. An install at a temporary prefix; the example built against it only.
prefix="$work/prefix"
quiet make -s install PREFIX="$prefix"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
pkg-config --exists orgd-client || fail "pkg-config does not find orgd-client in $PKG_CONFIG_PATH"
[ "$(pkg-config --modversion orgd-client)" = "$version" ] || fail "orgd-client.pc's version is not $version"
libdir="$(pkg-config --variable=libdir orgd-client)"
[ "$libdir" = "$prefix/lib" ] || fail "orgd-client.pc's libdir is $libdir, not $prefix/lib"
mkdir "$work/src"
cp examples/orgd_example.c "$work/src/"
cd "$work/src"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split
quiet cc -std=c11 -Wall -Wextra -Werror orgd_example.c $(pkg-config --cflags --libs orgd-client) \
  -Wl,-rpath,"$libdir" -o example-shared
# shellcheck disable=SC2046
quiet cc -std=c11 -Wall -Wextra -Werror -static orgd_example.c $(pkg-config --cflags orgd-client) \
  $(pkg-config --static --libs orgd-client) -o example-static
# (Outputs are read whole before grep -q: an early exit would break the
# pipe, and pipefail would take that for a failure.)
loads="$(ldd example-shared)"
grep -q "liborgdclient.so.$soversion => $libdir/liborgdclient.so.$soversion " <<< "$loads" ||
  { echo "$loads" >&2; fail "example-shared does not load the installed liborgdclient.so.$soversion"; }
dynamic="$(readelf -d example-static 2>&1 || true)"
if grep -q NEEDED <<< "$dynamic"; then
  echo "$dynamic" >&2; fail "example-static needs shared libraries"
fi
# The shared library's own functions: exactly those orgd_client.h declares
# (with ORGD_API or, by mistake, without).
declared="$(sed -n 's/^\(ORGD_API \)\{0,1\}[a-z][^(]*[ *]\(orgd_[a-z_]*\)(.*/\2/p' "$prefix/include/orgd-client/orgd_client.h" | LC_ALL=C sort)"
exported="$(nm -D --defined-only "$libdir/liborgdclient.so" | awk '{print $3}' | grep '^orgd_[a-z]' | grep -v '^orgd__' | LC_ALL=C sort || true)"
[ -n "$declared" ] && [ "$declared" = "$exported" ] ||
  fail "liborgdclient.so exports $(echo $exported) but orgd_client.h declares $(echo $declared)"
others="$(nm -D --defined-only "$libdir/liborgdclient.so" | awk '{print $3}' | grep -Ev '^(orgd_[a-z]|orgd__v1__|google__|grpc__|ttrpc__)' || true)"
[ -z "$others" ] || fail "liborgdclient.so also exports: $(echo $others)"
echo "install-check: example built with pkg-config against $prefix, shared and static: ok"

# 3. Run them.
for example in example-shared example-static; do
  status=0
  ./$example > "$work/usage.out" 2> "$work/usage.err" || status=$?
  [ "$status" -eq 2 ] && grep -q "^usage: " "$work/usage.err" || { cat "$work/usage.err" >&2; fail "$example without arguments: status $status, no usage"; }
done
[ -x "$bin/orgd" ] || fail "no orgd at $bin (build it, or set ORGD_BIN_DIR)"
"$bin/orgd" --database "$work/orgd.sqlite" --socket "$work/s" --listen 127.0.0.1:0 --log-level warning \
  > "$work/orgd.out" 2> "$work/orgd.err" &
daemon=$!
for _ in $(seq 100); do grep -q "tcp:" "$work/orgd.out" 2>/dev/null && [ -S "$work/s" ] && break; sleep 0.1; done
[ -S "$work/s" ] || { cat "$work/orgd.err" >&2; fail "orgd did not start"; }
for example in example-shared example-static; do
  ./$example unix "$work/s" "Installed $example" > "$work/$example.out" 2>&1 || { cat "$work/$example.out" >&2; fail "$example against orgd failed"; }
  grep -q "Installed $example" "$work/$example.out" || { cat "$work/$example.out" >&2; fail "$example did not list its organisation"; }
done
echo "install-check: installed example (shared and static) against orgd: ok"
