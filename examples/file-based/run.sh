#!/usr/bin/env bash
# Runs legate on this folder's files, then edits them the ways people do and shows traffic
# follow each edit. Everything listens on 127.0.0.1; everything started here is stopped here.
# Usage: examples/file-based/run.sh [path/to/legate]   (default: target/release/legate)
# The ports are the files' own (listener 18000, upstreams 18081-18083, admin 19901); set
# LISTEN_PORT, UP1_PORT, UP2_PORT, UP3_PORT or ADMIN_PORT to run it beside something that
# already uses one of them (the copies in the scratch folder get the new numbers).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
legate=$(realpath "${1:-$here/../../target/release/legate}")
listen=${LISTEN_PORT:-18000} up1=${UP1_PORT:-18081} up2=${UP2_PORT:-18082} up3=${UP3_PORT:-18083}
admin=${ADMIN_PORT:-19901}
work=$(mktemp -d)
for f in "$here"/*.yaml; do
  sed -e "s/port_value: 18000/port_value: $listen/" -e "s/port_value: 18081/port_value: $up1/" \
      -e "s/port_value: 18083/port_value: $up3/" -e "s/port_value: 19901/port_value: $admin/" \
      "$f" > "$work/$(basename "$f")"
done
cd "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  # Bounded wait for them to go, then force what is left: only our own PIDs.
  for _ in $(seq 1 50); do
    alive=0; for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Three upstreams that say who they are.
for port in "$up1" "$up2" "$up3"; do
  mkdir -p "up$port" && echo "upstream $port" > "up$port/index.html"
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "up$port" >/dev/null 2>&1 &
  pids+=($!)
done
"$legate" -c envoy.yaml -l warning --drain-time-s 2 &
pids+=($!)

# Bounded wait for a condition: up to 10 s.
until_answer() { # until_answer EXPECTED
  for _ in $(seq 1 100); do
    got=$(curl -s --max-time 1 http://127.0.0.1:$listen/ || true)
    if [ "$got" = "$1" ]; then echo "  -> $got"; return 0; fi
    sleep 0.1
  done
  echo "  !! expected '$1', got '$got'"; return 1
}

echo "1. start: / goes to the EDS endpoint $up1";             until_answer "upstream $up1"
echo "2. EDS edited in place (sed -i): endpoint $up2"
sed -i "s/port_value: $up1/port_value: $up2/" eds.yaml;        until_answer "upstream $up2"
echo "3. RDS replaced atomically (write + mv): route to canary"
sed 's/cluster: backend/cluster: canary/' rds.yaml > rds.tmp && mv rds.tmp rds.yaml
until_answer "upstream $up3"
echo "4. RDS rewritten with cat > (truncate + write): back to backend"
sed 's/cluster: canary/cluster: backend/' rds.yaml > rds.new && cat rds.new > rds.yaml
until_answer "upstream $up2"
echo "5. a broken CDS edit (a misspelt field) is rejected; traffic does not notice"
cp cds.yaml cds.good && echo "  lb_polcy: ROUND_ROBIN" >> cds.yaml
rejected=0
for _ in $(seq 1 100); do
  curl -s http://127.0.0.1:$admin/stats | grep -q 'cluster_manager.cds.update_rejected: 1' && { rejected=1; break; }
  sleep 0.1
done
curl -s http://127.0.0.1:$admin/stats | grep 'cluster_manager.cds.update_rejected'
[ "$rejected" = 1 ] || { echo "  !! the broken CDS file was not rejected"; exit 1; }
until_answer "upstream $up2"
mv cds.good cds.yaml
echo "6. the last reloads, as legate saw them:"
curl -s http://127.0.0.1:$admin/reloads | python3 -c 'import json,sys; [print("  ", r["outcome"], r["files"], round(r["duration_ms"],2), "ms") for r in json.load(sys.stdin)["reloads"][:6]]'
echo "sandbox OK"
