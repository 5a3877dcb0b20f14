#!/usr/bin/env python3
"""Differential HTTP/1 request fuzzer: legate against Envoy on the same config.

Random and mutated request heads and bodies go, byte for byte the same, to legate and to Envoy
(each on its own loopback listener, both loading one v3 bootstrap: one route to a STATIC
cluster). Each proxy's cluster is an echo upstream this script runs that records exactly what
it received: method, target, version, header lines as sent, body framing (content-length,
chunked with the chunk lines and trailers, or none) and the body. A case differs when the
proxies answer with different statuses (the issue's "one answers 2xx and the other 4xx" is the
`major` kind) or the upstream sees a different request. A proxy that dies is a difference too
(it is restarted and the case recorded as `crash`).

Cases are a base request plus 1-3 named mutations (request line, header names and values,
Host, CL/TE combinations, chunked bodies, huge heads, bare LF, pipelining, random byte flips).
A differing case is minimised by dropping mutations while the difference stays the same; its
class is the kind of difference plus the minimal mutations' labels. Every class keeps its
smallest example.

    cargo build --release
    python3 benches/difffuzz.py [--seed 1] [--seconds 600] [--cases N] [--out DIR]
                                [--legate target/release/legate]
                                [--envoy /work/envoy/envoy/_bin/envoy]

Writes DIR/differences.jsonl (one line per class: kind, labels, count, minimal example as
text, both sides' statuses and upstream views) and DIR/summary.md, and prints the summary.
Standard library only; everything listens on 127.0.0.1 on free ports; the proxies it starts
are stopped by PID; every wait is bounded. Deterministic for a given --seed (up to the
proxies' own timing).
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
ROUTER = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
IDLE = 0.4  # seconds of silence after which a case's answer is taken as complete
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Echo upstream: records exactly what it receives.


class Recorder:
    """A raw HTTP/1.1 server on 127.0.0.1 answering `200 ok` and recording each request."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.case = 0
        self.records = []
        self.lock = threading.Lock()
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def take(self, case):
        with self.lock:
            out = [dict(r) for r in self.records if r["case"] == case]
            self.records = [r for r in self.records if r["case"] > case]
        return out

    def _accept(self):
        self.sock.settimeout(0.5)
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        buf = b""

        def fill():
            nonlocal buf
            d = c.recv(65536)
            if not d:
                raise EOFError
            buf += d

        def line():
            nonlocal buf
            while b"\r\n" not in buf:
                if len(buf) > 1 << 20:
                    raise ValueError("line too long")
                fill()
            i = buf.index(b"\r\n")
            out, buf = buf[:i], buf[i + 2 :]
            return out

        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    if len(buf) > 1 << 21:
                        raise ValueError("head too large")
                    fill()
                i = buf.index(b"\r\n\r\n")
                head, buf = buf[:i], buf[i + 4 :]
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                rec = {
                    "case": self.case,
                    "request_line": lines[0].decode("latin-1"),
                    "headers": [],
                    "framing": "none",
                    "body": "",
                    "chunks": [],
                    "trailers": [],
                    "complete": False,
                }
                for h in lines[1:]:
                    n, _, v = h.partition(b":")
                    rec["headers"].append([n.decode("latin-1"), v.strip(b" \t").decode("latin-1")])
                with self.lock:
                    self.records.append(rec)
                names = {n.lower(): v for n, v in rec["headers"]}
                body = b""
                close = "close" in names.get("connection", "").lower()
                if "chunked" in names.get("transfer-encoding", "").lower():
                    rec["framing"] = "chunked"
                    while True:
                        size_line = line()
                        rec["chunks"].append(size_line.decode("latin-1"))
                        size = int(size_line.split(b";")[0].strip(), 16)
                        if size == 0:
                            break
                        while len(buf) < size + 2:
                            fill()
                        body += buf[:size]
                        buf = buf[size + 2 :]
                        rec["body"] = body.decode("latin-1")
                    while True:
                        t = line()
                        if not t:
                            break
                        rec["trailers"].append(t.decode("latin-1"))
                elif "content-length" in names:
                    rec["framing"] = "content-length"
                    n = int(names["content-length"])
                    while len(buf) < n:
                        rec["body"] = buf.decode("latin-1")
                        fill()
                    body, buf = buf[:n], buf[n:]
                rec["body"] = body.decode("latin-1")
                rec["complete"] = True
                if len(parts) > 1 and parts[0] == b"HEAD":
                    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
                else:
                    c.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                if close:
                    break
        except (OSError, EOFError, ValueError):
            pass
        finally:
            c.close()


# ---------------------------------------------------------------------------------------------
# Proxies.


def bootstrap(listen, admin, upstream, base_id):
    return f"""# difffuzz: one route to a STATIC cluster, Envoy's defaults otherwise
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {admin} }} }}
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {listen} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {HCM}
          stat_prefix: fuzz
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                route: {{ cluster: echo }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{ "@type": {ROUTER} }}
  clusters:
  - name: echo
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: echo
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream} }} }} }}
"""


