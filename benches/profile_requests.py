#!/usr/bin/env python3
"""Instructions per proxied request, and where they go: legate under callgrind.

Timing figures move with the machine's load; instruction counts do not. This script runs one
proxy (legate, or any Envoy-compatible binary with --envoy) under `valgrind --tool=callgrind`
in front of an nginx upstream (128-byte answers, keep-alive), warms it up, zeroes the
counters, sends exactly N requests over C keep-alive connections (HTTP/1.1, one at a time per
connection, from threads), dumps the counters and prints:

- instructions (Ir) per request, over the whole process (kernel time is not counted:
  callgrind sees user space only);
- the top user-space symbols by exclusive Ir per request, and by inclusive Ir for legate's
  own functions, so that a change can be judged by counts as well as by time.

    python3 benches/profile_requests.py --bin target/release/legate [-n 20000] [-c 4] [--top 30]
    python3 benches/profile_requests.py --bin target/release/legate --config my.yaml   # your config
    python3 benches/profile_requests.py --nginx     # nginx as the proxy, the same way, to compare

With --nginx, nginx is the proxy under callgrind (bench.py's reverse-proxy config: one worker,
upstream keep-alive, no access log; run without a master process, so that callgrind follows the
process that serves), to see where the difference per request is.

With --config, the file must listen on 127.0.0.1:{port} and forward to 127.0.0.1:{up_port}
(both written as those placeholders; the script fills them in). The default config is the
load benchmark's: one route, one cluster, no access log, no filters but the router.
Bounded: every wait has a timeout; valgrind and nginx are stopped by PID.
"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = """
static_resources:
  listeners:
  - name: main
    address: { socket_address: { address: 127.0.0.1, port_value: {port} } }
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
              - match: { prefix: "/" }
                route: { cluster: up }
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
        - endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: {up_port} } } }
