#!/usr/bin/env bash
# Runs run.sh (both configs) with $LEGATE_BIN and checks what it printed; exits non-zero on
# any mismatch. About 20 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${LEGATE_BIN:-$here/../../target/release/legate}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for cfg in "$here"/envoy-v2.yaml "$here"/envoy-v3.yaml; do
  "$bin" --mode validate -c "$cfg" >/dev/null
done
rc=0
timeout 120 bash "$here/run.sh" "$bin" both > "$out" 2>&1 || rc=$?
cat "$out"
[ "$rc" = 0 ] || { echo "eds-rest: run.sh exited $rc"; exit 1; }
python3 - "$out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)
sections = dict(re.findall(r"^=== (v[23]):.*?\n(.*?)(?=^=== |^sandbox OK)", text, re.S | re.M))
need(set(sections) == {"v2", "v3"}, "both walks ran")
types = {"v2": "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment",
         "v3": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"}
for v, s in sections.items():
    need("  -> no healthy upstream" in s, f"{v}: 503 no healthy upstream before any endpoint")
    for i in range(1, 6):
        need(re.search(rf"^\s+4 upstream {i}$", s, re.M), f"{v}: 4 of 20 requests on upstream {i}")
    need(s.count("  -> upstream 1") == 3, f"{v}: upstream 1 after adding it, after removing the others, and with the server gone")
    need(f"first poll: POST /{v}/discovery:endpoints type_url={types[v]} " in s, f"{v}: polls /{v}/discovery:endpoints with the {v} type URL")
    polls = re.search(r'polls: \{"/(v[23])/discovery:endpoints": (\d+)\}', s)
    need(polls and polls.group(1) == v and int(polls.group(2)) >= 3, f"{v}: only /{v} polls, at least 3")
    total = re.search(r"cluster\.eds_cluster\.upstream_rq_total: (\d+)", s)
    ok200 = re.search(r"cluster\.eds_cluster\.upstream_rq_200: (\d+)", s)
    internal = re.search(r"cluster\.eds_cluster\.internal\.upstream_rq_200: (\d+)", s)
    need(total and int(total.group(1)) >= 3, f"{v}: polls counted on the management cluster")
    need(ok200 and internal and ok200.group(1) == internal.group(1), f"{v}: internal.upstream_rq_200 as Envoy counts its own requests")
    attempts = re.search(r"cluster\.targetCluster\.update_attempt: (\d+)", s)
    success = re.search(r"cluster\.targetCluster\.update_success: (\d+)", s)
    need(attempts and success and int(success.group(1)) >= 3, f"{v}: update_attempt / update_success")
    need(re.search(r'cluster\.targetCluster\.version_text: "3"', s), f"{v}: version_text is the server's last version")
    need(re.search(r"^    myservice: 127\.0\.0\.1:\d+$", s, re.M), f"{v}: /config_dump?include_eds shows the endpoint")
    fail = re.search(r"update_failure: (\d+) -> (\d+)", s)
    need(fail and int(fail.group(2)) > int(fail.group(1)), f"{v}: a poll failed once the server was gone")
need(text.rstrip().endswith("sandbox OK"), "ends with sandbox OK")
if problems:
    print("eds-rest: MISMATCH:\n  " + "\n  ".join(problems))
    sys.exit(1)
print("eds-rest: all checks passed")
PY
