# Helpers the examples' run.sh scripts source: start processes and stop them on exit (by
# PID, only ours), render a config with other addresses and ports, wait with a bound.

pids=()
work=$(mktemp -d)

# stop PID...: TERM, a bounded wait for them to go, then KILL what is left (only our PIDs).
stop() {
  local p running
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 1 50); do
    running=0; for p in "$@"; do kill -0 "$p" 2>/dev/null && running=1; done
    [ "$running" = 0 ] && break; sleep 0.1
  done
  for p in "$@"; do kill -9 "$p" 2>/dev/null || true; done
}

cleanup() {
  [ "${#pids[@]}" -gt 0 ] && stop "${pids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT

# start LOGNAME CMD...: runs CMD in the background, its output in $work/LOGNAME.log.
start() {
  local log=$1; shift
  "$@" >"$work/$log.log" 2>&1 &
  pids+=($!)
}

# render SRC DEST NET [FROM=TO ...]: copies SRC to DEST with every 127.0.0.N address moved to
# NET.N and each `port_value: FROM` turned into TO (all at once, so a new port never matches
# another rule). An address pair `127.0.0.11=127.0.0.12` (before NET applies) moves one address.
render() {
  python3 - "$@" <<'PY'
import re, sys
src, dest, net, *rules = sys.argv[1:]
ports, addrs = {}, {}
for r in rules:
    a, b = r.split("=")
    (addrs if "." in a else ports)[a] = b
text = open(src).read()
text = re.sub(r"127\.0\.0\.\d+", lambda m: addrs.get(m.group(0), m.group(0)), text)
text = re.sub(r"127\.0\.0\.(\d+)", lambda m: f"{net}.{m.group(1)}", text)
text = re.sub(r"port_value: (\d+)", lambda m: "port_value: " + ports.get(m.group(1), m.group(1)), text)
open(dest, "w").write(text)
PY
}

# wait_until DESCRIPTION CMD...: retries CMD every 0.1 s for up to 10 s.
wait_until() {
  local what=$1; shift
  for _ in $(seq 1 100); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "  !! timed out waiting for $what"; return 1
}