class Proxy:
    def __init__(self, name, argv, workdir, base_id):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.base_id = base_id
        self.upstream = Recorder()
        self.listen = free_port()
        self.admin = free_port()
        self.cfg = os.path.join(workdir, f"{name}.yaml")
        with open(self.cfg, "w") as f:
            f.write(bootstrap(self.listen, self.admin, self.upstream.port, base_id))
        self.proc = None
        self.crashes = 0
        self.start()

    def start(self):
        log = open(os.path.join(self.workdir, f"{self.name}.log"), "ab")
        argv = self.argv + ["-c", self.cfg, "--concurrency", "1", "--disable-hot-restart",
                            "--base-id", str(self.base_id), "-l", "warning"]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=self.workdir)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.name} exited at start; see {self.workdir}/{self.name}.log")
            try:
                socket.create_connection(("127.0.0.1", self.listen), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{self.name} did not listen within 15 s")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.upstream.stop = True


# ---------------------------------------------------------------------------------------------
# Client: send bytes, read the answers.


def parse_responses(data, head_requests):
    """Statuses of the complete responses in `data`; `head_requests` says which of the
    requests (in order) were HEAD, whose answers have no body."""
    out = []
    i = 0
    while True:
        j = data.find(b"\r\n\r\n", i)
        if j < 0:
            break
        lines = data[i:j].split(b"\r\n")
        m = re.match(rb"HTTP/\d\.\d (\d{3})", lines[0])
        if not m:
            out.append("garbage")
            break
        status = int(m.group(1))
        hdrs = {}
        for h in lines[1:]:
            n, _, v = h.partition(b":")
            hdrs[n.strip().lower()] = v.strip()
        k = j + 4
        final = sum(1 for x in out if not (isinstance(x, int) and x < 200))
        is_head = final < len(head_requests) and head_requests[final]
        if 100 <= status < 200:
            out.append(status)
            i = k
            continue
        if is_head or status in (204, 304):
            pass
        elif b"chunked" in hdrs.get(b"transfer-encoding", b""):
            done = False
            while True:
                e = data.find(b"\r\n", k)
                if e < 0:
                    break
                size = int(data[k:e].split(b";")[0], 16)
                k = e + 2 + size + 2
                if size == 0:
                    # no trailers expected from either side
                    done = k <= len(data)
                    break
            if not done:
                break
        elif b"content-length" in hdrs:
            k += int(hdrs[b"content-length"])
            if k > len(data):
                break
        else:
            out.append(status)
            break  # body until close
        out.append(status)
        i = k
    return [s for s in out if s != 100]


def exchange(port, payload, n_requests, head_requests):
    """Sends `payload` on a fresh connection; returns (statuses, how the connection ended)."""
    data = b""
    ended = "open"
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
    except OSError as e:
        return ["connect-failed"], str(e)
    try:
        s.settimeout(IDLE)
        try:
            s.sendall(payload)
        except OSError:
            ended = "reset-while-sending"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except socket.timeout:
                ended = "idle"
                break
            except OSError:
                ended = "reset"
                break
            if not d:
                ended = "closed"
                break
            data += d
            if len([x for x in parse_responses(data, head_requests) if x != 100]) >= n_requests:
                ended = "answered"
                break
    finally:
        s.close()
    st = parse_responses(data, head_requests)
    if not st and ended in ("closed", "reset", "reset-while-sending"):
        st = [ended]
    if not st and ended == "idle":
        st = ["no-answer"]
    return st, ended


# ---------------------------------------------------------------------------------------------
# Requests and mutations.


class Req:
    def __init__(self):
        self.method = "GET"
        self.target = "/"
        self.version = "HTTP/1.1"
        self.sep = " "
        self.headers = [("Host", "example.com")]
        self.body = b""
        self.eol = "\r\n"
        self.prefix = b""
        self.pipelined = b""
        self.raw_patch = None  # fn(bytes) -> bytes, applied to the head

    def head(self):
        rl = self.method + self.sep + self.target
        if self.version is not None:
            rl += self.sep + self.version
        lines = [rl] + [f"{n}:{'' if v is None else ' ' + v}" if not n.endswith("\x00raw") else n[:-4]
                        for n, v in self.headers]
        h = (self.eol.join(lines) + self.eol + self.eol).encode("latin-1")
        if self.raw_patch:
            h = self.raw_patch(h)
        return h

    def bytes(self):
        return self.prefix + self.head() + self.body + self.pipelined

    def set_header(self, name, value):
        self.headers = [(n, v) for n, v in self.headers if n.lower() != name.lower()]
        self.headers.append((name, value))

    def raw_line(self, line):
        """A header line sent exactly as given."""
        self.headers.append((line + "\x00raw", None))


def chunked(body, size_fmt="{:x}", ext="", trailers=()):
    out = b""
    for i in range(0, len(body), 5):
        part = body[i : i + 5]
        out += (size_fmt.format(len(part)) + ext + "\r\n").encode() + part + b"\r\n"
    out += b"0" + ext.encode() + b"\r\n"
    for t in trailers:
        out += t.encode("latin-1") + b"\r\n"
    return out + b"\r\n"


BASES = [
    ("GET", "/", None),
    ("GET", "/a/b?x=1&y=2", None),
    ("POST", "/submit", b"hello world"),
    ("PUT", "/upload", b"0123456789abcdef"),
    ("HEAD", "/", None),
]


def base(seed):
    method, target, body = BASES[seed % len(BASES)]
    r = Req()
    r.method, r.target = method, target
    r.headers.append(("User-Agent", "difffuzz"))
    if body is not None:
        r.headers.append(("Content-Length", str(len(body))))
        r.body = body
    return r


def m_method(r, g):
    v = g.choice(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT",
                  "get", "FOO", "G(T", "GE T", "M-SEARCH", "PRI", "X" * 100, "GÉT"])
    r.method = v
    return f"method={v[:12]}"


