#!/usr/bin/env bash
# Checks the front-proxy sandbox: its configs validate, and run.sh prints what README.md says
# (both services answer, service1 reaches three hosts by DNS alone and round robin visits each,
# /clusters and /stats show them). Exits non-zero on any mismatch.
# Usage: LEGATE_BIN=target/release/legate examples/front-proxy/test.sh
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
for f in "$here"/*.yaml; do
  "$legate" --mode validate -c "$f" >/dev/null || { echo "FAIL $f does not validate"; fail=1; }
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
timeout 60 bash "$here/run.sh" "$legate" >"$out" 2>&1 || { cat "$out"; echo "FAIL run.sh exited non-zero"; exit 1; }
cat "$out"
echo "--- checks"
has() { grep -qE -- "$1" "$out"; }
check "service2 answers through its sidecar" has "Hello from behind legate \(service 2\)! hostname: service2-a resolvedhostname: $NET\.21$"
check "service1 reaches 3 hosts after the DNS change" has '^  service1 has 3 hosts, [0-9.]+ s after the DNS change'
rr=$(sed -n '/^6\./,/^7\./p' "$out" | grep -oE 'hostname: service1-[abc]' | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')
check "round robin: 6 requests, 2 to each of the 3 instances" test "$rr" = "2 2 2 "
check "/clusters lists the three hosts" test "$(grep -cE "^  service1::$NET\.1[123]:[0-9]+::hostname::service1$" "$out")" = 3
# The first lookup and the one that found the new records, at least (unchanged answers in
# between count as update_no_rebuild too, but how many fit depends on the machine's speed).
check "/stats counts DNS updates (the first lookup and the one after the change)" \
  has '^  cluster\.service1\.update_success: ([2-9]|[1-9][0-9]+)$'
check "/stats: no DNS failure" has '^  cluster\.service1\.update_failure: 0$'
check "/stats: h2c to the sidecars" has '^  cluster\.service1\.upstream_cx_http2_total: [1-9]'
check "run.sh reached its end" has '^sandbox OK$'
exit $fail
