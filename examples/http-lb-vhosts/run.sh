#!/usr/bin/env bash
# Host-based load balancing (the 2019 tutorial's http-lb-vhosts): legate sends `Host:
# nginx.local` to two nginx instances and `Host: httpd.local` to two "httpd" instances, round
# robin in each. The nginx instances are real nginx; the "httpd" ones are the examples' Python
# demo app answering "httpdN (httpd)" (no Apache here). All four are found by DNS.
# Usage: examples/http-lb-vhosts/run.sh [path/to/legate]   (or LEGATE_BIN; default target/release/legate)
# Addresses: legate and the DNS server 127.0.0.40, nginx1-2 127.0.0.41-42, httpd1-2
# 127.0.0.43-44. NET=127.0.5 moves them all to 127.0.5.x; LISTEN_PORT (8000), ADMIN_PORT
# (8001), APP_PORT (8080) and DNS_PORT (5353) move ports. Everything started here is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
common="$here/../common"
legate=$(realpath "${1:-${LEGATE_BIN:-$here/../../target/release/legate}}")
net=${NET:-127.0.0}
listen_port=${LISTEN_PORT:-8000} admin_port=${ADMIN_PORT:-8001} app_port=${APP_PORT:-8080} dns_port=${DNS_PORT:-5353}
# shellcheck source=../common/lib.sh
. "$common/lib.sh"
lb="http://$net.40:$listen_port"
admin="http://$net.40:$admin_port"

echo "1. a DNS server on $net.40:$dns_port: nginx1, nginx2, httpd1, httpd2"
printf 'nginx1 %s.41\nnginx2 %s.42\nhttpd1 %s.43\nhttpd2 %s.44\n' "$net" "$net" "$net" "$net" > "$work/records"
start dns python3 "$common/dns_server.py" --records "$work/records" --bind "$net.40" --port "$dns_port" --ttl 5

echo "2. nginx1 and nginx2 (nginx), httpd1 and httpd2 (Python, answering as httpd)"
for i in 1 2; do
  mkdir -p "$work/nginx$i-tmp"
  sed -e "s|@WORK@|$work|g" -e "s|@NAME@|nginx$i|g" -e "s|@ADDR@|$net.4$i|g" -e "s|@PORT@|$app_port|g" \
    "$here/nginx.conf" > "$work/nginx$i.conf"
  start "nginx$i" nginx -c "$work/nginx$i.conf" -e "$work/nginx$i.error.log"
  start "httpd$i" python3 "$common/service.py" --bind "$net.4$((i + 2))" --port "$app_port" \
    --instance "httpd$i" --banner "httpd$i (httpd)"
done
for ip in 41 42 43 44; do wait_until "$net.$ip:$app_port" curl -sf --max-time 1 "http://$net.$ip:$app_port/"; done

echo "3. legate (envoy.yaml) on $net.40:$listen_port, admin :$admin_port"
render "$here/envoy.yaml" "$work/envoy.yaml" "$net" "8000=$listen_port" "8001=$admin_port" "8080=$app_port" "5353=$dns_port"
start legate "$legate" -c "$work/envoy.yaml" -l warning --drain-time-s 1
wait_until "legate" curl -sf --max-time 1 -H 'Host: httpd.local' "$lb/"
two_hosts() { [ "$(curl -s "$admin/clusters" | grep -cE "^$1::.*::hostname::")" = 2 ]; }
wait_until "both nginx hosts" two_hosts nginx_cluster
wait_until "both httpd hosts" two_hosts httpd_cluster

echo "4. curl -H 'Host: nginx.local' $lb/  (four times: round robin)"
for _ in 1 2 3 4; do curl -s -H 'Host: nginx.local' "$lb/" | sed 's/^/  /'; done
echo "5. curl -H 'Host: httpd.local' $lb/  (four times)"
for _ in 1 2 3 4; do curl -s -H 'Host: httpd.local' "$lb/" | sed 's/^/  /'; done
echo "6. another Host: no virtual host matches"
curl -s -o /dev/null -w '  %{http_code}\n' -H 'Host: other.local' "$lb/"

echo "7. curl -s $admin/clusters | grep -E 'hostname|rq_total'"
curl -s "$admin/clusters" | grep -E '::(hostname|rq_total)::' | sed 's/^/  /'
echo "sandbox OK"
