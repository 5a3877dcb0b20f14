#!/usr/bin/env python3
"""Chaos soak: steady keep-alive load on legate while everything around it changes.

At once, for a bounded time and count:
- keep-alive load from a pool of stdlib clients (each request tagged `x-chaos-id`) on two
  listeners: `main` routes /a to EDS cluster `eds_a`, /b to STATIC cluster `static_b`, /c to
  STRICT_DNS cluster `dns_c`; `cm` routes everything to EDS cluster `eds_cm`;
- --reloads reloads of every kind (LDS, CDS, RDS, EDS of the plain folder) in every write style
  (rename, in-place rewrite, vim-style save, delete+recreate), and Kubernetes ConfigMap `..data`
  swaps of a second folder (RDS + EDS of the `cm` listener together); about one write in ten
  is invalid (an unknown `@type`) and must be refused, the next write of that file restores it;
- the upstreams of `eds_a`, `eds_cm` and `static_b` (three python servers) are SIGKILLed one
  at a time and restarted a second later;
- the DNS answer of `dns_c` (a stdlib UDP responder on 127.0.0.1) changes among non-empty
  subsets of 127.0.0.2-4, where three more servers listen;
- the access log file is rotated: mv, then `POST /reopen_logs`.

Routes retry `connect-failure,reset` (as an Envoy user would); a request that still fails is
explained only if it failed while an upstream was down and its access-log flags say so
(UF/UC/UR/URX: Envoy gives the same answer then). Anything else non-2xx, a request the proxy
read whose connection then broke (a crashed connection), a reload whose outcome is wrong or
unseen, or a legate that exits fails the run. With --rss-limit, so does RSS growing more than
that many percent between warm-up (the first 10% of reloads) and the end.

    cargo build --release
    python3 benches/chaos_soak.py --rss-limit 5                 # full: 1,000 reloads, ~6 min
    python3 benches/chaos_soak.py --reloads 100 --seconds 60 --reload-pause 0.2   # CI (~30 s)
    # the same chaos on Envoy, with the write styles it notices, and legate on the same styles:
    python3 benches/chaos_soak.py --bin /work/envoy/envoy/_bin/envoy --styles rename,configmap \
        --watched --extra-args "--base-id 77 --disable-hot-restart"
    python3 benches/chaos_soak.py --styles rename,configmap --watched

Standard library only. Everything listens on loopback (127.0.0.1-4), ports picked free; every
process it starts is stopped by its PID; every wait is bounded. Prints a summary (requests,
non-2xx by cause, connection errors, reloads by kind, style and outcome, access-log lines,
RSS at warm-up vs end) and exits 1 when a check fails.
"""

import argparse
import http.client
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
FILE_LOG = "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog"
CARES = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
DNS_IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
DNS_NAME = "svc.chaos.test"
KILL_FLAGS = {"UF", "UC", "UR", "URX", "UH"}


