#!/usr/bin/env bash
# Runs run.sh with $LEGATE_BIN and checks what it printed; exits non-zero on any mismatch.
# About 20 s (installs grpcio and grpcio-tools with pip --quiet first if they are missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${LEGATE_BIN:-$here/../../target/release/legate}
python3 -c 'import grpc, grpc_tools' 2>/dev/null || python3 -m pip install --quiet grpcio grpcio-tools
for cfg in "$here"/*.yaml; do
  "$bin" --mode validate -c "$cfg" >/dev/null
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
rc=0
timeout 120 bash "$here/run.sh" "$bin" > "$out" 2>&1 || rc=$?
cat "$out"
[ "$rc" = 0 ] || { echo "grpc-sidecar: run.sh exited $rc"; exit 1; }
python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
def step(n):
    m = re.search(rf"^{n}\. .*?(?=^{n + 1}\. |^sandbox OK)", text, re.S | re.M)
    return m.group(0) if m else ""
# Envoy's default access-log line: [start] "METHOD PATH PROTO" code flags rx tx duration ...
line = r'\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "POST %s HTTP/2" %s %s \d+ \d+ \d+ [-\d]+ "-" "grpc-python/[^"]*" "[0-9a-f-]{36}" "[^"]+" "%s"'
s1, s2, s3, s4, s5 = (step(n) for n in range(1, 6))
need(s1.count("AliveService/Check -> alive-1") == 2 and s1.count("UserService/Get(ada) -> user-v1") == 2,
     "1: both services answer through the egress listener")
need(re.search(r"\[gateway\] " + line % ("/gateway.AliveService/Check", 200, "-", r"127\.0\.0\.2:\d+"), s2),
     "2: the gateway logs AliveService to the alive pod")
need(re.search(r"\[gateway\] " + line % ("/gateway.UserService/Get", 200, "-", r"127\.0\.0\.3:\d+"), s2),
     "2: the gateway logs UserService to the user pod")
need(re.search(r"\[alive-1\] " + line % ("/gateway.AliveService/Check", 200, "-", r"127\.0\.0\.2:\d+"), s2),
     "2: the alive sidecar logs the call to its application")
need(re.search(r"\[user-v1\] " + line % ("/gateway.UserService/Get", 200, "-", r"127\.0\.0\.3:\d+"), s2),
     "2: the user sidecar logs the call to its application")
need("OrderService/List -> UNIMPLEMENTED" in s3, "3: an unrouted gRPC service is UNIMPLEMENTED (grpc-status 12)")
need(re.search(r"\[gateway\] " + line % ("/gateway.OrderService/List", 200, "NR", "-"), s3), "3: logged 200 NR")
need(re.search(r"^  drwx\S* \.\.\d{4}_\d\d_\d\d_\d\d_\d\d_\d\d\.\d+ *$", s4, re.M), "4: a timestamped ConfigMap folder")
need(re.search(r"^  l\S* \.\.data -> \.\.\d{4}_\d\d_\d\d_", s4, re.M), "4: ..data links to it")
need(re.search(r"^  l\S* envoy\.yaml -> \.\.data/envoy\.yaml", s4, re.M), "4: the config file is a symlink through ..data")
need("UserService/Get(ada) -> user-v2" in s4 and "AliveService/Check -> alive-1" in s4, "4: traffic follows the update")
need("last reload: applied envoy.yaml" in s4, "4: the reload applied")
need("AliveService/Check -> UNAVAILABLE: upstream connect error or disconnect/reset before headers. reset reason: remote connection failure" in s5,
     "5: the sidecar's gRPC local reply reaches the gateway as UNAVAILABLE")
need(re.search(r"\[alive-1\] " + line % ("/gateway.AliveService/Check", 200, "UF", r"127\.0\.0\.2:\d+"), s5), "5: logged 200 UF")
need(text.rstrip().endswith("sandbox OK"), "ends with sandbox OK")
if problems:
    print("grpc-sidecar: MISMATCH:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("grpc-sidecar: all checks passed")
PY