"""

REQUEST = b"GET /profile HTTP/1.1\r\nhost: bench.test\r\nuser-agent: profile\r\naccept: */*\r\n\r\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx(d, port):
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; pid %s/nginx.pid; error_log %s/nginx.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000000;
  server { listen 127.0.0.1:%d; location / { return 200 "%s"; } } }
""" % (d, d, port, "u" * 128))
    return subprocess.Popen(["nginx", "-c", conf, "-p", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def nginx_proxy_config(d, port, up):
    """bench.py's nginx reverse proxy, as one process (no master) for callgrind."""
    conf = os.path.join(d, "proxy.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1; daemon off; master_process off; pid %s/proxy.pid; error_log %s/proxy.err;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  upstream up { server 127.0.0.1:%d; keepalive 256; keepalive_requests 100000000; }
  server { listen 127.0.0.1:%d;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
""" % (d, d, up, port))
    return conf


def answer(sock, buf):
    """Reads one answer (content-length framed); returns what is left over."""
    while True:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", buf[:head_end])
            need = head_end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) >= need:
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise OSError("not a 200: %r" % buf[:60])
                return buf[need:]
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        buf += chunk


def client(port, n, errors):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            buf = b""
            for _ in range(n):
                s.sendall(REQUEST)
                buf = answer(s, buf)
    except OSError as e:
        errors.append(str(e))


def load(port, total, conns):
    errors, threads = [], []
    for i in range(conns):
        share = total // conns + (1 if i < total % conns else 0)
        t = threading.Thread(target=client, args=(port, share, errors))
        t.start()
        threads.append(t)
    for t in threads:
        t.join(600)
    if errors:
        sys.exit("requests failed: %s" % errors[:3])


def wait_port(port, proc, secs):
    deadline = time.time() + secs
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("the proxy exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the proxy did not listen within %d s" % secs)


def control(pid, flag):
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True, timeout=120)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--bin", help="the proxy binary (legate, or Envoy with --envoy)")
    a.add_argument("--nginx", action="store_true", help="profile nginx as the proxy instead of --bin")
    a.add_argument("--envoy", action="store_true", help="the binary is Envoy (adds its flags)")
    a.add_argument("--config", help="a config with {port} and {up_port} placeholders")
    a.add_argument("-n", type=int, default=20000, help="requests measured")
    a.add_argument("-c", type=int, default=4, help="keep-alive connections")
    a.add_argument("--top", type=int, default=30)
    args = a.parse_args()
    if not args.bin and not args.nginx:
        sys.exit("needs --bin or --nginx")
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "nginx"):
        if not shutil.which(tool):
            sys.exit("needs %s on PATH" % tool)
    with tempfile.TemporaryDirectory() as d:
        up, port = free_port(), free_port()
        ng = nginx(d, up)
        text = open(args.config).read() if args.config else CONFIG
        cfg = os.path.join(d, "cfg.yaml")
        with open(cfg, "w") as f:
            f.write(text.replace("{port}", str(port)).replace("{up_port}", str(up)))
        out = os.path.join(d, "callgrind.out")
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, "--dump-instr=no", "--compress-strings=no", "--compress-pos=no"]
        if args.nginx:
            argv += ["nginx", "-c", nginx_proxy_config(d, port, up), "-p", d]
        else:
            argv += [args.bin, "-c", cfg, "--concurrency", "1"]
        if args.envoy:
            argv += ["--disable-hot-restart", "--base-id", str(os.getpid() % 60000)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "log"), "w"))
        try:
            wait_port(port, proc, 120)
            load(port, 500, args.c)  # warm-up: pools, lazily built state
            control(proc.pid, "--zero")
            started = time.time()
            load(port, args.n, args.c)
            control(proc.pid, "--dump")
            took = time.time() - started
        finally:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
            ng.terminate()
            ng.wait(10)
        dumps = sorted(f for f in os.listdir(d) if f.startswith("callgrind.out") and f != "callgrind.out")
        if not dumps:
            sys.exit("callgrind wrote no dump")
        dump = os.path.join(d, dumps[0])
        excl = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", dump],
                              capture_output=True, text=True, timeout=300).stdout
        if os.environ.get("PROFILE_KEEP"):
            shutil.copy(dump, os.environ["PROFILE_KEEP"])
        incl = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=99.9", dump],
                              capture_output=True, text=True, timeout=300).stdout
    total = re.search(r"([\d,]+)\s+\(100\.0%\)\s+PROGRAM TOTALS", excl)
    if not total:
        sys.exit("no totals in callgrind_annotate's output")
    ir = int(total.group(1).replace(",", ""))
    shown = "nginx (proxy)" if args.nginx else args.bin
    print("%s: %d requests over %d connections in %.1f s under callgrind" % (shown, args.n, args.c, took))
    print("Ir per request: %.0f" % (ir / args.n))

    def rows(text, keep, limit):
        found = []
        for line in text.splitlines():
            m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*)", line)
            if not m or "PROGRAM TOTALS" in line:
                continue
            name = m.group(2)
            if keep(name):
                found.append((int(m.group(1).replace(",", "")), name))
            if len(found) >= limit:
                break
        return found

    def short(name):
        name = re.sub(r"^.*?:", "", name, count=1) if name.startswith("???") or "/" in name.split(":")[0] else name
        name = re.sub(r"::h[0-9a-f]{16}", "", name)
        return name[:150]

    print("\ntop symbols by exclusive Ir per request:")
    # callgrind_annotate lists the threads' roots (clone, start_thread, the runtime's loop)
    # with their inclusive cost even here, at 98-100% of the total. Only those are left out:
    # a cutoff at a third once hid `memcpy` at two thirds (kilobyte futures moved by value).
    for n, name in [r for r in rows(excl, lambda _: True, args.top + 10) if r[0] < ir * 0.9][: args.top]:
        print("%9.0f  %s" % (n / args.n, short(name)))
    if args.nginx:
        return
    print("\nlegate's own functions by inclusive Ir per request:")
    for n, name in rows(incl, lambda s: "legate::" in s, args.top):
        print("%9.0f  %s" % (n / args.n, short(name)))


if __name__ == "__main__":
    main()
