#!/usr/bin/env python3
"""Active health checking's CPU cost: one cluster of --hosts STATIC hosts checked over HTTP
every second.

The hosts are 127.0.0.1 on --hosts ports picked free by the kernel, served by --servers
Python asyncio processes (this script with --serve) that answer every request with an empty
200 on kept-alive connections. The proxy gets a bootstrap with an admin listener and one
cluster of those hosts with an `http_health_check` on /healthz, `interval` 1s,
`no_traffic_interval` 1s (Envoy's default of 60s would apply to a cluster without traffic);
after all hosts are healthy and a --warmup, its utime+stime (/proc/<pid>/stat) over a
--window is reported as a percentage of one core, with the checks made in the window
(`cluster.hc.health_check.attempt`) as a sanity check. Issue 14's budget: under 2% of a core
for 1,000 hosts.

    benches/hc_cpu.py [--bin target/release/legate] [--hosts 1000] [--window 30]

With --bin pointing at Envoy (a name containing "envoy"), it runs Envoy the same way
(--concurrency 1, a random --base-id) for comparison. Every process it starts is stopped by
its PID; every wait is bounded; it only talks to 127.0.0.1. Resolution: 10 ms of CPU
(CLK_TCK), 0.03% of a core over 30 s; other work on the machine adds noise to the servers'
answers but not to the proxy's own CPU time.
"""
import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
_started = []


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# --- the upstream: --serve N answers on N ports and prints them as one JSON line ---

async def answer(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if not head:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def serve(n):
    servers = [await asyncio.start_server(answer, "127.0.0.1", 0, backlog=64) for _ in range(n)]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps(ports), flush=True)
    # Bounded: the parent stops this process by PID long before.
    await asyncio.sleep(3600)


# --- the measurement ---

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(argv, **kw):
    p = subprocess.Popen(argv, preexec_fn=raise_nofile, **kw)
    _started.append(p)
    return p


def stop_all():
    for p in _started:
        if p.poll() is None:
            p.terminate()
    for p in _started:
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def config(admin, ports):
    hosts = [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}} for p in ports]
    return json.dumps({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {"clusters": [{
            "name": "hc", "type": "STATIC", "connect_timeout": "1s",
            "load_assignment": {"cluster_name": "hc", "endpoints": [{"lb_endpoints": hosts}]},
            "health_checks": [{
                "timeout": "1s", "interval": "1s", "no_traffic_interval": "1s",
                "unhealthy_threshold": 3, "healthy_threshold": 1,
                "http_health_check": {"path": "/healthz"},
            }],
        }]},
    })


def stats(admin):
    with urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin, timeout=5) as r:
        out = {}
        for line in r.read().decode().splitlines():
            name, _, value = line.partition(": ")
            if value.strip().lstrip("-").isdigit():
                out[name] = int(value)
        return out


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--bin", default="target/release/legate")
    a.add_argument("--hosts", type=int, default=1000)
    a.add_argument("--servers", type=int, default=2)
    a.add_argument("--warmup", type=float, default=5)
    a.add_argument("--window", type=float, default=30)
    a.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = a.parse_args()
    if args.serve:
        raise_nofile()
        asyncio.run(serve(args.serve))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        run(args)
    finally:
        stop_all()


def run(args):
    ports = []
    per = -(-args.hosts // args.servers)
    for i in range(args.servers):
        n = min(per, args.hosts - i * per)
        p = spawn([sys.executable, os.path.abspath(__file__), "--serve", str(n)], stdout=subprocess.PIPE, text=True)
        ports += json.loads(p.stdout.readline())
    log("%d upstream ports on %d servers" % (len(ports), args.servers))
    admin = free_port()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "hc.json")
        with open(path, "w") as f:
            f.write(config(admin, ports))
        argv = [args.bin, "-c", path, "--concurrency", "1", "--disable-hot-restart"]
        if "envoy" in os.path.basename(args.bin):
            argv += ["--base-id", str(random.randint(1000, 60000))]
        proxy = spawn(argv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "proxy.log"), "w"))
        healthy_at = None
        deadline = time.time() + 60
        while time.time() < deadline:
            if proxy.poll() is not None:
                sys.exit("the proxy exited: " + open(os.path.join(d, "proxy.log")).read()[-2000:])
            try:
                if stats(admin).get("cluster.hc.health_check.healthy") == len(ports):
                    healthy_at = time.time()
                    break
            except OSError:
                pass
            time.sleep(0.5)
        if healthy_at is None:
            sys.exit("not all %d hosts became healthy within 60 s" % len(ports))
        log("all hosts healthy; warm-up %.0f s" % args.warmup)
        time.sleep(args.warmup)
        load0 = os.getloadavg()[0]
        s0, c0, t0 = stats(admin), cpu_seconds(proxy.pid), time.monotonic()
        time.sleep(args.window)
        s1, c1, t1 = stats(admin), cpu_seconds(proxy.pid), time.monotonic()
        load1 = os.getloadavg()[0]
    key = "cluster.hc.health_check.attempt"
    checks = s1.get(key, 0) - s0.get(key, 0)
    fails = s1.get("cluster.hc.health_check.failure", 0) - s0.get("cluster.hc.health_check.failure", 0)
    pct = 100 * (c1 - c0) / (t1 - t0)
    print("%s: %d hosts, %d checks in %.1f s (%.0f/s, %d failed), CPU %.2f s = %.2f%% of a core "
          "(load average %.2f -> %.2f on %d cores)"
          % (os.path.basename(args.bin), len(ports), checks, t1 - t0, checks / (t1 - t0), fails, c1 - c0, pct,
             load0, load1, os.cpu_count()))


if __name__ == "__main__":
    main()
