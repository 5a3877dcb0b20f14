#!/usr/bin/env python3
"""RSS of legate over many hot reloads of a 10,000-route RDS (or 10,000-endpoint EDS) file.

Starts the release binary with the layout of the `scale` suite of ../shared/bench (bootstrap
with file-based LDS and CDS; the listener takes RDS from a file; clusters a and b take EDS from
files), then makes --reloads one-line changes by atomic rename (temp file in the same directory,
rename(2) over the target), each time waiting until the admin's update_attempt counter for
that file moves (every wait bounded). It records VmRSS (/proc/PID/status) after the reloads
named by --at, and the reloader's own duration of the last reloads (admin /reloads).

    cargo build --release
    python3 benches/rss_reloads.py [--bin target/release/legate] [--kind routes|endpoints]
                                   [--n 10000] [--reloads 1000] [--at 10,100,500,1000]

Standard library only. Only 127.0.0.1, ports picked free; the process it started is stopped
by its PID (SIGTERM, then SIGKILL after 10 s). Prints a markdown table and writes nothing
outside a fresh temporary directory (removed at the end unless --keep).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pcs(path):
    return f"{{resource_api_version: V3, path_config_source: {{path: {path}}}}}"


def bootstrap(d, admin_port):
    return f"""node: {{id: rss, cluster: rss}}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
dynamic_resources:
  cds_config: {pcs(d + '/cds.yaml')}
  lds_config: {pcs(d + '/lds.yaml')}
"""


def lds(d, port):
    return f"""resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: main
  address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": {HCM}
        stat_prefix: ingress
        rds:
          route_config_name: routes
          config_source: {pcs(d + '/rds.yaml')}
        http_filters:
        - name: envoy.filters.http.router
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""


def cds(d):
    out = ["resources:"]
    for c in ("a", "b"):
        out.append(f"""- "@type": type.googleapis.com/envoy.config.cluster.v3.Cluster
  name: {c}
  type: EDS
  connect_timeout: 1s
  eds_cluster_config:
    eds_config: {pcs(f'{d}/eds_{c}.yaml')}""")
    return "\n".join(out) + "\n"


def eds(cluster, port, extra_p1=0):
    s = f"""resources:
- "@type": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment
  cluster_name: {cluster}
  endpoints:
  - priority: 0
    lb_endpoints:
    - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}
"""
    if extra_p1:
        lines = ["  - priority: 1", "    lb_endpoints:"]
        for i in range(extra_p1):
            lines.append(f"    - endpoint: {{address: {{socket_address: {{address: 127.2.{i // 250}.{i % 250 + 1}, "
                         f"port_value: 18081}}}}}}")
        s += "\n".join(lines) + "\n"
    return s


def rds(n, last_cluster):
    s = """resources:
- "@type": type.googleapis.com/envoy.config.route.v3.RouteConfiguration
  name: routes
  virtual_hosts:
  - name: all
    domains: ["*"]
    routes:
"""
    lines = []
    for i in range(n):
        cl = last_cluster if i == n - 1 else "a"
        lines.append(f"    - match: {{prefix: \"/r/{i}/\"}}\n      route: {{cluster: {cl}}}")
    return s + "\n".join(lines) + "\n"


_seq = [0]


def atomic_write(path, text):
    _seq[0] += 1
    tmp = os.path.join(os.path.dirname(path), f".tmp.{os.path.basename(path)}.{_seq[0]}")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.read().decode()


def counter(admin, name):
    try:
        text = get(admin, f"/stats?filter=^{name}$")
    except OSError:
        return None
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        if k == name:
            return int(v)
    return None


def wait_for(what, cond, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"legate exited ({proc.returncode}) while waiting for {what}")
        v = cond()
        if v:
            return v
        time.sleep(0.002)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--bin", default=os.path.join(here, "..", "target", "release", "legate"))
    ap.add_argument("--kind", choices=["routes", "endpoints"], default="routes")
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--reloads", type=int, default=1000)
    ap.add_argument("--at", default="10,100,500,1000", help="reload counts after which RSS is recorded")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    a = ap.parse_args()
    at = sorted({int(x) for x in a.at.split(",") if x})

    d = tempfile.mkdtemp(prefix="legate-rss.")
    admin, port = free_port(), free_port()
    n_routes = a.n if a.kind == "routes" else 0
    n_p1 = a.n - 1 if a.kind == "endpoints" else 0
    atomic_write(f"{d}/eds_a.yaml", eds("a", 18081, n_p1))
    atomic_write(f"{d}/eds_b.yaml", eds("b", 18082))
    atomic_write(f"{d}/rds.yaml", rds(max(n_routes, 1), "a"))
    atomic_write(f"{d}/cds.yaml", cds(d))
    atomic_write(f"{d}/lds.yaml", lds(d, port))
    with open(f"{d}/bootstrap.yaml", "w") as f:
        f.write(bootstrap(d, admin))
    if a.kind == "routes":
        stat, target = "http.ingress.rds.routes.update_attempt", f"{d}/rds.yaml"
        change = lambda i: rds(n_routes, "b" if i % 2 else "a")
    else:
        stat, target = "cluster.a.update_attempt", f"{d}/eds_a.yaml"
        change = lambda i: eds("a", 18083 if i % 2 else 18081, n_p1)

    log = open(f"{d}/legate.log", "w")
    proc = subprocess.Popen([a.bin, "-c", f"{d}/bootstrap.yaml", "--concurrency", "1", "--log-level", "warn"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    rows = []
    try:
        wait_for("startup", lambda: (counter(admin, stat) or 0) >= 1, 120, proc)
        rows.append((0, rss_kib(proc.pid)))
        t0 = time.monotonic()
        for i in range(1, a.reloads + 1):
            before = counter(admin, stat) or 0
            atomic_write(target, change(i))
            wait_for(f"reload {i}", lambda: (counter(admin, stat) or 0) > before, 30, proc)
            if i in at:
                rows.append((i, rss_kib(proc.pid)))
                print(f"reload {i}: VmRSS {rows[-1][1]} KiB", file=sys.stderr, flush=True)
        wall = time.monotonic() - t0
        success = counter(admin, stat.replace("update_attempt", "update_success"))
        durations = [r["duration_ms"] for r in json.loads(get(admin, "/reloads"))["reloads"]]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)
        else:
            print(f"kept {d}", file=sys.stderr)

    durations.sort()
    print(f"\n## RSS over {a.reloads} one-line reloads ({a.kind}, n={a.n}, {a.bin})\n")
    print("| after reload | VmRSS KiB | vs reload 10 |\n|---|---|---|")
    ref = dict(rows).get(10, rows[0][1])
    for i, kib in rows:
        print(f"| {i} | {kib} | {100.0 * (kib - ref) / ref:+.1f}% |")
    print(f"\nupdate_success {success} of {a.reloads + 1} attempts; {a.reloads / wall:.1f} reloads/s; "
          f"reloader time of the last {len(durations)}: median {durations[len(durations) // 2]:.1f} ms, "
          f"max {durations[-1]:.1f} ms")


if __name__ == "__main__":
    main()
