#!/usr/bin/env bash
# Checks the http-lb-vhosts sandbox: its config validates, and run.sh prints what README.md
# says (each Host reaches its own two instances, alternately; another Host is a 404).
# Exits non-zero on any mismatch.
# Usage: LEGATE_BIN=target/release/legate examples/http-lb-vhosts/test.sh
# Runs on NET=127.0.<random> unless NET is set, beside anything on the default addresses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
legate=$(realpath "${LEGATE_BIN:-$here/../../target/release/legate}")
export NET=${NET:-127.0.$((100 + RANDOM % 150))}
fail=0
check() { # check DESCRIPTION CMD...
  local what=$1; shift
  if "$@"; then echo "ok   $what"; else echo "FAIL $what"; fail=1; fi
}
"$legate" --mode validate -c "$here/envoy.yaml" >/dev/null || { echo "FAIL envoy.yaml does not validate"; fail=1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 60 bash "$here/run.sh" "$legate" >"$out" 2>&1 || { cat "$out"; echo "FAIL run.sh exited non-zero"; exit 1; }
cat "$out"
echo "--- checks"
answers() { sed -n "/^$1\./,/^$(($1 + 1))\./p" "$out" | grep -E '^  [a-z]+[0-9] \(' | tr -d ' ' | tr '\n' ' '; }
alternate() { # alternate STEP A B: four answers, A and B taking turns
  local got; got=$(answers "$1")
  [ "$got" = "$2 $3 $2 $3 " ] || [ "$got" = "$3 $2 $3 $2 " ] || { echo "  step $1: $got"; return 1; }
}
check "nginx.local: nginx1 and nginx2 in turn" alternate 4 'nginx1(nginx)' 'nginx2(nginx)'
check "httpd.local: httpd1 and httpd2 in turn" alternate 5 'httpd1(httpd)' 'httpd2(httpd)'
check "another Host: 404" grep -qx '  404' "$out"
check "/clusters: four hosts by their DNS names" \
  test "$(grep -cE "^  (nginx|httpd)_cluster::$NET\.4[1-4]:[0-9]+::hostname::(nginx|httpd)[12]$" "$out")" = 4
check "run.sh reached its end" grep -qx 'sandbox OK' "$out"
exit $fail