TARGETS = ["/a/b?x=1", "/%2e%2e/a", "/a/../b", "/a/./b", "//double//slash", "/a#frag", "/a?q=1#f",
           "http://example.com/abs", "http://other.host:8080/abs?q", "https://example.com/x",
           "HTTP://EXAMPLE.COM/up", "http://user@example.com/u", "http://example.com", "*", "a/b",
           "/\xff", "/a\tb", "/%zz", "/?", "/" + "x" * 9000, "/" + "y" * 70000, "/a;p=1", "/%00",
           "/a%2fb", "/\x7f", "/a b", "example.com:80", "/a?x=\"q\"", "/{}|\\^`", "#f", "/a?#",
           "ftp://example.com/f"]


def m_target(r, g):
    v = g.choice(TARGETS)
    r.target = v
    return f"target={v[:24]!r}"


def m_version(r, g):
    v = g.choice(["HTTP/1.0", "HTTP/1.2", "HTTP/2.0", "HTTP/0.9", None, "http/1.1", "HTTP/1.1 ",
                  "HTTP/11", "HTTP/1", "HTTP/1.01", "HTTP/9.9", "HTTPS/1.1"])
    r.version = v
    return f"version={v!r}"


def m_rl_spaces(r, g):
    v = g.choice(["double", "tab", "leading-crlf", "leading-lf", "trailing-space"])
    if v == "double":
        r.sep = "  "
    elif v == "tab":
        r.sep = "\t"
    elif v == "leading-crlf":
        r.prefix = b"\r\n"
    elif v == "leading-lf":
        r.prefix = b"\n"
    else:
        r.version = (r.version or "HTTP/1.1") + " "
    return f"request-line={v}"


def m_header_name(r, g):
    c = g.choice(["(", " ", "\x7f", "@", '"', "\xff", "\x00", "{", "/", "é"])
    pos = g.choice(["mid", "start", "end"])
    name = {"mid": f"X-Bad{c}Name", "start": f"{c}X-Bad", "end": f"X-Bad{c}"}[pos]
    r.headers.append((name, "v"))
    return f"header-name-char={c!r}@{pos}"


def m_header_value(r, g):
    c = g.choice(["\x00", "\x01", "\x7f", "\xff", "\r", "\x0b", "\x0c", "\t", "é"])
    pos = g.choice(["mid", "start", "end"])
    value = {"mid": f"a{c}b", "start": f"{c}ab", "end": f"ab{c}"}[pos]
    r.headers.append(("X-Val", value))
    return f"header-value-char={c!r}@{pos}"


def m_obs_fold(r, g):
    v = g.choice(["space", "tab", "first-line"])
    if v == "first-line":
        r.headers.insert(0, (" X-Lead: a\x00raw", None))
    else:
        r.raw_line("X-Fold: a" + r.eol + (" " if v == "space" else "\t") + "b")
    return f"obs-fold={v}"


def m_header_syntax(r, g):
    v = g.choice(["space-before-colon", "empty-name", "no-colon", "empty-value", "tab-before-value",
                  "ws-around-value", "colon-in-name", "many-colons"])
    line = {"space-before-colon": "X-Sp : v", "empty-name": ": v", "no-colon": "NoColon",
            "empty-value": "X-Empty:", "tab-before-value": "X-Tab:\tv",
            "ws-around-value": "X-Ws: \t v \t", "colon-in-name": "X:Y: v",
            "many-colons": "X-C: a:b::c"}[v]
    r.raw_line(line)
    return f"header-syntax={v}"


def m_duplicate(r, g):
    v = g.choice(["custom", "host-same", "host-differ", "cl-same", "cl-differ", "cookie",
                  "te-twice"])
    if v == "custom":
        r.headers += [("X-Dup", "1"), ("X-Dup", "2")]
    elif v == "host-same":
        r.headers.append(("Host", "example.com"))
    elif v == "host-differ":
        r.headers.append(("Host", "other.example"))
    elif v == "cookie":
        r.headers += [("Cookie", "a=1"), ("Cookie", "b=2")]
    elif v.startswith("cl"):
        n = len(r.body)
        r.set_header("Content-Length", str(n))
        r.headers.append(("Content-Length", str(n if v == "cl-same" else n + 1)))
    else:
        r.set_header("Transfer-Encoding", "chunked")
        r.headers.append(("Transfer-Encoding", "chunked"))
        r.headers = [(n, v2) for n, v2 in r.headers if n.lower() != "content-length"]
        r.body = chunked(r.body)
    return f"duplicate={v}"


