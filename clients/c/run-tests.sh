#!/usr/bin/env bash
# Runs the C client's tests against a fresh orgd (from $ORGD_BIN_DIR, else the
# package's debug build) under valgrind: any leak or memory error fails.
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
bin="${ORGD_BIN_DIR:-$root/.build/debug}"
work="$(mktemp -d /tmp/orgd-c-XXXXXX)"
"$bin/orgd" --database "$work/orgd.sqlite" --socket "$work/s" --listen 127.0.0.1:0 --log-level warning > "$work/out" 2> "$work/err" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "tcp:" "$work/out" 2>/dev/null && break; sleep 0.1; done
port="$(sed -n 's/^orgd listening on tcp:.*:\([0-9]*\)$/\1/p' "$work/out")"
[ -n "$port" ] || { cat "$work/err"; echo "orgd did not start" >&2; exit 1; }
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
  --error-exitcode=99 --trace-children=no build/test_client "$root/testdata/ttrpc-vectors.json" "$work/s" "$port"
valgrind --quiet --leak-check=full --error-exitcode=99 build/orgd_example unix "$work/s" "Example Practice" | grep -q "Example Practice"
echo "example: ok"
