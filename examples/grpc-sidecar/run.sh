#!/usr/bin/env bash
# The Kubernetes sidecar pattern on one machine, with real gRPC: the gateway application calls
# gRPC services through its sidecar's egress listener (127.0.0.1:8080), which routes by the
# service's path prefix over h2 to the ingress sidecar of each service pod; every sidecar logs
# requests on stdout in Envoy's format. Then the gateway's ConfigMap is updated the way the
# kubelet writes it (a new timestamped folder, the `..data` symlink swapped) and traffic follows.
# Each pod is a loopback address: gateway 127.0.0.1, alive 127.0.0.2, user 127.0.0.3, user v2
# 127.0.0.4 (Linux routes all of 127/8 to lo).
# Usage: examples/grpc-sidecar/run.sh [path/to/legate]   (default: target/release/legate)
# Ports: EGRESS_PORT (8080), INGRESS_PORT (10000), APP_PORT (8080), ADMIN_PORT (10001), each
# replaced by a free port when taken. Needs python3 with grpcio and grpcio-tools (installed
# with pip --quiet if missing). Everything started here is stopped on exit.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
legate=$(realpath "${1:-${LEGATE_BIN:-$here/../../target/release/legate}}")
python3 -c 'import grpc, grpc_tools' 2>/dev/null || python3 -m pip install --quiet grpcio grpcio-tools