def m_host(r, g):
    v = g.choice(["missing", "empty", "port", "bad-port", "ipv6", "space", "userinfo", "upper",
                  "trailing-dot", "underscore", "long", "comma", "only-port", "ipv6-unbracketed"])
    vals = {"empty": "", "port": "example.com:80", "bad-port": "example.com:abc", "ipv6": "[::1]:80",
            "space": "exa mple.com", "userinfo": "u@example.com", "upper": "EXAMPLE.COM",
            "trailing-dot": "example.com.", "underscore": "ex_ample.com", "long": "h" * 300,
            "comma": "a.com, b.com", "only-port": ":80", "ipv6-unbracketed": "::1"}
    if v == "missing":
        r.headers = [(n, x) for n, x in r.headers if n.lower() != "host"]
    else:
        r.set_header("Host", vals[v])
    return f"host={v}"


def m_size(r, g):
    v = g.choice(["value-61k", "value-100k", "headers-101", "headers-200", "total-59k",
                  "name-1k", "value-16k"])
    if v.startswith("value"):
        n = {"value-61k": 61 * 1024, "value-100k": 100 * 1024, "value-16k": 16 * 1024}[v]
        r.headers.append(("X-Huge", "v" * n))
    elif v.startswith("headers"):
        n = int(v.split("-")[1])
        r.headers += [(f"X-H{i}", "v") for i in range(n)]
    elif v == "total-59k":
        r.headers += [(f"X-T{i}", "t" * 1000) for i in range(59)]
    else:
        r.headers.append(("X-" + "n" * 1024, "v"))
    return f"size={v}"


