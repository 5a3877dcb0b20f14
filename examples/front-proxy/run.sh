#!/usr/bin/env bash
# Envoy's front-proxy sandbox on one machine: a front legate routes /service/1 and /service/2
# over h2c to two services, each instance an app behind its own legate sidecar. service1 is
# found by DNS (STRICT_DNS) through a small DNS server; "scaling service1 to 3" adds two A
# records, and the front proxy balances over three instances without a config change.
# Usage: examples/front-proxy/run.sh [path/to/legate]   (or LEGATE_BIN; default target/release/legate)
# Addresses: front proxy and DNS server 127.0.0.10, service1 instances 127.0.0.11-13, service2
# 127.0.0.21. NET=127.0.5 moves them all to 127.0.5.x; FRONT_PORT (8000), ADMIN_PORT (8001),
# SIDECAR_PORT (8080), APP_PORT (8081), SIDECAR_ADMIN_PORT (8082) and DNS_PORT (5353) move ports.
# Everything started here is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
common="$here/../common"
legate=$(realpath "${1:-${LEGATE_BIN:-$here/../../target/release/legate}}")
net=${NET:-127.0.0}
front_port=${FRONT_PORT:-8000} admin_port=${ADMIN_PORT:-8001} dns_port=${DNS_PORT:-5353}
sidecar_port=${SIDECAR_PORT:-8080} app_port=${APP_PORT:-8081} sidecar_admin=${SIDECAR_ADMIN_PORT:-8082}
# shellcheck source=../common/lib.sh
. "$common/lib.sh"
ports=("8000=$front_port" "8001=$admin_port" "5353=$dns_port" "8080=$sidecar_port" "8081=$app_port" "8082=$sidecar_admin")
front="http://$net.10:$front_port"
admin="http://$net.10:$admin_port"

# An instance: the demo app and its sidecar on the instance's own address.
instance() { # instance NAME SERVICE LAST_OCTET
  local ip="$net.$3"
  start "$1-app" python3 "$common/service.py" --bind "$ip" --port "$app_port" --service "$2" --instance "$1"
  render "$here/service-envoy.yaml" "$work/$1-envoy.yaml" "$net" "127.0.0.11=127.0.0.$3" "${ports[@]}"
  start "$1-sidecar" "$legate" -c "$work/$1-envoy.yaml" -l warning --drain-time-s 1
  wait_until "$1 behind its sidecar" curl -sf --max-time 1 "http://$ip:$sidecar_port/service/$2"
}

echo "1. a DNS server on $net.10:$dns_port: service1 -> $net.11, service2 -> $net.21 (TTL 1 s)"
printf 'service1 %s.11\nservice2 %s.21\n' "$net" "$net" > "$work/records"
start dns python3 "$common/dns_server.py" --records "$work/records" --bind "$net.10" --port "$dns_port" --ttl 1
echo "2. service1-a and service2-a, each an app behind its sidecar (service-envoy.yaml)"
instance service1-a 1 11
instance service2-a 2 21
echo "3. the front proxy (front-envoy.yaml) on $net.10:$front_port, admin :$admin_port"
render "$here/front-envoy.yaml" "$work/front-envoy.yaml" "$net" "${ports[@]}"
start front "$legate" -c "$work/front-envoy.yaml" -l warning --drain-time-s 1
wait_until "the front proxy" curl -sf --max-time 1 "$front/service/2"

echo "4. curl $front/service/1 and /service/2"
curl -s "$front/service/1" | sed 's/^/  /'
curl -s "$front/service/2" | sed 's/^/  /'

echo "5. scale service1 to 3: two more instances, and two more A records for service1"
instance service1-b 1 12
instance service1-c 1 13
hosts() { curl -s "$admin/clusters" | grep -c "^service1::.*::hostname::" || true; }
three_hosts() { [ "$(hosts)" = 3 ]; }
t0=$(date +%s.%N)
printf 'service1 %s.11 %s.12 %s.13\nservice2 %s.21\n' "$net" "$net" "$net" "$net" > "$work/records.new"
mv "$work/records.new" "$work/records"
wait_until "service1's three hosts" three_hosts || true
t1=$(date +%s.%N)
echo "  service1 has $(hosts) hosts, $(python3 -c "print(f'{$t1 - $t0:.1f}')") s after the DNS change (respect_dns_ttl: the records' TTL is 1 s)"

echo "6. round robin over the three instances, no config change:"
for _ in 1 2 3 4 5 6; do curl -s "$front/service/1" | sed 's/^/  /'; done

echo "7. curl -s $admin/clusters | grep service1 (per host: hostname, connections, requests)"
curl -s "$admin/clusters" | grep '^service1::' | grep -E '::(hostname|cx_total|rq_total|rq_success)::' | sed 's/^/  /'

echo "8. curl -s $admin/stats | grep cluster.service1 (DNS updates, h2c connections, requests)"
curl -s "$admin/stats" \
  | grep -E '^cluster\.service1\.(update_(attempt|success|no_rebuild|failure)|membership_total|upstream_cx_http2_total|upstream_rq_total|upstream_rq_200):' \
  | sed 's/^/  /'
echo "sandbox OK"
