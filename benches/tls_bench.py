#!/usr/bin/env python3
"""HTTPS at the edge: legate against Envoy 1.40, side by side in one run.

Three figures per proxy, each from the proxy's own user+sys CPU (/proc/<pid>/stat) so that they
do not depend on how fast the load generator is:

1. keep-alive HTTPS CPU per request: `wrk -t1 -c50 -d<secs>s` over TLS 1.3 connections that stay
   open (budget: legate <= 0.6x Envoy's);
2. new TLS handshakes per second per core: `wrk` with `Connection: close`, so every request is a
   new TCP connection with a full handshake (wrk keeps no session); the figure is one second
   over the CPU seconds per handshake+request (budget: legate >= Envoy's);
3. RSS with 1,000 idle TLS connections, each of which made one request, after the load phases
   (budget: legate <=
   Envoy's).

The server certificate is generated with `openssl` (RSA 2048 by default, `--key ec` for P-256).
The upstream is nginx (one worker) returning 128 bytes. The proxy is pinned to CPU 0, wrk,
nginx and the idle clients to CPU 1 (as in ../shared/bench). Contestants alternate order each
round; the table shows the median of the rounds and the ratio legate/Envoy per round.

    python3 benches/tls_bench.py --envoy /path/to/envoy --legate target/release/legate [--rounds 3]

Bounded: every process has a timeout and is stopped by PID; only 127.0.0.1 is a target.
"""
import argparse
import json
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def make_cert(d, key):
    crt, pem = os.path.join(d, "server.crt"), os.path.join(d, "server.key")
    newkey = ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(["openssl", "req", "-x509", "-nodes", "-days", "30", *newkey, "-keyout", pem, "-out", crt,
                    "-subj", "/CN=bench.test", "-addext", "subjectAltName=DNS:bench.test"],
                   check=True, capture_output=True, timeout=60)
    return crt, pem


def nginx_upstream(d, port):
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:%d; location / { return 200 "%s"; } } }
""" % (d, d, port, "u" * 128))
    return subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", conf, "-p", d],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def config(listen, admin, up, crt, pem):
    tls = {"name": "envoy.transport_sockets.tls", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        "common_tls_context": {"alpn_protocols": ["http/1.1"], "tls_certificates": [{
            "certificate_chain": {"filename": crt}, "private_key": {"filename": pem}}]}}}
    hcm = {"name": "hcm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "b",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
            {"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}
    return json.dumps({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                           "filter_chains": [{"filters": [hcm], "transport_socket": tls}]}],
            "clusters": [{"name": "up", "connect_timeout": "1s", "type": "STATIC", "load_assignment": {
                "cluster_name": "up", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": up}}}}]}]}}]}})


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
    return int(m.group(1)) if m else 0


def wrk(url, secs, close):
    argv = ["taskset", "-c", "1", "wrk", "-t1", "-c50", "-d%ds" % secs, url]
    if close:
        argv[5:5] = ["-H", "Connection: close"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 30).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m:
        sys.exit("wrk gave no count:\n" + out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(m.group(1)), int(errors.group(1)) if errors else 0


def idle_conns(port, n):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conns = []
    for _ in range(n):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="bench.test")
        s.sendall(b"GET / HTTP/1.1\r\nhost: bench.test\r\n\r\n")
        got = b""
        while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 128:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("connection closed before the answer")
            got += chunk
        conns.append(s)
    return conns


def run(name, argv, listen, secs, idle, settle):
    proc = subprocess.Popen(["taskset", "-c", "0", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen), timeout=0.5).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    sys.exit("%s did not start" % name)
                time.sleep(0.1)
        url = "https://127.0.0.1:%d/" % listen
        wrk(url, 2, False)  # warm-up
        out = {}
        for key, close in (("keepalive", False), ("handshake", True)):
            before = cpu(proc.pid)
            n, bad = wrk(url, secs, close)
            spent = cpu(proc.pid) - before
            out[key + "_us_per_req"] = spent / max(n, 1) * 1e6
            out[key + "_requests"] = n
            out[key + "_non2xx"] = bad
        out["handshakes_per_core_s"] = 1e6 / max(out["handshake_us_per_req"], 1e-9)
        time.sleep(1)
        rss0 = rss_kib(proc.pid)
        conns = idle_conns(listen, idle)
        time.sleep(settle)
        rss1 = rss_kib(proc.pid)
        for c in conns:
            c.close()
        out["rss_idle_mib"] = rss0 / 1024
        out["rss_with_idle_tls_mib"] = rss1 / 1024
        out["kib_per_idle_tls_conn"] = (rss1 - rss0) / idle
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--envoy", required=True)
    a.add_argument("--legate", required=True)
    a.add_argument("--rounds", type=int, default=3)
    a.add_argument("--secs", type=int, default=8)
    a.add_argument("--idle", type=int, default=1000)
    a.add_argument("--settle", type=float, default=3.0, help="seconds between the last idle connection and the RSS sample")
    a.add_argument("--key", choices=("rsa", "ec"), default="rsa")
    a.add_argument("--out", help="write every round's figures as JSON here")
    args = a.parse_args()
    for tool in ("wrk", "nginx", "openssl", "taskset"):
        if not shutil.which(tool):
            sys.exit("needs %s on PATH" % tool)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.idle * 2 + 256)), hard))
    load0 = os.getloadavg()[0]
    rounds = []
    with tempfile.TemporaryDirectory() as d:
        crt, pem = make_cert(d, args.key)
        up = free_port()
        nginx = nginx_upstream(d, up)
        try:
            contestants = [("envoy", args.envoy, ["--base-id", str(os.getpid() % 60000)]), ("legate", args.legate, [])]
            for r in range(args.rounds):
                order = contestants if r % 2 == 0 else contestants[::-1]
                result = {}
                for name, binary, extra in order:
                    listen, admin = free_port(), free_port()
                    path = os.path.join(d, name + ".json")
                    with open(path, "w") as f:
                        f.write(config(listen, admin, up, crt, pem))
                    argv = [binary, "-c", path, "--concurrency", "1", "--disable-hot-restart"] + extra
                    result[name] = run(name, argv, listen, args.secs, args.idle, args.settle)
                rounds.append(result)
                print("round %d: %s" % (r + 1, json.dumps(result)), file=sys.stderr)
        finally:
            nginx.terminate()
            nginx.wait(10)
    load1 = os.getloadavg()[0]
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"key": args.key, "rounds": rounds}, f, indent=1)
    figures = [("keep-alive HTTPS CPU us/request", "keepalive_us_per_req"),
               ("new TLS handshakes/s per core", "handshakes_per_core_s"),
               ("RSS after the load phases, MiB", "rss_idle_mib"),
               ("RSS with %d idle TLS conns, MiB" % args.idle, "rss_with_idle_tls_mib"),
               ("KiB per idle TLS conn", "kib_per_idle_tls_conn")]
    print("load average before %.2f after %.2f; %d rounds, %s key, medians (legate/Envoy ratio per round)"
          % (load0, load1, args.rounds, args.key))
    print("| figure | Envoy 1.40 | legate | legate/Envoy |")
    print("|---|---|---|---|")
    for label, key in figures:
        e = statistics.median(r["envoy"][key] for r in rounds)
        g = statistics.median(r["legate"][key] for r in rounds)
        ratio = statistics.median(r["legate"][key] / max(r["envoy"][key], 1e-9) for r in rounds)
        print("| %s | %.1f | %.1f | %.2fx |" % (label, e, g, ratio))


if __name__ == "__main__":
    main()
