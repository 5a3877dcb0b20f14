#!/usr/bin/env python3
"""Routes + access log vs nginx: does legate's CPU ratio to nginx hold with 100 routes and a log?

Issue 15's rule: a config with an access log and a route table of 100 routes must keep its
ratio to nginx's equivalent within 10%. The method is the `load` suite of the team's bench
harness (bench.py): the proxy pinned to CPU 0, wrk and an nginx upstream (1 worker, 128-byte
bodies, keep-alive) pinned to CPU 1; after a 2 s warm-up, `wrk -t1 -c50 -d10s`, and the proxy's
utime+stime (all threads, from /proc/PID/stat over its process tree: nginx's master and worker)
before and after, divided by the requests wrk made. Four runs per round, the order reversed
each odd round:

  nginx  plain       bench.py's nginx-proxy.conf (1 worker, upstream keep-alive, access_log off)
  nginx  routes+log  the same with 100 prefix locations /svc000/ .. /svc099/ (each proxy_pass to
                     the upstream) before `location /`, and `access_log <file> combined`
  legate plain       bench.py's static config (one route, one cluster, no access log)
  legate routes+log  100 prefix routes /svc000/ .. /svc099/ to the cluster, then `/`, in one
                     virtual host, and an `envoy.access_loggers.file` log (Envoy's default format)

wrk requests /svc099/x in every run: the last of the 100 routes in routes+log, and the plain
configs route everything. A routes+log run whose log file got no lines during the measurement
is an error, and so is any non-2xx answer or socket error (a wrong route would show as one). Each round prints
the four CPU us/request figures, the legate/nginx ratio for plain and for routes+log, and the
change (routes+log ratio / plain ratio); then the medians, and PASS when the median change is
<= 1.10, else FAIL (exit code 1).

    benches/routes_log_ratio.py --bin target/release/legate [--rounds 3] [--duration 10]

Note: nginx's default access_log (no buffer=) makes one write(2) per request, while Envoy's
file logger (and legate's) buffers and flushes in the background; that is each proxy's default,
so it is what the rule compares. --nginx-log-buffer 64k gives nginx a buffer (flush=1s) to see
how much of the figure that accounts for.

Every process it starts is tracked by PID and stopped by PID (SIGTERM, then SIGKILL for
leftovers in the session it created); every run is bounded (wrk -d plus a timeout); it only
talks to 127.0.0.1, on ports it picks free at startup. Resolution: 10 ms of CPU (CLK_TCK),
0.1% of a 10 s run; other work on the machine adds noise, so read several rounds.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

# The load method's processes, CPU accounting, upstream and wrk runs are access_log_overhead.py's.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from access_log_overhead import (  # noqa: E402
    count_lines, cpu_seconds, free_port, log, nginx_conf, run_wrk, spawn, stop, wait_ready)

N_ROUTES = 100
PATH = f"/svc{N_ROUTES - 1:03d}/x"  # matches only the last of the 100 prefixes
BUDGET = 1.10
RUNS = [("nginx", "plain"), ("nginx", "routes+log"), ("legate", "plain"), ("legate", "routes+log")]

NGINX_PROXY_LOCATION = """    location {prefix} {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
"""


def nginx_proxy_conf(d, port, upstream_port, log_path, log_buffer):
    """bench.py's nginx-proxy.conf; with log_path, 100 prefix locations before `/` and a log."""
    access_log, locations = "access_log off;", ""
    if log_path:
        buf = f" buffer={log_buffer} flush=1s" if log_buffer else ""
        access_log = f"access_log {log_path} combined{buf};"
        locations = "".join(NGINX_PROXY_LOCATION.format(prefix=f"/svc{i:03d}/") for i in range(N_ROUTES))
    return f"""# routes_log_ratio.py: bench.py's nginx reverse proxy, 1 worker, upstream keep-alive{
    f' + {N_ROUTES} prefix locations + a combined-format access log' if log_path else ''}
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  {access_log}
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream up {{
    server 127.0.0.1:{upstream_port};
    keepalive 256;
    keepalive_requests 100000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
{locations}{NGINX_PROXY_LOCATION.format(prefix="/")}  }}
}}
"""


def legate_yaml(port, upstream_port, admin_port, log_path):
    """bench.py's static config; with log_path, 100 prefix routes before `/` and a file log."""
    access_log, routes = "", ""
    if log_path:
        access_log = f"""
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: {log_path}"""
        routes = "".join(f"""
              - match: {{prefix: "/svc{i:03d}/"}}
                route: {{cluster: upstream}}""" for i in range(N_ROUTES))
    return f"""# routes_log_ratio.py: bench.py's static config{
    f' + {N_ROUTES} prefix routes + a default-format file access log' if log_path else ''}
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin_port}}}}}
static_resources:
  listeners:
  - name: main
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress{access_log}
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:{routes}
              - match: {{prefix: "/"}}
                route: {{cluster: upstream}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {upstream_port}}}}}}}
"""


def measure(a, workdir, upstream_port, proxy, variant, rnd):
    d = os.path.join(workdir, f"r{rnd}-{proxy}-{variant.replace('+', '-')}")
    os.makedirs(d, exist_ok=True)
    log_path = os.path.join(d, "access.log") if variant == "routes+log" else None
    port = free_port()
    if proxy == "nginx":
        cfg = os.path.join(d, "nginx.conf")
        open(cfg, "w").write(nginx_proxy_conf(d, port, upstream_port, log_path, a.nginx_log_buffer))
        cmd = ["nginx", "-p", d, "-c", cfg, "-e", os.path.join(d, "error.log")]
    else:
        cfg = os.path.join(d, "legate.yaml")
        open(cfg, "w").write(legate_yaml(port, upstream_port, free_port(), log_path))
        cmd = [a.bin, "-c", cfg, "--concurrency", "1", "--disable-hot-restart", "--log-level", "warn"]
    p = spawn(cmd, a.proxy_cpus, os.path.join(d, "proxy.log"))
    try:
        wait_ready(port, p)
        time.sleep(1.0)
        url = f"http://127.0.0.1:{port}{PATH}"
        run_wrk(a, url, a.warmup)
        lines_before = count_lines(log_path)
        c0 = cpu_seconds(p.pid)
        requests, errors = run_wrk(a, url, a.duration)
        c1 = cpu_seconds(p.pid)
    finally:
        # stopping flushes buffered log lines (legate's file logger, nginx's buffer=)
        stop(p)
    r = {"requests": requests, "errors": errors, "cpu_s": c1 - c0,
         "us_per_req": (c1 - c0) / max(requests, 1) * 1e6, "rps": requests / a.duration}
    what = f"round {rnd} {proxy} {variant}"
    if requests == 0:
        raise RuntimeError(f"{what}: wrk made no requests; see {d}")
    if errors:
        raise RuntimeError(f"{what}: {errors} non-2xx answers or socket errors for {PATH} (wrong route?); see {d}")
    if log_path:
        # wrk's count excludes requests cut off at its deadline, which may still be logged
        r["logged"] = count_lines(log_path) - lines_before
        if r["logged"] <= 0:
            raise RuntimeError(f"{what}: the access log {log_path} got no lines during the run")
        os.remove(log_path)
    return r


def ratio(x, y):
    return x / y if y else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", required=True, help="the legate binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10, help="wrk -d seconds (measured)")
    ap.add_argument("--warmup", type=int, default=2, help="wrk -d seconds (discarded)")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--proxy-cpus", default="0")
    ap.add_argument("--load-cpus", default="1")
    ap.add_argument("--nginx-log-buffer", help="e.g. 64k: nginx's access_log buffer= (with flush=1s); "
                    "default: none, nginx's default (one write per request)")
    ap.add_argument("--workdir", help="default: a fresh /tmp/rlog-bench.XXXX")
    a = ap.parse_args()
    a.bin = os.path.abspath(a.bin)
    workdir = a.workdir or tempfile.mkdtemp(prefix="rlog-bench.", dir="/tmp")
    os.makedirs(workdir, exist_ok=True)

    up_dir = os.path.join(workdir, "upstream")
    os.makedirs(up_dir, exist_ok=True)
    upstream_port = free_port()
    conf = os.path.join(up_dir, "nginx.conf")
    open(conf, "w").write(nginx_conf(up_dir, upstream_port))
    up = spawn(["nginx", "-p", up_dir, "-c", conf, "-e", os.path.join(up_dir, "upstream_error.log")],
               a.load_cpus, os.path.join(up_dir, "stdout.log"))
    rounds = []
    try:
        wait_ready(upstream_port, up, timeout=10)
        for rnd in range(a.rounds):
            order = RUNS if rnd % 2 == 0 else list(reversed(RUNS))
            res = {}
            for proxy, variant in order:
                res[proxy, variant] = r = measure(a, workdir, upstream_port, proxy, variant, rnd)
                log(f"round {rnd} {proxy} {variant}: {r['us_per_req']:.2f} us/req ({r['rps']:.0f} rps, "
                    f"errors {r['errors']}"
                    + (f", {r['logged']} lines for {r['requests']} requests" if "logged" in r else "") + ")")
                time.sleep(1.0)
            us = {k: v["us_per_req"] for k, v in res.items()}
            plain = ratio(us["legate", "plain"], us["nginx", "plain"])
            rl = ratio(us["legate", "routes+log"], us["nginx", "routes+log"])
            rounds.append((us, plain, rl, ratio(rl, plain)))
            log(f"round {rnd}: legate/nginx plain {plain:.3f}, routes+log {rl:.3f}, change {rl / plain:.3f}")
    finally:
        stop(up)

    print(f"\n## routes + access log vs nginx: proxy CPU us/request (wrk -t1 -c{a.conns} -d{a.duration}s "
          f"{PATH}, proxy on CPU {a.proxy_cpus}{', nginx log buffer=' + a.nginx_log_buffer if a.nginx_log_buffer else ''})\n")
    print("| round | nginx plain | nginx routes+log | legate plain | legate routes+log "
          "| ratio plain | ratio routes+log | change |")
    print("|---|---|---|---|---|---|---|---|")

    def row(name, us, plain, rl, change):
        print(f"| {name} | " + " | ".join(f"{us[k]:.2f}" for k in RUNS)
              + f" | {plain:.3f} | {rl:.3f} | {change:.3f} |")

    for i, (us, plain, rl, change) in enumerate(rounds):
        row(str(i), us, plain, rl, change)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    row("median", {k: med([r[0][k] for r in rounds]) for k in RUNS},
        med([r[1] for r in rounds]), med([r[2] for r in rounds]), med([r[3] for r in rounds]))
    changes = [r[3] for r in rounds]
    change = med(changes)
    verdict = "PASS" if change <= BUDGET else "FAIL"
    print(f"\nmedian change of the legate/nginx ratio (routes+log / plain) {change:.3f} "
          f"(min {min(changes):.3f}, max {max(changes):.3f}, n={len(changes)}); budget <= {BUDGET:.2f}: {verdict}")
    print(f"work directory: {workdir}")
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