def m_hop(r, g):
    v = g.choice(["conn-close", "conn-keepalive", "conn-token", "upgrade-ws", "upgrade-h2c",
                  "te-trailers", "te-gzip", "proxy-connection", "keep-alive", "conn-upgrade-only",
                  "upgrade-no-conn", "http2-settings"])
    if v == "conn-close":
        r.headers.append(("Connection", "close"))
    elif v == "conn-keepalive":
        r.headers.append(("Connection", "keep-alive"))
    elif v == "conn-token":
        r.headers += [("Connection", "x-secret"), ("X-Secret", "1")]
    elif v == "upgrade-ws":
        r.headers += [("Connection", "Upgrade"), ("Upgrade", "websocket")]
    elif v == "upgrade-h2c":
        r.headers += [("Connection", "Upgrade, HTTP2-Settings"), ("Upgrade", "h2c"),
                      ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")]
    elif v == "te-trailers":
        r.headers.append(("TE", "trailers"))
    elif v == "te-gzip":
        r.headers.append(("TE", "gzip"))
    elif v == "proxy-connection":
        r.headers.append(("Proxy-Connection", "keep-alive"))
    elif v == "keep-alive":
        r.headers.append(("Keep-Alive", "timeout=5"))
    elif v == "conn-upgrade-only":
        r.headers.append(("Connection", "upgrade"))
    elif v == "upgrade-no-conn":
        r.headers.append(("Upgrade", "websocket"))
    else:
        r.headers.append(("HTTP2-Settings", "AAMAAABk"))
    return f"hop={v}"


def m_special(r, g):
    v = g.choice(["expect-100", "expect-foo", "x-request-id", "xff", "x-forwarded-proto",
                  "x-envoy-original-path", "x-envoy-retry-on", "x-envoy-upstream-rq-timeout-ms",
                  "x-envoy-internal", "x-envoy-expected-rq-timeout-ms", "via", "forwarded",
                  "x-forwarded-host", "x-envoy-decorator-operation"])
    vals = {"expect-100": ("Expect", "100-continue"), "expect-foo": ("Expect", "foo"),
            "x-request-id": ("X-Request-Id", "given-id"), "xff": ("X-Forwarded-For", "1.2.3.4"),
            "x-forwarded-proto": ("X-Forwarded-Proto", "https"),
            "x-envoy-original-path": ("x-envoy-original-path", "/orig"),
            "x-envoy-retry-on": ("x-envoy-retry-on", "5xx"),
            "x-envoy-upstream-rq-timeout-ms": ("x-envoy-upstream-rq-timeout-ms", "1234"),
            "x-envoy-internal": ("x-envoy-internal", "true"),
            "x-envoy-expected-rq-timeout-ms": ("x-envoy-expected-rq-timeout-ms", "5"),
            "via": ("Via", "1.1 other"), "forwarded": ("Forwarded", "for=1.2.3.4"),
            "x-forwarded-host": ("X-Forwarded-Host", "fh.example"),
            "x-envoy-decorator-operation": ("x-envoy-decorator-operation", "op")}
    r.headers.append(vals[v])
    return f"special={v}"


def _drop_framing(r):
    r.headers = [(n, v) for n, v in r.headers
                 if n.lower() not in ("content-length", "transfer-encoding")]


def m_content_length(r, g):
    v = g.choice(["exact", "short", "long", "abc", "-1", "+5", "5,5", "5, 6", " 5 ", "0x5",
                  "99999999999999999999", "005", "empty", "1 1", "get-body", "zero-with-body"])
    body = r.body or b"hello"
    _drop_framing(r)
    if v == "exact":
        r.headers.append(("Content-Length", str(len(body))))
        r.body = body
    elif v == "short":  # the body is one byte short: both should wait
        r.headers.append(("Content-Length", str(len(body) + 1)))
        r.body = body
    elif v == "long":  # extra bytes after the body: the start of a second "request"
        r.headers.append(("Content-Length", str(len(body))))
        r.body = body + b"XYZ"
    elif v == "get-body":
        r.method = "GET"
        r.headers.append(("Content-Length", "5"))
        r.body = b"hello"
    elif v == "zero-with-body":
        r.headers.append(("Content-Length", "0"))
        r.body = b""
        r.pipelined = b"hello"
    elif v == "empty":
        r.headers.append(("Content-Length", ""))
        r.body = b""
    else:
        r.headers.append(("Content-Length", v))
        r.body = body[:5].ljust(5, b"x")
    return f"content-length={v!r}"


def m_transfer_encoding(r, g):
    v = g.choice(["chunked", "chunked,chunked", "gzip, chunked", "chunked, gzip", "Chunked",
                  " chunked", "identity", "xchunked", "chunked;q=1", "chunked ", "CHUNKED",
                  "chunked-http10", "te-and-cl", "te-and-cl-after", "te-and-bad-cl", "empty"])
    body = r.body or b"hello"
    _drop_framing(r)
    if r.method in ("GET", "HEAD"):
        r.method = "POST"
    if v == "te-and-cl":
        r.headers += [("Content-Length", "3"), ("Transfer-Encoding", "chunked")]
        r.body = chunked(body)
    elif v == "te-and-cl-after":
        r.headers += [("Transfer-Encoding", "chunked"), ("Content-Length", str(len(body)))]
        r.body = chunked(body)
    elif v == "te-and-bad-cl":
        r.headers += [("Transfer-Encoding", "chunked"), ("Content-Length", "abc")]
        r.body = chunked(body)
    elif v == "chunked-http10":
        r.version = "HTTP/1.0"
        r.headers.append(("Transfer-Encoding", "chunked"))
        r.body = chunked(body)
    elif v == "identity":
        r.headers.append(("Transfer-Encoding", "identity"))
        r.body = body
    elif v == "empty":
        r.headers.append(("Transfer-Encoding", ""))
        r.body = chunked(body)
    else:
        r.headers.append(("Transfer-Encoding", v))
        r.body = chunked(body)
    return f"transfer-encoding={v!r}"


def m_chunk_body(r, g):
    v = g.choice(["valid", "size-zz", "size--1", "size-0x5", "size-too-big", "size-plus",
                  "size-space", "size-long-hex", "size-leading-zeros", "no-final-crlf",
                  "ext", "ext-empty", "ext-space", "ext-quoted", "ext-bad-char", "lf-only",
                  "trailer", "trailer-bad", "trailer-cl", "trailer-host", "data-no-crlf",
                  "empty-body", "size-upper"])
    body = r.body or b"hello world"
    _drop_framing(r)
    if r.method in ("GET", "HEAD"):
        r.method = "POST"
    r.headers.append(("Transfer-Encoding", "chunked"))
    c = {"valid": lambda: chunked(body),
         "size-zz": lambda: b"zz\r\nhello\r\n0\r\n\r\n",
         "size--1": lambda: b"-1\r\nhello\r\n0\r\n\r\n",
         "size-0x5": lambda: b"0x5\r\nhello\r\n0\r\n\r\n",
         "size-too-big": lambda: b"7\r\nhello\r\n0\r\n\r\n",
         "size-plus": lambda: b"+5\r\nhello\r\n0\r\n\r\n",
         "size-space": lambda: b"5 \r\nhello\r\n0\r\n\r\n",
         "size-long-hex": lambda: b"00000000000000000005\r\nhello\r\n0\r\n\r\n",
         "size-leading-zeros": lambda: b"005\r\nhello\r\n0\r\n\r\n",
         "size-upper": lambda: b"A\r\nhelloworld\r\n0\r\n\r\n",
         "no-final-crlf": lambda: b"5\r\nhello\r\n0\r\n",
         "ext": lambda: chunked(body, ext=";name=val"),
         "ext-empty": lambda: chunked(body, ext=";"),
         "ext-space": lambda: chunked(body, ext=" ;x"),
         "ext-quoted": lambda: chunked(body, ext=';x="a b"'),
         "ext-bad-char": lambda: chunked(body, ext=";x=\x01"),
         "lf-only": lambda: b"5\nhello\n0\n\n",
         "trailer": lambda: chunked(body, trailers=["X-Trailer: t"]),
         "trailer-bad": lambda: chunked(body, trailers=["bad trailer"]),
         "trailer-cl": lambda: chunked(body, trailers=["Content-Length: 5"]),
         "trailer-host": lambda: chunked(body, trailers=["Host: evil"]),
         "data-no-crlf": lambda: b"5\r\nhelloXX0\r\n\r\n",
         "empty-body": lambda: b"0\r\n\r\n"}[v]
    r.body = c()
    return f"chunked={v}"


def m_bare_lf(r, g):
    v = g.choice(["all", "request-line", "one-header", "end-of-head", "bare-cr"])
    if v == "all":
        r.eol = "\n"
    elif v == "request-line":
        r.raw_patch = lambda h: h.replace(b"\r\n", b"\n", 1)
    elif v == "one-header":
        def patch(h):
            i = h.find(b"\r\n")
            j = h.find(b"\r\n", i + 2)
            return h[:j] + b"\n" + h[j + 2 :] if j > 0 and j < len(h) - 4 else h
        r.raw_patch = patch
    elif v == "end-of-head":
        r.raw_patch = lambda h: h[:-4] + b"\r\n\n"
    else:
        r.raw_patch = lambda h: h.replace(b"\r\n", b"\r", 1)
    return f"bare-lf={v}"


def m_pipeline(r, g):
    v = g.choice(["get", "post", "two", "garbage", "http10"])
    nxt = {"get": b"GET /second HTTP/1.1\r\nHost: example.com\r\n\r\n",
           "post": b"POST /second HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc",
           "two": b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: b\r\n\r\n",
           "garbage": b"NOT HTTP AT ALL\r\n\r\n",
           "http10": b"GET /ten HTTP/1.0\r\n\r\n"}[v]
    r.pipelined += nxt
    return f"pipeline={v}"


def classify_byte(b):
    if b < 0x20 or b == 0x7F:
        return "ctl"
    if b >= 0x80:
        return "high"
    if chr(b) in "()<>@,;:\\\"/[]?={} \t":
        return "sep"
    return "token"


def m_byteflip(r, g):
    pos_seed, byte = g.random(), g.randrange(256)
    old = r.raw_patch

    def patch(h):
        if old:
            h = old(h)
        i = min(int(pos_seed * (len(h) - 4)), len(h) - 5)
        return h[:i] + bytes([byte]) + h[i + 1 :]

    r.raw_patch = patch
    h = r.head()
    i = min(int(pos_seed * (len(h) - 4)), len(h) - 5)
    first_eol = h.find(b"\n")
    region = "request-line" if i < first_eol else "header"
    if region == "header":
        ls = h.rfind(b"\n", 0, i) + 1
        colon = h.find(b":", ls)
        region = "header-name" if colon < 0 or i < colon else "header-value"
    return f"byteflip={region}:{classify_byte(byte)}"


MUTATIONS = {
    "method": (m_method, 3), "target": (m_target, 5), "version": (m_version, 3),
    "rl_spaces": (m_rl_spaces, 2), "header_name": (m_header_name, 3),
    "header_value": (m_header_value, 3), "obs_fold": (m_obs_fold, 2),
    "header_syntax": (m_header_syntax, 3), "duplicate": (m_duplicate, 3), "host": (m_host, 4),
    "size": (m_size, 2), "hop": (m_hop, 3), "special": (m_special, 3),
    "content_length": (m_content_length, 4), "transfer_encoding": (m_transfer_encoding, 4),
    "chunk_body": (m_chunk_body, 5), "bare_lf": (m_bare_lf, 2), "pipeline": (m_pipeline, 3),
    "byteflip": (m_byteflip, 4),
}
NAMES = list(MUTATIONS)
WEIGHTS = [MUTATIONS[n][1] for n in NAMES]


def build(case):
    """case = (base_seed, [(mutation, seed)]) -> (Req, labels)."""
    base_seed, muts = case
    r = base(base_seed)
    labels = []
    for name, seed in muts:
        labels.append(MUTATIONS[name][0](r, random.Random(seed)))
    return r, labels


def count_requests(r):
    """How many answers to wait for: the request, and each whole one pipelined after it."""
    return 1 + len(re.findall(rb"HTTP/1\.[01]\r\n|NOT HTTP AT ALL", r.pipelined))


# ---------------------------------------------------------------------------------------------
# Running and comparing.


def normalise(records):
    out = []
    for rec in records:
        hs = []
        for n, v in rec["headers"]:
            if n.lower() == "x-request-id" and UUID.match(v):
                v = "<uuid>"
            hs.append([n, v])
        out.append({"request_line": rec["request_line"], "headers": hs, "framing": rec["framing"],
                    "body": rec["body"], "chunks": rec["chunks"], "trailers": rec["trailers"],
                    "complete": rec["complete"]})
    return out


def upstream_diff(a, b):
    """Aspects in which two upstream views differ (sorted names), empty when the same."""
    if len(a) != len(b):
        return [f"requests {len(a)} vs {len(b)}"]
    aspects = set()
    for x, y in zip(a, b):
        if x["request_line"] != y["request_line"]:
            xp, yp = x["request_line"].split(" "), y["request_line"].split(" ")
            for i, what in enumerate(["method", "target", "version"]):
                if (xp[i] if i < len(xp) else None) != (yp[i] if i < len(yp) else None):
                    aspects.add(what)
        xh = {}
        for n, v in x["headers"]:
            xh.setdefault(n.lower(), []).append(v)
        yh = {}
        for n, v in y["headers"]:
            yh.setdefault(n.lower(), []).append(v)
        for n in sorted(set(xh) | set(yh)):
            if n not in yh:
                aspects.add(f"header {n} legate-only")
            elif n not in xh:
                aspects.add(f"header {n} envoy-only")
            elif xh[n] != yh[n]:
                aspects.add(f"header {n} value")
        # Header order across names (Envoy sends Host first) and where chunk boundaries fall
        # (both stream) are not differences; the name's case and chunk extensions are.
        if sorted(n for n, _ in x["headers"]) != sorted(n for n, _ in y["headers"]):
            if not any(a.startswith("header ") for a in aspects):
                aspects.add("header name case")
        if any(";" in c for c in x["chunks"]) != any(";" in c for c in y["chunks"]):
            aspects.add("chunk extensions")
        for k in ("framing", "body", "trailers", "complete"):
            if x[k] != y[k]:
                aspects.add(k)
    return sorted(aspects)


def status_class(s):
    return f"{s // 100}xx" if isinstance(s, int) else s


def compare(lg, ev):
    """Kind of difference between the two sides' results, or None."""
    if lg.get("crash"):
        return "crash: legate exited"
    if ev.get("crash"):
        return "crash: envoy exited"
    ls, es = lg["statuses"], ev["statuses"]
    if ls != es:
        lc = [status_class(s) for s in ls]
        ec = [status_class(s) for s in es]
        major = any(
            (a == "2xx" and b == "4xx") or (a == "4xx" and b == "2xx") for a, b in zip(lc, ec))
        tag = "major" if major else ("status-class" if lc != ec else "status-code")
        return f"{tag}: legate {ls} envoy {es}"
    d = upstream_diff(lg["upstream"], ev["upstream"])
    if d:
        return "upstream: " + "; ".join(d)
    return None


class Fuzzer:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.legate = Proxy("legate", [args.legate], workdir, 0)
        self.envoy = Proxy("envoy", [args.envoy], workdir, args.base_id)
        self.case_no = 0
        self.classes = {}
        self.runs = 0
        self.crashes = {"legate": 0, "envoy": 0}

    def run_one(self, proxy, payload, n, heads, case_no, out):
        proxy.upstream.case = case_no
        st, ended = exchange(proxy.listen, payload, n, heads)
        time.sleep(0.01)
        crash = not proxy.alive()
        out[proxy.name] = {"statuses": st, "ended": ended,
                           "upstream": normalise(proxy.upstream.take(case_no)), "crash": crash}

    def run(self, case):
        r, labels = build(case)
        payload = r.bytes()
        n = count_requests(r)
        heads = [r.method == "HEAD"] + [False] * 4
        self.case_no += 1
        self.runs += 1
        out = {}
        ts = [threading.Thread(target=self.run_one, args=(p, payload, n, heads, self.case_no, out))
              for p in (self.legate, self.envoy)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        for p in (self.legate, self.envoy):
            if not p.alive():
                self.crashes[p.name] += 1
                with open(os.path.join(self.workdir, f"{p.name}.crash-{self.case_no}.bin"), "wb") as f:
                    f.write(payload)
                p.start()
        if "legate" not in out or "envoy" not in out:
            return payload, labels, out, "harness: a side did not finish"
        return payload, labels, out, compare(out["legate"], out["envoy"])

    def minimise(self, case, kind):
        base_seed, muts = case
        changed = True
        while changed:
            changed = False
            if base_seed != 0:
                _, _, _, k = self.run((0, muts))
                if k == kind:
                    base_seed = 0
                    changed = True
            for i in range(len(muts)):
                if len(muts) == 1:
                    break
                trial = muts[:i] + muts[i + 1 :]
                _, _, _, k = self.run((base_seed, trial))
                if k == kind:
                    muts = trial
                    changed = True
                    break
        return (base_seed, muts)

    def record(self, case, payload, labels, out, kind):
        label_set = frozenset(labels)
        for (k, ls), c in self.classes.items():
            if k == kind and ls <= label_set:
                c["count"] += 1
                return
        mcase = self.minimise(case, kind)
        payload, labels, out, k2 = self.run(mcase)
        if k2 != kind:  # flaky under minimisation: keep the original if it reproduces
            mcase = case
            payload, labels, out, k2 = self.run(case)
            if k2 != kind:  # timing, not the input: kept apart
                kind = "flaky (did not reproduce): " + kind
        key = (kind, frozenset(labels))
        c = self.classes.get(key)
        if c is None:
            self.classes[key] = {"kind": kind, "labels": sorted(labels), "count": 1,
                                 "case": [mcase[0], mcase[1]], "example": payload.decode("latin-1"),
                                 "legate": out.get("legate"), "envoy": out.get("envoy")}
            print(f"  new class: {kind} <- {sorted(labels)}", flush=True)
        else:
            c["count"] += 1

    def loop(self):
        g = random.Random(self.args.seed)
        started = time.monotonic()
        cases = 0
        while cases < self.args.cases and time.monotonic() - started < self.args.seconds:
            k = g.choice([1, 1, 2, 2, 3])
            muts = [(n, g.randrange(1 << 30)) for n in g.choices(NAMES, WEIGHTS, k=k)]
            case = (g.randrange(1 << 30), muts)
            payload, labels, out, kind = self.run(case)
            cases += 1
            if kind:
                self.record(case, payload, labels, out, kind)
            if cases % 500 == 0:
                print(f"{cases} cases, {len(self.classes)} classes, "
                      f"{time.monotonic() - started:.0f} s", flush=True)
        return cases, time.monotonic() - started

    def stop(self):
        self.legate.stop()
        self.envoy.stop()


def summary(args, cases, secs, fz):
    classes = sorted(fz.classes.values(), key=lambda c: (not c["kind"].startswith(("crash", "major")),
                                                          c["kind"], c["labels"]))
    # A class whose minimal mutations include another class's whole set is most likely that
    # difference meeting a second one: listed apart, after the classes with their own cause.
    sets = [frozenset(c["labels"]) for c in classes]
    for c, s in zip(classes, sets):
        c["interaction"] = any(o < s for o in sets)
    classes.sort(key=lambda c: c["interaction"])
    lines = [f"# difffuzz: legate vs Envoy, seed {args.seed}", "",
             f"{cases} cases ({fz.runs} runs incl. minimisation) in {secs:.0f} s; "
             f"{len(classes)} difference classes; proxy crashes: legate {fz.crashes['legate']}, "
             f"envoy {fz.crashes['envoy']}.", "",
             "| # | kind | minimal mutations | cases | example (first 160 bytes) |",
             "|---|------|-------------------|-------|---------------------------|"]
    for i, c in enumerate(classes, 1):
        if c["interaction"] and (i == 1 or not classes[i - 2]["interaction"]):
            lines.append("| | **interactions: the mutations of an earlier class plus others** | | | |")
        ex = c["example"][:160].encode("unicode_escape").decode().replace("|", "\\|")
        kind = c["kind"].replace("|", "\\|")
        lines.append(f"| {i} | {kind} | {', '.join(c['labels']).replace('|', '/')} | {c['count']} | `{ex}` |")
    return "\n".join(lines) + "\n", classes


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--legate", default=os.path.join(ROOT, "target", "release", "legate"))
    ap.add_argument("--envoy", default="/work/envoy/envoy/_bin/envoy")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--cases", type=int, default=10**9)
    ap.add_argument("--base-id", type=int, default=4700 + os.getpid() % 1000)
    ap.add_argument("--out", default=None, help="directory for differences.jsonl and summary.md")
    ap.add_argument("--keep", action="store_true", help="keep the proxies' work dir")
    ap.add_argument("--replay", default=None, metavar="CASE",
                    help='run one case, e.g. \'[0, [["target", 123]]]\' (a class\'s "case" in '
                         "differences.jsonl), print both sides and exit")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="difffuzz-")
    if args.replay:
        fz = Fuzzer(args, workdir)
        try:
            base_seed, muts = json.loads(args.replay)
            payload, labels, out, kind = fz.run((base_seed, [tuple(m) for m in muts]))
        finally:
            fz.stop()
        print(json.dumps({"labels": labels, "request": payload.decode("latin-1"), "kind": kind,
                          "legate": out.get("legate"), "envoy": out.get("envoy")}, indent=1))
        shutil.rmtree(workdir, ignore_errors=True)
        return
    out = args.out or workdir
    os.makedirs(out, exist_ok=True)
    fz = Fuzzer(args, workdir)
    try:
        cases, secs = fz.loop()
    finally:
        fz.stop()
    text, classes = summary(args, cases, secs, fz)
    with open(os.path.join(out, "differences.jsonl"), "w") as f:
        for c in classes:
            c = dict(c, example=c["example"][:4096])  # replay `case` for the whole bytes
            for side in ("legate", "envoy"):
                for u in (c.get(side) or {}).get("upstream", []):
                    u["headers"] = [[n, v[:256]] for n, v in u["headers"]][:120]
            f.write(json.dumps(c) + "\n")
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(text)
    print(text)
    if args.keep or out == workdir:
        print(f"written: {out}/differences.jsonl, {out}/summary.md; proxy logs in {workdir}")
    else:
        print(f"written: {out}/differences.jsonl, {out}/summary.md")
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