gw=127.0.0.1 alive=127.0.0.2 user=127.0.0.3 user2=127.0.0.4
# The ports: the wanted one when it is free on that address, else a free one (one python run).
read -r egress gw_admin \
  in_alive app_alive admin_alive in_user app_user admin_user in_user2 app_user2 admin_user2 < <(python3 -c '
import socket, sys
def pick(addr, port):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
    except OSError:
        s.close(); s = socket.socket(); s.bind((addr, 0))
    with s:
        return s.getsockname()[1]
egress, ingress, app, admin = map(int, sys.argv[1:5])
ports = [pick("127.0.0.1", egress), pick("127.0.0.1", admin)]
for pod in sys.argv[5:]:
    ports += [pick(pod, ingress), pick(pod, app), pick(pod, admin)]
print(*ports)' "${EGRESS_PORT:-8080}" "${INGRESS_PORT:-10000}" "${APP_PORT:-8080}" "${ADMIN_PORT:-10001}" $alive $user $user2)
declare -A in_port=([$alive]=$in_alive [$user]=$in_user [$user2]=$in_user2)
declare -A app_port=([$alive]=$app_alive [$user]=$app_user [$user2]=$app_user2)
declare -A admin_port=([$alive]=$admin_alive [$user]=$admin_user [$user2]=$admin_user2)

# shellcheck source=../common/lib.sh
. "$here/../common/lib.sh"

# The stubs, generated from the .proto as a build would.
python3 -m grpc_tools.protoc -I "$here" --python_out="$work" --grpc_python_out="$work" "$here/gateway.proto"
export PYTHONPATH="$work${PYTHONPATH:+:$PYTHONPATH}"

# A pod: the gRPC application and its ingress sidecar (service.yaml with the pod's address).
start_pod() { # start_pod ADDR alive|user INSTANCE
  local pod=$1
  python3 "$here/service.py" "$2" "$pod" "${app_port[$pod]}" "$3" > "$work/$3.app.log" 2>&1 &
  pids+=($!)
  sed -e "s/address: 127.0.0.2/address: $pod/" -e "s/port_value: 10000/port_value: ${in_port[$pod]}/" \
      -e "s/port_value: 8080/port_value: ${app_port[$pod]}/" -e "s/port_value: 10001/port_value: ${admin_port[$pod]}/" \
      "$here/service.yaml" > "$work/$3.yaml"
  "$legate" -c "$work/$3.yaml" -l warning > "$work/$3.sidecar.log" 2>&1 &
  pids+=($!)
}
start_pod $alive alive alive-1
start_pod $user user user-v1
start_pod $user2 user user-v2

# The gateway's config as the kubelet lays out a ConfigMap volume: the file is a symlink
# through `..data`, itself a symlink to a timestamped folder holding the real file.
cm="$work/gateway-config"
mkdir -p "$cm"
gateway_config() { # gateway_config FILE: FILE with this run's ports
  sed -e "s/port_value: 8080/port_value: $egress/" -e "s/port_value: 10001/port_value: $gw_admin/" "$here/$1" | python3 -c '
import re, sys
ports = dict(arg.split("=") for arg in sys.argv[1:])
text = sys.stdin.read()
# Each cluster host: the pod address, then its ingress port.
print(re.sub(r"address: (127\.0\.0\.[234])\n(\s+)port_value: 10000",
             lambda m: "address: %s\n%sport_value: %s" % (m.group(1), m.group(2), ports[m.group(1)]), text), end="")' \
    "$alive=${in_port[$alive]}" "$user=${in_port[$user]}" "$user2=${in_port[$user2]}"
}
kubelet_write() { # kubelet_write FILE: the kubelet's atomic update of the volume
  local ts; ts="..$(date -u +%Y_%m_%d_%H_%M_%S).$(date +%N)"
  mkdir "$cm/$ts"
  gateway_config "$1" > "$cm/$ts/envoy.yaml"
  local old; old=$(readlink "$cm/..data" || true)
  ln -s "$ts" "$cm/..data_tmp"
  mv -T "$cm/..data_tmp" "$cm/..data"
  [ -L "$cm/envoy.yaml" ] || ln -s ..data/envoy.yaml "$cm/envoy.yaml"
  if [ -n "$old" ]; then rm -rf "${cm:?}/$old"; fi
}
kubelet_write gateway.yaml
"$legate" -c "$cm/envoy.yaml" -l warning > "$work/gateway.sidecar.log" 2>&1 &
pids+=($!)

client() { python3 "$here/client.py" "$gw:$egress" "$@"; }
calls() { # calls STEP...: client.py's output, indented; fails when an --until does
  client "$@" | sed 's/^/  /'
  return "${PIPESTATUS[0]}"
}
access_log() { # access_log NAME N: the last N lines the sidecar logged, without other output
  grep -E '^\[[0-9T:.-]+Z\] "' "$work/$1.sidecar.log" | tail -n "$2" | sed "s/^/  [$1] /"
}

echo "pods: gateway $gw (egress :$egress, admin :$gw_admin), alive-1 $alive, user-v1 $user, user-v2 $user2"
echo "1. the gateway calls both services through its egress listener $gw:$egress"
calls --until "AliveService/Check -> alive-1" alive user alive user
echo "2. the access logs on the sidecars' stdout (Envoy's format)"
sleep 0.3
access_log gateway 2
access_log alive-1 1
access_log user-v1 1
echo "3. a service no route names: legate's gRPC local reply (HTTP 200, grpc-status 12)"
calls unknown
sleep 0.3
access_log gateway 1
echo "4. the ConfigMap is updated (UserService moves to user v2): the kubelet's ..data swap"
kubelet_write gateway-update.yaml
ls -la "$cm" | awk 'NR>1 {print "  " $1, $9, $10, $11}'
calls --until "UserService/Get(ada) -> user-v2" user alive
curl -s "http://$gw:$gw_admin/reloads" | python3 -c '
import json, sys
r = json.load(sys.stdin)["reloads"][0]
print("  last reload:", r["outcome"], ", ".join(f.split("/")[-1] for f in r["files"]))'
echo "5. the alive application stops: its sidecar answers for it, and the gateway passes it on"
kill "${pids[0]}"
calls --until "AliveService/Check -> UNAVAILABLE: upstream connect error or disconnect/reset before headers. reset reason: remote connection failure" alive
sleep 0.3
access_log alive-1 1
echo "sandbox OK"
