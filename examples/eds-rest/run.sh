#!/usr/bin/env bash
# Endpoints served by a REST discovery server: legate polls it, an empty answer is a 503
# "no healthy upstream", endpoints added and removed on the server reach traffic within a
# refresh_delay, and when the server is gone legate keeps the last endpoints. Walked once with
# the seed's v2 config (POST /v2/discovery:endpoints) and once with the v3 one
# (transport_api_version: V3, POST /v3/discovery:endpoints).
# Usage: examples/eds-rest/run.sh [path/to/legate] [v2|v3|both]   (default: target/release/legate, both)
# Everything listens on $ADDR (127.0.0.1), on free ports unless LISTEN_PORT, ADMIN_PORT,
# EDS_PORT or UP1_PORT..UP5_PORT say otherwise; everything started here is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
legate=$(realpath "${1:-${LEGATE_BIN:-$here/../../target/release/legate}}")
which=${2:-both}
addr=${ADDR:-127.0.0.1}
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$addr"; }
listen=${LISTEN_PORT:-$(free_port)} admin=${ADMIN_PORT:-$(free_port)} eds=${EDS_PORT:-$(free_port)}
ups=("${UP1_PORT:-$(free_port)}" "${UP2_PORT:-$(free_port)}" "${UP3_PORT:-$(free_port)}" "${UP4_PORT:-$(free_port)}" "${UP5_PORT:-$(free_port)}")
# shellcheck source=../common/lib.sh
. "$here/../common/lib.sh"

# Five upstreams that say who they are.
for i in 1 2 3 4 5; do
  mkdir -p "$work/up$i" && echo "upstream $i" > "$work/up$i/index.html"
  python3 -m http.server "${ups[$((i-1))]}" --bind "$addr" --directory "$work/up$i" >/dev/null 2>&1 &
  pids+=($!)
done

curl_body() { curl -s --max-time 2 "http://$addr:$listen/" || true; }
until_answer() { # until_answer EXPECTED: up to 10 s
  for _ in $(seq 1 100); do
    got=$(curl_body)
    if [ "$got" = "$1" ]; then echo "  -> $got"; return 0; fi
    sleep 0.1
  done
  echo "  !! expected '$1', got '$got'"; return 1
}
set_endpoints() { # set_endpoints N...: the server serves upstreams N...
  local list=""
  for i in "$@"; do list="$list $addr:${ups[$((i-1))]}"; done
  echo "  server: $(curl -s -X PUT --data "$list" "http://$addr:$eds/control/endpoints")"
}
stat() { # stat NAME: its value (0 until it exists)
  local v; v=$(curl -s "http://$addr:$admin/stats?filter=^$1\$" | sed -n "s/^$1: //p")
  echo "${v:-0}"
}

walk() { # walk v2|v3
  local v=$1 cfg="$work/envoy-$1.yaml"
  sed -e "s/port_value: 10000/port_value: $listen/" -e "s/port_value: 9901/port_value: $admin/" \
      -e "s/port_value: 8080/port_value: $eds/" -e "s/address: 127.0.0.1/address: $addr/" \
      "$here/envoy-$v.yaml" > "$cfg"
  echo "=== $v: envoy-$v.yaml (listener $addr:$listen, admin :$admin, discovery server :$eds)"
  python3 "$here/eds_server.py" "$addr" "$eds" > "$work/eds-$v.log" 2>&1 &
  local server=$!; pids+=($server)
  for _ in $(seq 1 100); do curl -s "http://$addr:$eds/control/polls" >/dev/null && break; sleep 0.1; done
  "$legate" -c "$cfg" -l warning --drain-time-s 1 > "$work/legate-$v.log" 2>&1 &
  local proxy=$!; pids+=($proxy)

  echo "1. the server has no endpoints for myservice"
  until_answer "no healthy upstream"
  echo "2. add one endpoint"
  set_endpoints 1
  until_answer "upstream 1"
  echo "3. add four more: round robin over five"
  set_endpoints 1 2 3 4 5
  for _ in $(seq 1 100); do [ "$(stat cluster.targetCluster.membership_total)" = 5 ] && break; sleep 0.1; done
  for _ in $(seq 1 20); do curl_body; done | sort | uniq -c | sed 's/^ */  /'
  echo "4. remove them again"
  set_endpoints 1
  for _ in $(seq 1 100); do [ "$(stat cluster.targetCluster.membership_total)" = 1 ] && break; sleep 0.1; done
  until_answer "upstream 1"
  echo "5. what the server saw, and legate's stats"
  echo "  polls: $(curl -s "http://$addr:$eds/control/polls")"
  grep -m1 "^POST" "$work/eds-$v.log" | sed 's/^/  first poll: /'
  curl -s "http://$addr:$admin/stats" | grep -E '^cluster\.eds_cluster\.(internal\.)?upstream_rq_(total|200|completed):|^cluster\.targetCluster\.(update_(attempt|success|no_rebuild|failure)|version_text|membership_total):' | sed 's/^/  /'
  echo "  /config_dump?include_eds:"
  curl -s "http://$addr:$admin/config_dump?include_eds" | python3 -c '
import json, sys
for c in json.load(sys.stdin)["configs"]:
    if c["@type"].endswith("EndpointsConfigDump"):
        for e in c.get("static_endpoint_configs", []) + c.get("dynamic_endpoint_configs", []):
            cla = e["endpoint_config"]
            eps = [lb["endpoint"]["address"]["socket_address"] for loc in cla.get("endpoints", []) for lb in loc["lb_endpoints"]]
            print("    %s: %s" % (cla["cluster_name"], ", ".join("%s:%s" % (a["address"], a["port_value"]) for a in eps)))'
  echo "6. stop the discovery server: legate keeps the last endpoints"
  local failures; failures=$(stat cluster.targetCluster.update_failure)
  stop "$server"
  for _ in $(seq 1 100); do [ "$(stat cluster.targetCluster.update_failure)" -gt "$failures" ] && break; sleep 0.1; done
  echo "  update_failure: $failures -> $(stat cluster.targetCluster.update_failure)"
  until_answer "upstream 1"
  stop "$proxy"
}

case "$which" in
  v2|v3) walk "$which" ;;
  both) walk v2; walk v3 ;;
  *) echo "usage: $0 [legate] [v2|v3|both]" >&2; exit 2 ;;
esac
echo "sandbox OK"
