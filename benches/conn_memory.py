#!/usr/bin/env python3
"""Memory per idle keep-alive connection, and whether it is given back when they close.

Starts one proxy (legate or Envoy) on loopback in front of a small keep-alive upstream, then, in
waves: opens N client connections, sends one proxied request on each (one at a time, so the
upstream pool stays at one connection and only downstream state grows), keeps them all open and
idle, samples RSS, closes them all and samples RSS again after a settle time. Prints one line per
wave and a summary: kB per idle connection (RSS with N open minus RSS before, over N) and how far
RSS is above the idle figure after the connections closed.

    python3 benches/conn_memory.py --proxy target/release/legate --conns 2000 --waves 3
    python3 benches/conn_memory.py --proxy /path/to/envoy --envoy --conns 2000 --waves 3

Bounded: every connect, request and wait has a timeout; the proxy and the upstream are stopped
on exit.
"""

import argparse
import http.server
import os
import resource
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

CONFIG = """
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: up }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: up
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: up
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {up_port} }} }} }}
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin_port} }} }}
"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"x" * 128
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Upstream(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 4096


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def wait_port(port, deadline):
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


REQUEST = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def request(sock):
    sock.sendall(REQUEST)
    read_answer(sock)


def read_answer(sock):
    data = b""
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 128:
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("closed")
        data += chunk
    if not data.startswith(b"HTTP/1.1 200"):
        raise OSError(data[:60])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--envoy", action="store_true", help="the proxy is Envoy (adds its flags)")
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--waves", type=int, default=3)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after closing before sampling")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds the connections stay idle before sampling")
    ap.add_argument("--cpu", default="0", help="taskset CPU list for the proxy ('' for none)")
    ap.add_argument("--parallel", action="store_true",
                    help="send the requests 256 at a time before reading their answers (the upstream "
                         "pool then grows to 256 connections, as under a burst)")
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.conns + 1000)), hard))

    up = Upstream(("127.0.0.1", 0), Handler)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    port, admin_port = free_port(), free_port()
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "cfg.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(port=port, up_port=up.server_address[1], admin_port=admin_port))
    cmd = [args.proxy, "-c", cfg, "--concurrency", "1"]
    if args.envoy:
        cmd += ["--disable-hot-restart", "--base-id", str(os.getpid()), "-l", "error"]
    if args.cpu:
        cmd = ["taskset", "-c", args.cpu] + cmd
    proxy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "w"))
    try:
        if not wait_port(port, time.monotonic() + 10):
            sys.exit("proxy did not start")
        warm = socket.create_connection(("127.0.0.1", port), timeout=5)
        for _ in range(100):
            request(warm)
        warm.close()
        time.sleep(1)
        idle = rss_kb(proxy.pid)
        print(f"idle RSS {idle / 1024:.1f} MiB")
        per_conn, after = [], []
        for wave in range(1, args.waves + 1):
            before = rss_kb(proxy.pid)
            socks = []
            for _ in range(args.conns):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.settimeout(10)
                if args.parallel:
                    s.sendall(REQUEST)
                else:
                    request(s)
                socks.append(s)
                if args.parallel and len(socks) % 256 == 0:
                    for s in socks[-256:]:
                        read_answer(s)
            if args.parallel:
                for s in socks[len(socks) - len(socks) % 256:]:
                    read_answer(s)
            time.sleep(args.hold)
            open_rss = rss_kb(proxy.pid)
            for s in socks:
                s.close()
            time.sleep(args.settle)
            closed = rss_kb(proxy.pid)
            kb = (open_rss - before) / args.conns
            per_conn.append(kb)
            after.append(closed)
            print(f"wave {wave}: before {before / 1024:.1f} MiB, {args.conns} idle open {open_rss / 1024:.1f} MiB "
                  f"({kb:.1f} kB/conn), {args.settle:.0f}s after close {closed / 1024:.1f} MiB")
        stats = urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/stats", timeout=5).read().decode()
        cx = [l for l in stats.splitlines() if l.startswith("cluster.up.upstream_cx_total")
              or l.startswith("cluster.up.upstream_cx_active")]
        print("upstream connections: " + ", ".join(cx))
        print(f"summary: {min(per_conn):.1f}-{max(per_conn):.1f} kB per idle connection; "
              f"after the last wave closed RSS is {after[-1] / idle:.2f}x the idle {idle / 1024:.1f} MiB")
    finally:
        proxy.send_signal(signal.SIGTERM)
        try:
            proxy.wait(5)
        except subprocess.TimeoutExpired:
            proxy.kill()
        up.shutdown()


if __name__ == "__main__":
    main()