def free_port(addrs=("127.0.0.1",)):
    """A TCP port free on every address in `addrs` (bounded tries)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addrs[0], 0))
            port = s.getsockname()[1]
        ok = True
        for a in addrs[1:]:
            try:
                with socket.socket() as t:
                    t.bind((a, port))
            except OSError:
                ok = False
                break
        if ok:
            return port
    raise SystemExit("no free port")


# ---------------------------------------------------------------------------------------------
# Upstream server (a subprocess running this file with --serve, so it can be SIGKILLed).


def serve(addr, port, name):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = (name + "\n").encode()

    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    # A proxy closing an upstream connection mid-answer is part of the chaos, not news.
    ThreadingHTTPServer.handle_error = lambda self, request, client_address: None
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 256
    ThreadingHTTPServer((addr, port), H).serve_forever()


class Upstream:
    def __init__(self, name, addr, port):
        self.name, self.addr, self.port = name, addr, port
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve",
                                      self.addr, str(self.port), self.name])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.addr, self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise SystemExit(f"upstream {self.name} did not listen")

    def kill(self):
        self.proc.kill()
        self.proc.wait(5)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------------------------------------
# DNS: A records for one name from a mutable list, TTL 0.


class Dns:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.ips = list(DNS_IPS)
        self.queries = 0
        self.stop = False
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while not self.stop:
            try:
                q, peer = self.sock.recvfrom(512)
                self.sock.sendto(self.answer(q), peer)
                self.queries += 1
            except (OSError, ValueError, IndexError, struct.error):
                continue

    def answer(self, q):
        qid, _flags, qd = struct.unpack(">HHH", q[:6])
        i, labels = 12, []
        while q[i]:
            labels.append(q[i + 1 : i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1 : i + 3])[0]
        question = q[12 : i + 5]
        name = ".".join(labels).lower()
        ips = list(self.ips)
        if name != DNS_NAME:
            return struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question  # NXDOMAIN
        answers = [ip for ip in ips] if qtype == 1 else []
        out = struct.pack(">HHHHHH", qid, 0x8180, 1, len(answers), 0, 0) + question
        for ip in answers:
            out += struct.pack(">HHHIH", 0xC00C, 1, 1, 0, 4) + socket.inet_aton(ip)
        return out


# ---------------------------------------------------------------------------------------------
# Configuration files.


def resource(type_url, body):
    return dict({"@type": "type.googleapis.com/" + type_url}, **body)


def discovery(version, resources):
    return json.dumps({"version_info": str(version), "resources": resources}, indent=1) + "\n"


def route(prefix, cluster):
    return {"match": {"prefix": prefix},
            "route": {"cluster": cluster, "retry_policy": {"retry_on": "connect-failure,reset",
                                                           "num_retries": 3}}}


def rds(name, version, routes, gen):
    return discovery(version, [resource("envoy.config.route.v3.RouteConfiguration", {
        "name": name,
        "response_headers_to_add": [{"header": {"key": "x-gen", "value": str(gen)}}],
        "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]})])


def eds(cluster, version, ports):
    return discovery(version, [resource("envoy.config.endpoint.v3.ClusterLoadAssignment", {
        "cluster_name": cluster,
        "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
            for p in ports]}]})])


def hcm(prefix, rds_name, rds_source, access_log, server_name):
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": {
        "@type": HCM, "stat_prefix": prefix, "server_name": server_name,
        "rds": {"route_config_name": rds_name, "config_source": rds_source},
        "access_log": [{"name": "envoy.access_loggers.file", "typed_config": {
            "@type": FILE_LOG, "path": access_log,
            "log_format": {"text_format_source": {"inline_string":
                "%REQ(X-CHAOS-ID)% %RESPONSE_CODE% %RESPONSE_FLAGS% %UPSTREAM_HOST% "
                "%UPSTREAM_CLUSTER% %UPSTREAM_REQUEST_ATTEMPT_COUNT%\n"}}}}],
        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {"@type": ROUTER}}]}}


def source(path, watched):
    """A path_config_source; `watched` names the folder whose moves Envoy should watch (what
    Envoy needs to see a ConfigMap swap)."""
    src = {"path": path}
    if watched:
        src["watched_directory"] = {"path": watched}
    return {"path_config_source": src, "resource_api_version": "V3"}


def lds(version, ports, d, cm, log, gen, watched):
    listeners = []
    for name, port, rds_name, src in (("main", ports["main"], "main_routes", source(f"{d}/rds.yaml", None)),
                                      ("cm", ports["cm"], "cm_routes", source(f"{cm}/rds.yaml", watched))):
        listeners.append(resource("envoy.config.listener.v3.Listener", {
            "name": name,
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
            "filter_chains": [{"filters": [hcm(name, rds_name, src, log, f"legate-{gen}")]}]}))
    return discovery(version, listeners)


def cds(version, d, cm, static_ports, dns_port, dns_server_port, gen, watched):
    def eds_cluster(name, src):
        return resource("envoy.config.cluster.v3.Cluster", {
            "name": name, "type": "EDS", "connect_timeout": "0.25s",
            "eds_cluster_config": {"eds_config": src}})

    static = resource("envoy.config.cluster.v3.Cluster", {
        "name": "static_b", "type": "STATIC",
        "connect_timeout": "0.25s" if gen % 2 == 0 else "0.5s",
        "lb_policy": "ROUND_ROBIN" if gen % 3 else "LEAST_REQUEST",
        "load_assignment": {"cluster_name": "static_b", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": p}}}}
            for p in static_ports]}]}})
    dns = resource("envoy.config.cluster.v3.Cluster", {
        "name": "dns_c", "type": "STRICT_DNS", "connect_timeout": "0.25s",
        "dns_refresh_rate": "0.2s", "dns_lookup_family": "V4_ONLY",
        "typed_dns_resolver_config": {"name": "envoy.network.dns_resolver.cares", "typed_config": {
            "@type": CARES,
            "resolvers": [{"socket_address": {"address": "127.0.0.1", "port_value": dns_server_port}}]}},
        "load_assignment": {"cluster_name": "dns_c", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": DNS_NAME, "port_value": dns_port}}}}]}]}})
    return discovery(version, [eds_cluster("eds_a", source(f"{d}/eds.yaml", None)), static, dns,
                               eds_cluster("eds_cm", source(f"{cm}/eds.yaml", watched))])


def bootstrap(admin, d):
    return json.dumps({
        "node": {"id": "chaos", "cluster": "chaos"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "dynamic_resources": {
            "lds_config": {"path_config_source": {"path": f"{d}/lds.yaml"}, "resource_api_version": "V3"},
            "cds_config": {"path_config_source": {"path": f"{d}/cds.yaml"}, "resource_api_version": "V3"}},
    }, indent=1) + "\n"


def invalid(text):
    """The same file with an unknown `@type` on its first resource: legate and Envoy both
    refuse it (Envoy would only warn about a misspelt field in a discovery file)."""
    return text.replace('"@type": "type.googleapis.com/envoy.', '"@type": "type.googleapis.com/bogus.', 1)


# Write styles.

def w_rename(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def w_inplace(path, text):
    with open(path, "w") as f:
        f.write(text)


def w_vim(path, text):
    d = os.path.dirname(path)
    probe = os.path.join(d, "4913")
    with open(probe, "w"):
        pass
    os.unlink(probe)
    os.rename(path, path + "~")
    with open(path, "w") as f:
        f.write(text)
    os.unlink(path + "~")


def w_recreate(path, text):
    os.unlink(path)
    with open(path, "w") as f:
        f.write(text)


STYLES = {"rename": w_rename, "inplace": w_inplace, "vim": w_vim, "recreate": w_recreate}


class ConfigMap:
    """The kubelet's layout: files are symlinks into ..data, a symlink to a timestamped folder,
    swapped by renaming ..data_tmp over it; the old folder is then removed."""

    def __init__(self, d, files):
        self.d, self.seq = d, 0
        os.makedirs(d)
        self.publish(files, first=True)

    def publish(self, files, first=False):
        self.seq += 1
        ts = os.path.join(self.d, f"..2026_12_06_00_00_00.{self.seq}")
        os.makedirs(ts)
        for fn, txt in files.items():
            with open(os.path.join(ts, fn), "w") as f:
                f.write(txt)
        tmp = os.path.join(self.d, "..data_tmp")
        os.symlink(os.path.basename(ts), tmp)
        old = None if first else os.readlink(os.path.join(self.d, "..data"))
        os.rename(tmp, os.path.join(self.d, "..data"))
        if first:
            for fn in files:
                os.symlink(f"..data/{fn}", os.path.join(self.d, fn))
        if old:
            shutil.rmtree(os.path.join(self.d, old))


# ---------------------------------------------------------------------------------------------
# Load.


class Load:
    """--clients threads, each with one keep-alive connection, GETs in a loop."""

    def __init__(self, ports, clients):
        self.ports = ports
        self.stop = False
        self.lock = threading.Lock()
        self.results = []  # (id, t_sent, t_done, status or error, server header, had_reused)
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(clients)]
        for t in self.threads:
            t.start()

    def run(self, i):
        targets = [("main", "/a"), ("main", "/b"), ("main", "/c"), ("cm", "/cm")]
        conns = {}
        n = 0
        while not self.stop:
            listener, path = targets[(i + n) % len(targets)]
            n += 1
            rid = f"{i}-{n}"
            c = conns.get(listener)
            reused = c is not None and c.sock is not None
            if c is None:
                c = conns[listener] = http.client.HTTPConnection("127.0.0.1", self.ports[listener], timeout=10)
            t0 = time.monotonic()
            try:
                c.request("GET", path, headers={"x-chaos-id": rid})
                r = c.getresponse()
                r.read()
                res = r.status
                if r.will_close:
                    c.close()
            except http.client.RemoteDisconnected:
                res = "remote-disconnected"
                c.close()
            except (ConnectionResetError, BrokenPipeError):
                res = "reset"
                c.close()
            except http.client.IncompleteRead:
                res = "incomplete-read"
                c.close()
            except socket.timeout:
                res = "timeout"
                c.close()
            except (OSError, http.client.HTTPException) as e:
                res = type(e).__name__
                c.close()
            with self.lock:
                self.results.append((rid, t0, time.monotonic(), res, reused))


# ---------------------------------------------------------------------------------------------
# The soak.


class Soak:
    def __init__(self, a):
        self.a = a
        self.g = random.Random(a.seed)
        self.wd = tempfile.mkdtemp(prefix="chaos-soak-")
        self.d = os.path.join(self.wd, "plain")
        self.cm = os.path.join(self.wd, "cm")
        os.makedirs(self.d)
        self.log = os.path.join(self.wd, "access.log")
        self.ports = {"main": free_port(), "cm": free_port()}
        self.admin = free_port()
        self.procs = []
        # Killable upstreams: k0 and k1 serve eds_a and static_b, k1 and k2 serve eds_cm.
        self.kill_pool = [Upstream(f"k{i}", "127.0.0.1", free_port()) for i in range(3)]
        dns_port = free_port(tuple(DNS_IPS))
        self.dns_ups = [Upstream(f"dns{i}", ip, dns_port) for i, ip in enumerate(DNS_IPS)]
        self.dns = Dns()
        self.dns_port = dns_port
        self.version = 0
        self.gen = 0
        self.watched = self.cm if a.watched else None
        self.down = []  # (start, end) of each upstream outage, end None while down
        self.lock = threading.Lock()
        self.reloads = Counter()  # (kind, style, outcome)
        self.bad_reloads = []
        self.rotations = 0
        self.dns_changes = 0
        self.kills = 0
        self.rss = []  # (t, reloads done, kB)
        self.done_reloads = 0
        self.stop = False
        self.files = {}
        self.write_all_initial()
        self.legate = None

    # files ------------------------------------------------------------------------------------
    def kp(self, i):
        return self.kill_pool[i].port

    def text(self, kind):
        self.version += 1
        v, gen = self.version, self.gen
        if kind == "lds":
            return lds(v, self.ports, self.d, self.cm, self.log, gen, self.watched)
        if kind == "cds":
            return cds(v, self.d, self.cm, [self.kp(0), self.kp(1)], self.dns_port, self.dns.port, gen,
                       self.watched)
        if kind == "rds":
            routes = [route("/a", "eds_a"), route("/b", "static_b"), route("/c", "dns_c")]
            if gen % 2:
                routes.reverse()  # the prefixes do not overlap: order only
            return rds("main_routes", v, routes, gen)
        if kind == "eds":
            ports = [self.kp(0), self.kp(1)] if gen % 3 else [self.kp(1), self.kp(0), self.kp(2)]
            return eds("eds_a", v, ports)
        raise ValueError(kind)

    def cm_files(self):
        self.version += 1
        v, gen = self.version, self.gen
        ports = [self.kp(1), self.kp(2)] if gen % 2 else [self.kp(2), self.kp(1), self.kp(0)]
        return {"rds.yaml": rds("cm_routes", v, [route("/", "eds_cm")], gen),
                "eds.yaml": eds("eds_cm", v, ports)}

    def write_all_initial(self):
        for kind in ("eds", "rds", "cds", "lds"):
            w_rename(os.path.join(self.d, f"{kind}.yaml"), self.text(kind))
        self.configmap = ConfigMap(self.cm, self.cm_files())
        with open(os.path.join(self.wd, "envoy.json"), "w") as f:
            f.write(bootstrap(self.admin, self.d))

    # admin ------------------------------------------------------------------------------------
    def admin_get(self, path, method="GET"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.admin}{path}", method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.read().decode()

    def counters(self):
        text = self.admin_get("/stats?filter=" + urllib.parse.quote("update_(attempt|success|rejected|failure)$"))
        out = {}
        for line in text.splitlines():
            name, _, val = line.partition(": ")
            try:
                out[name] = int(val)
            except ValueError:
                pass
        return out

    STAT = {"lds": "listener_manager.lds.", "cds": "cluster_manager.cds.",
            "rds": "http.main.rds.main_routes.", "eds": "cluster.eds_a.",
            "cm-rds": "http.cm.rds.cm_routes.", "cm-eds": "cluster.eds_cm."}

    def wait_reload(self, kinds, before, timeout=5.0):
        """Outcome of the reload of `kinds` once every one's update_attempt moved."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.counters()
            moved = all(now.get(self.STAT[k] + "update_attempt", 0) > before.get(self.STAT[k] + "update_attempt", 0)
                        for k in kinds)
            if moved:
                outcomes = set()
                for k in kinds:
                    for o in ("success", "rejected", "failure"):
                        key = self.STAT[k] + "update_" + o
                        if now.get(key, 0) > before.get(key, 0):
                            outcomes.add(o)
                return "+".join(sorted(outcomes)) or "attempt-only"
            time.sleep(0.005)
        return "unseen"

    # chaos threads ----------------------------------------------------------------------------
    def killer(self):
        while not self.stop:
            self.sleep(self.a.kill_every)
            if self.stop:
                return
            u = self.g.choice(self.kill_pool)
            with self.lock:
                self.down.append([time.monotonic(), None])
            u.kill()
            self.kills += 1
            self.sleep(1.0)
            u.start()
            with self.lock:
                self.down[-1][1] = time.monotonic()

    def dns_changer(self):
        subsets = [[a] for a in DNS_IPS] + [DNS_IPS[:2], DNS_IPS[1:], DNS_IPS]
        while not self.stop:
            self.sleep(self.a.dns_every)
            self.dns.ips = self.g.choice(subsets)
            self.dns_changes += 1

    def rotator(self):
        while not self.stop:
            self.sleep(self.a.rotate_every)
            if self.stop:
                return
            self.rotations += 1
            os.rename(self.log, f"{self.log}.{self.rotations}")
            self.admin_get("/reopen_logs", method="POST")

    def sampler(self):
        while not self.stop:
            try:
                with open(f"/proc/{self.legate.pid}/status") as f:
                    kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
                self.rss.append((time.monotonic(), self.done_reloads, kb))
            except (OSError, AttributeError):
                pass
            self.sleep(0.5)

    def sleep(self, s):
        end = time.monotonic() + s
        while not self.stop and time.monotonic() < end:
            time.sleep(min(0.05, end - time.monotonic()))

    # reloads ----------------------------------------------------------------------------------
    def reloader(self, deadline):
        styles = self.a.styles.split(",")
        plan = [(kind, style) for kind in ("rds", "eds", "cds", "lds") for style in STYLES
                if style in styles]
        if "configmap" in styles:
            plan += [("configmap", "configmap")] * 4
        i = 0
        while i < self.a.reloads and time.monotonic() < deadline and not self.stop:
            kind, style = plan[i % len(plan)] if i % 7 else self.g.choice(plan)
            bad = self.g.random() < 0.1
            self.gen += 1
            before = self.counters()
            if kind == "configmap":
                files = self.cm_files()
                if bad:
                    files["eds.yaml"] = invalid(files["eds.yaml"])
                self.configmap.publish(files)
                outcome = self.wait_reload(["cm-rds", "cm-eds"], before)
                # a ConfigMap swap is one snapshot: the bad EDS rejects the RDS beside it
                want = ("rejected", "failure") if bad else ("success",)
            else:
                text = self.text(kind)
                STYLES[style](os.path.join(self.d, f"{kind}.yaml"), invalid(text) if bad else text)
                outcome = self.wait_reload([kind], before)
                want = ("rejected", "failure") if bad else ("success",)
            self.reloads[(kind, style, "bad" if bad else "good", outcome)] += 1
            if outcome not in want:
                self.bad_reloads.append((i, kind, style, bad, outcome))
            i += 1
            self.done_reloads = i
            if self.a.reload_pause:
                time.sleep(self.a.reload_pause)
        # leave every file valid
        for kind in ("eds", "rds", "cds", "lds"):
            before = self.counters()
            w_rename(os.path.join(self.d, f"{kind}.yaml"), self.text(kind))
            self.wait_reload([kind], before)
        before = self.counters()
        self.configmap.publish(self.cm_files())
        self.wait_reload(["cm-rds", "cm-eds"], before)
        return i

    # run --------------------------------------------------------------------------------------
    def start_legate(self):
        out = open(os.path.join(self.wd, "legate.log"), "wb")
        self.legate = subprocess.Popen([self.a.bin, "-c", os.path.join(self.wd, "envoy.json"),
                                        "-l", "warning", "--drain-time-s", str(self.a.drain_time_s)]
                                       + shlex.split(self.a.extra_args),
                                       stdout=out, stderr=out, cwd=self.wd)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.legate.poll() is not None:
                raise SystemExit(f"legate exited at start; see {self.wd}/legate.log")
            try:
                for p in self.ports.values():
                    socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
                # every cluster answers before the clock starts
                ok = all(urllib.request.urlopen(
                    f"http://127.0.0.1:{self.ports[l]}{p}", timeout=2).status == 200
                         for l, p in (("main", "/a"), ("main", "/b"), ("main", "/c"), ("cm", "/")))
                if ok:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"legate not ready within 15 s; see {self.wd}/legate.log")

    def run(self):
        self.start_legate()
        t0 = time.monotonic()
        deadline = t0 + self.a.seconds
        threads = [threading.Thread(target=f, daemon=True)
                   for f in (self.killer, self.dns_changer, self.rotator, self.sampler)]
        for t in threads:
            t.start()
        load = Load(self.ports, self.a.clients)
        try:
            n = self.reloader(deadline)
            # keep the load (and the chaos) going a little after the last reload
            self.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        finally:
            self.stop = True
            load.stop = True
            for t in load.threads:
                t.join(15)
            for t in threads:
                t.join(15)
        elapsed = time.monotonic() - t0
        alive = self.legate.poll() is None
        # let the access-log writer catch up (legate writes within ~10 ms, Envoy flushes every
        # second): until the line count stops moving, at most 5 s
        last, deadline = -1, time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = len(self.access_log())
            if lines == last:
                break
            last = lines
            time.sleep(1.2)
        stats = {}
        if alive:
            for line in self.admin_get("/stats?filter=access_log").splitlines():
                name, _, val = line.partition(": ")
                stats[name] = val
        return self.report(load.results, n, elapsed, alive, stats)

    def access_log(self):
        lines = {}
        for fn in os.listdir(self.wd):
            if fn.startswith("access.log"):
                with open(os.path.join(self.wd, fn), errors="replace") as f:
                    for line in f:
                        parts = line.split()
                        if parts:
                            lines[parts[0]] = parts[1:]
        return lines

    def report(self, results, n_reloads, elapsed, alive, stats):
        logs = self.access_log()
        down = [(s, e if e is not None else float("inf")) for s, e in self.down]

        def outage(t0, t1):
            """How a request overlapping an upstream outage met it, or None."""
            for s, e in down:
                if t0 <= e + 0.5 and t1 >= s - 0.1:
                    return "in flight at the kill" if t0 < s else "sent while it was down"
            return None

        ok = 0
        non2xx = Counter()
        conn = Counter()
        unexplained = []
        for rid, t0, t1, res, reused in results:
            if isinstance(res, int) and 200 <= res < 300:
                ok += 1
                continue
            entry = logs.get(rid)
            flags = entry[1] if entry and len(entry) > 1 else "-"
            if isinstance(res, int):
                how = outage(t0, t1)
                explained = how and set(flags.split(",")) & KILL_FLAGS
                cluster = entry[3] if entry and len(entry) > 3 else "-"
                cause = f"{res} {flags} {cluster}" + (f" (upstream killed: {how})" if explained else "")
                non2xx[cause] += 1
                if not explained:
                    unexplained.append((rid, res, flags))
            else:
                # The proxy read the request (it logged it) and the connection broke: crashed.
                # Not logged, on a reused connection: the proxy closed an idle keep-alive
                # connection as the client sent (RFC 9112 9.3.1; a client retries).
                if entry is not None:
                    kind = "crashed (request logged)"
                    unexplained.append((rid, res, "crashed connection"))
                elif reused and res in ("remote-disconnected", "reset"):
                    kind = "idle keep-alive closed as the request was sent"
                else:
                    kind = "never read"
                    unexplained.append((rid, res, "connection error"))
                conn[f"{res}: {kind}"] += 1
        rss = [kb for _, r, kb in self.rss]
        warm_at = max(1, n_reloads // 10)
        warm = [kb for _, r, kb in self.rss if r >= warm_at][:5]
        end = rss[-5:]
        rss_warm = max(warm) if warm else None
        rss_end = max(end) if end else None
        growth = (rss_end - rss_warm) * 100.0 / rss_warm if rss_warm else None
        logged = sum(1 for rid, *_ in results if rid in logs)
        # The DNS answers took effect: which hosts dns_c's requests reached.
        dns_hosts = Counter(e[2].rsplit(":", 1)[0] for e in logs.values()
                            if len(e) > 3 and e[3] == "dns_c")
        by_kind = Counter()
        for (kind, style, goodbad, outcome), c in self.reloads.items():
            by_kind[(kind, style)] += c
        rep = {
            "seconds": round(elapsed, 1), "requests": len(results), "2xx": ok,
            "req_per_s": round(len(results) / elapsed) if elapsed else 0,
            "non2xx": dict(non2xx), "connection_errors": dict(conn),
            "unexplained": unexplained[:20], "unexplained_count": len(unexplained),
            "reloads": n_reloads,
            "reload_outcomes": {" ".join(k): v for k, v in sorted(self.reloads.items())},
            "wrong_reload_outcomes": self.bad_reloads[:20],
            "upstream_kills": self.kills, "dns_changes": self.dns_changes,
            "dns_queries": self.dns.queries, "dns_c_hosts": dict(dns_hosts),
            "log_rotations": self.rotations,
            "access_log_lines": len(logs), "requests_logged": logged,
            "access_log_stats": stats,
            "rss_kb_warmup": rss_warm, "rss_kb_end": rss_end,
            "rss_growth_pct": round(growth, 2) if growth is not None else None,
            "rss_kb_min_max": [min(rss), max(rss)] if rss else None,
            "legate_alive": alive,
        }
        fails = []
        if not alive:
            fails.append("legate exited")
        if unexplained:
            fails.append(f"{len(unexplained)} unexplained failures")
        if self.bad_reloads:
            fails.append(f"{len(self.bad_reloads)} reloads with a wrong or unseen outcome")
        if n_reloads < self.a.reloads:
            fails.append(f"only {n_reloads} of {self.a.reloads} reloads in {self.a.seconds} s")
        unlogged = [rid for rid, _, _, res, _ in results if isinstance(res, int) and rid not in logs]
        rep["answered_but_not_logged"] = len(unlogged)
        if unlogged:
            fails.append(f"{len(unlogged)} answered requests missing from the access logs")
        if self.a.rss_limit is not None and growth is not None and growth > self.a.rss_limit:
            fails.append(f"RSS grew {growth:.1f}% (limit {self.a.rss_limit}%)")
        rep["failures"] = fails
        return rep

    def close(self, keep):
        self.stop = True
        self.dns.stop = True
        if self.legate and self.legate.poll() is None:
            self.legate.send_signal(signal.SIGTERM)
            try:
                self.legate.wait(10)
            except subprocess.TimeoutExpired:
                self.legate.kill()
                self.legate.wait(5)
        for u in self.kill_pool + self.dns_ups:
            u.stop()
        if not keep:
            shutil.rmtree(self.wd, ignore_errors=True)


def print_summary(rep):
    p = print
    p(f"chaos soak: {rep['seconds']} s, {rep['requests']} requests ({rep['req_per_s']}/s), "
      f"{rep['2xx']} 2xx")
    p(f"  non-2xx by cause: {rep['non2xx'] or 'none'}")
    p(f"  connection errors: {rep['connection_errors'] or 'none'}")
    p(f"  reloads: {rep['reloads']}; upstream kills {rep['upstream_kills']}, DNS answer changes "
      f"{rep['dns_changes']} ({rep['dns_queries']} queries; dns_c served by {rep['dns_c_hosts']}), "
      f"log rotations {rep['log_rotations']}")
    for k, v in rep["reload_outcomes"].items():
        p(f"    {k}: {v}")
    p(f"  access log: {rep['access_log_lines']} lines, {rep['requests_logged']} of "
      f"{rep['requests']} requests found; {rep['access_log_stats']}")
    p(f"  RSS: {rep['rss_kb_warmup']} kB after warm-up, {rep['rss_kb_end']} kB at the end "
      f"({rep['rss_growth_pct']}%), min/max {rep['rss_kb_min_max']}")
    if rep["unexplained"]:
        p(f"  unexplained (first 20): {rep['unexplained']}")
    if rep["wrong_reload_outcomes"]:
        p(f"  wrong reload outcomes (first 20): {rep['wrong_reload_outcomes']}")
    p("FAIL: " + "; ".join(rep["failures"]) if rep["failures"] else "OK")


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "legate"))
    ap.add_argument("--reloads", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=600, help="bound on the whole run")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--kill-every", type=float, default=3.0)
    ap.add_argument("--dns-every", type=float, default=0.7)
    ap.add_argument("--rotate-every", type=float, default=2.0)
    ap.add_argument("--reload-pause", type=float, default=0.25, help="seconds between reloads")
    ap.add_argument("--drain-time-s", type=int, default=1)
    ap.add_argument("--rss-limit", type=float, default=None, help="fail above this RSS growth, %%")
    ap.add_argument("--styles", default="rename,inplace,vim,recreate,configmap",
                    help="write styles to use (Envoy notices only rename, and configmap with --watched)")
    ap.add_argument("--watched", action="store_true", help="watched_directory on the ConfigMap's sources")
    ap.add_argument("--extra-args", default="", help='more proxy arguments, e.g. for Envoy '
                    '"--base-id 77 --disable-hot-restart"')
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the report here")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (logs, files)")
    a = ap.parse_args()
    for ip in DNS_IPS:
        with socket.socket() as s:
            try:
                s.bind((ip, 0))
            except OSError:
                raise SystemExit(f"cannot bind {ip}: this needs the whole 127.0.0.0/8 on lo")
    soak = Soak(a)
    try:
        rep = soak.run()
    finally:
        soak.close(a.keep)
    if a.keep:
        print(f"work dir kept: {soak.wd}")
    print_summary(rep)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rep, f, indent=1)
    sys.exit(1 if rep["failures"] else 0)


if __name__ == "__main__":
    main()
