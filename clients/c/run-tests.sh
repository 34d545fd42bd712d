#!/usr/bin/env bash
# Runs the C client's tests against fresh orgd daemons (from $ORGD_BIN_DIR,
# else the package's debug build) under valgrind: any leak or memory error
# fails. One daemon serves a Unix socket and plain TCP; a second serves mutual
# TLS with certificates made here with openssl (a CA, a server certificate for
# the name "localhost" only, a client certificate from the CA and one from a
# foreign CA).
set -euo pipefail
cd "$(dirname "$0")"
root="$(cd ../.. && pwd)"
bin="${ORGD_BIN_DIR:-$root/.build/debug}"
work="$(mktemp -d "${TMPDIR:-/tmp}/orgd-c-XXXXXX")"
daemons=()
# Every daemon this script started is stopped and waited for however the
# script ends (success, a failed check, an error, ^C).
stop_daemons() {
  for d in "${daemons[@]}"; do kill "$d" 2>/dev/null || true; done
  for d in "${daemons[@]}"; do wait "$d" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop_daemons EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Starts orgd with the given arguments; sets $started_port to the TCP port it
# chose. Not in a command substitution: that would start orgd in a subshell,
# whose `daemons` this shell never sees (the daemons then outlived the script).
start_orgd() {
  local name="$1"; shift
  "$bin/orgd" --database "$work/$name.sqlite" --listen 127.0.0.1:0 --log-level warning "$@" > "$work/$name.out" 2> "$work/$name.err" &
  daemons+=($!)
  for _ in $(seq 100); do grep -q "tcp:\|tls:" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
  started_port="$(sed -n 's/^orgd listening on t[a-z]*:.*:\([0-9]*\)$/\1/p' "$work/$name.out")"
  [ -n "$started_port" ] || { cat "$work/$name.err" >&2; echo "orgd ($name) did not start" >&2; exit 1; }
}

certs="$work/certs"
mkdir -p "$certs"
authority() { # name subject
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$certs/$1-key.pem" \
    -out "$certs/$1.pem" -days 2 -subj "/CN=$2" 2>/dev/null
}
leaf() { # name ca subject extensions
  printf '%s\n' "$4" > "$certs/$1.ext"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$certs/$1-key.pem" \
    -out "$certs/$1.csr" -subj "/CN=$3" 2>/dev/null
  openssl x509 -req -in "$certs/$1.csr" -CA "$certs/$2.pem" -CAkey "$certs/$2-key.pem" -CAcreateserial \
    -out "$certs/$1.pem" -days 2 -extfile "$certs/$1.ext" 2>/dev/null
}
authority ca "orgd C client test CA"
authority foreign-ca "Some other CA"
leaf server ca localhost "subjectAltName=DNS:localhost
extendedKeyUsage=serverAuth"
leaf client ca "a C client" "extendedKeyUsage=clientAuth"
leaf foreign-client foreign-ca "a stranger" "extendedKeyUsage=clientAuth"

start_orgd plain --socket "$work/s"
port="$started_port"
start_orgd tls --socket none --tls-cert "$certs/server.pem" --tls-key "$certs/server-key.pem" \
  --tls-client-ca "$certs/ca.pem"
tls_port="$started_port"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
  --error-exitcode=99 --trace-children=no build/test_client "$root/testdata/ttrpc-vectors.json" "$work/s" "$port" "$tls_port" "$certs"
valgrind --quiet --leak-check=full --error-exitcode=99 build/orgd_example unix "$work/s" "Example Practice" | grep -q "Example Practice"
echo "example: ok"
# Failover: two more daemons, each on its own database; the test stops them.
start_orgd failover-a --socket "$work/fa"
failover_a="${daemons[-1]}"
start_orgd failover-b --socket "$work/fb"
failover_b="${daemons[-1]}"
valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible \
  --error-exitcode=99 build/test_failover "$work/fa" "$failover_a" "$work/fb" "$failover_b"
