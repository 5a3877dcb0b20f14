#!/usr/bin/env python3
"""Certificate rotation soak: HTTPS load on legate while its certificate and key are rotated
N times (default 100) in each write style legate follows:

  rename     a temporary file renamed over the key, then over the certificate
  in_place   the certificate then the key truncated and rewritten (as `cp` or `cat >`)
  recreate   both files deleted, then the key and the certificate written anew
  k8s        a Kubernetes Secret volume: a new `..YYYY` directory, `..data` swapped to it

Load: LOAD_THREADS threads make new TLS handshakes (Python `ssl`, verifying the chain and the
name against the test CA) back to back, each followed by one request, and one keep-alive
connection sends a request every few milliseconds for the whole run. Recorded per handshake:
its start time and the serial the server presented.

Pass criteria (the issue's): zero failed handshakes and zero failed keep-alive requests, and
after each rotation completes (the last write returned), every handshake that starts more
than 50 ms later sees the new serial. Also reported: how long after a rotation the first
handshake presented the new serial (p50/p99/max over the rotations of the style), measured
by a prober thread that handshakes back to back.

Usage: benches/tls_rotation_soak.py [--legate target/release/legate] [--rotations 100]
Needs Python's `cryptography` for the certificates. Exits 1 when a criterion fails.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

LOAD_THREADS = 2
WINDOW = 0.050  # a handshake starting this long after a rotation must see the new serial
SETTLE_GAP = 0.150  # between rotations (the watcher's quiet period is 100 ms)


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soak ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return serial, cert_pem, key_pem


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


class Files:
    """The certificate and key as one write style rotates them."""

    def __init__(self, root, style, pair):
        self.style = style
        self.root = root
        if style == "k8s":
            self.vol = os.path.join(root, "secret")
            os.makedirs(self.vol)
            self.gen = 0
            ts = self._generation(pair)
            os.symlink(ts, os.path.join(self.vol, "..data"))
            for n in ("tls.crt", "tls.key"):
                os.symlink(os.path.join("..data", n), os.path.join(self.vol, n))
            self.cert = os.path.join(self.vol, "tls.crt")
            self.key = os.path.join(self.vol, "tls.key")
        else:
            self.cert = os.path.join(root, "server.crt")
            self.key = os.path.join(root, "server.key")
            write(self.cert, pair[1])
            write(self.key, pair[2])

    def _generation(self, pair):
        self.gen += 1
        ts = "..2026_12_06_%06d.%d" % (self.gen, self.gen)
        d = os.path.join(self.vol, ts)
        os.makedirs(d)
        write(os.path.join(d, "tls.crt"), pair[1])
        write(os.path.join(d, "tls.key"), pair[2])
        return ts

    def rotate(self, pair):
        _, cert, key = pair
        if self.style == "rename":
            for path, data in ((self.key, key), (self.cert, cert)):
                write(path + ".tmp", data)
                os.rename(path + ".tmp", path)
        elif self.style == "in_place":
            write(self.cert, cert)
            write(self.key, key)
        elif self.style == "recreate":
            os.remove(self.cert)
            os.remove(self.key)
            write(self.key, key)
            write(self.cert, cert)
        elif self.style == "k8s":
            old = os.readlink(os.path.join(self.vol, "..data"))
            ts = self._generation(pair)
            tmp = os.path.join(self.vol, "..data_tmp")
            os.symlink(ts, tmp)
            os.rename(tmp, os.path.join(self.vol, "..data"))
            shutil.rmtree(os.path.join(self.vol, old))


def config(port, admin_port, cert, key):
    return json.dumps(
        {
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
            "static_resources": {
                "listeners": [
                    {
                        "name": "https",
                        "address": {"socket_address": {"address": "127.0.0.1", "port_value": port}},
                        "filter_chains": [
                            {
                                "filters": [
                                    {
                                        "name": "hcm",
                                        "typed_config": {
                                            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                                            "stat_prefix": "https",
                                            "route_config": {
                                                "virtual_hosts": [
                                                    {
                                                        "name": "v",
                                                        "domains": ["*"],
                                                        "routes": [
                                                            {
                                                                "match": {"prefix": "/"},
                                                                "direct_response": {
                                                                    "status": 200,
                                                                    "body": {"inline_string": "ok"},
                                                                },
                                                            }
                                                        ],
                                                    }
                                                ]
                                            },
                                            "http_filters": [
                                                {
                                                    "name": "envoy.filters.http.router",
                                                    "typed_config": {
                                                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                                    },
                                                }
                                            ],
                                        },
                                    }
                                ],
                                "transport_socket": {
                                    "name": "envoy.transport_sockets.tls",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                                        "common_tls_context": {
                                            "tls_certificates": [
                                                {
                                                    "certificate_chain": {"filename": cert},
                                                    "private_key": {"filename": key},
                                                }
                                            ]
                                        },
                                    },
                                },
                            }
                        ],
                    }
                ]
            },
        }
    )


def handshake(ctx, port):
    """(start time, serial) of one new handshake followed by one request."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
            s.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            if not data.startswith(b"HTTP/1.1 200"):
                raise RuntimeError("bad response %r" % data[:40])
    return start, x509.load_der_x509_certificate(der).serial_number


def keep_alive(ctx, port, stop, out):
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        while not stop.is_set():
            s.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            data = b""
            while not data.endswith(b"ok"):
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("keep-alive connection closed")
                data += chunk
            out["requests"] += 1
            time.sleep(0.005)
        s.close()
    except Exception as e:  # noqa: BLE001 - any failure is a soak failure
        out["errors"].append(repr(e))


def load(ctx, port, stop, records, failures):
    while not stop.is_set():
        try:
            records.append(handshake(ctx, port))
        except Exception as e:  # noqa: BLE001
            failures.append(repr(e))


def run_style(args, style, ca_key, ca_cert, ca_file):
    root = tempfile.mkdtemp(prefix="soak-%s-" % style)
    pairs = [make_leaf(ca_key, ca_cert) for _ in range(args.rotations + 1)]
    files = Files(root, style, pairs[0])
    port, admin = free_port(), free_port()
    cfg = os.path.join(root, "legate.json")
    write(cfg, config(port, admin, files.cert, files.key).encode())
    log_path = os.path.join(root, "legate.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([args.legate, "-c", cfg, "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=log)
    ctx = ssl.create_default_context(cafile=ca_file)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                handshake(ctx, port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        stop = threading.Event()
        records, failures = [], []
        ka = {"requests": 0, "errors": []}
        threads = [threading.Thread(target=load, args=(ctx, port, stop, records, failures)) for _ in range(LOAD_THREADS)]
        threads.append(threading.Thread(target=keep_alive, args=(ctx, port, stop, ka)))
        for t in threads:
            t.start()
        rotations = []  # (time the last write returned, serial)
        first_seen = []
        cpu0 = cpu_seconds(proc.pid)
        for i in range(1, args.rotations + 1):
            files.rotate(pairs[i])
            done = time.monotonic()
            rotations.append((done, pairs[i][0]))
            # The prober: back-to-back handshakes until the new serial shows.
            while True:
                try:
                    start, serial = handshake(ctx, port)
                except Exception as e:  # noqa: BLE001
                    failures.append(repr(e))
                    continue
                records.append((start, serial))
                if serial == pairs[i][0]:
                    first_seen.append(start - done)
                    break
                if start - done > 5:
                    failures.append("rotation %d never served" % i)
                    break
            time.sleep(SETTLE_GAP)
        cpu = cpu_seconds(proc.pid) - cpu0
        stop.set()
        for t in threads:
            t.join()
        # A handshake starting more than WINDOW after rotation i completed must present
        # rotation i's serial or a later one (it may overlap the next rotation).
        order = {pair[0]: i for i, pair in enumerate(pairs)}
        stale = 0
        for start, seen in records:
            latest = max((i + 1 for i, (done, _) in enumerate(rotations) if done + WINDOW < start), default=0)
            if order.get(seen, -1) < latest:
                stale += 1
        stats = urllib.request.urlopen("http://127.0.0.1:%d/stats" % admin, timeout=5).read().decode()
        counters = {
            k: int(v)
            for k, v in (l.split(": ", 1) for l in stats.splitlines() if ": " in l)
            if v.strip().isdigit() and "server_ssl_socket_factory" in k
        }
        with open(log_path, errors="replace") as f:
            rejections = [l for l in f.read().split("\n\n") if "rejected" in l]
        first_seen.sort()
        pick = lambda q: first_seen[min(len(first_seen) - 1, int(q * len(first_seen)))] * 1000 if first_seen else -1
        return {
            "style": style,
            "rotations": args.rotations,
            "handshakes": len(records),
            "failed_handshakes": len(failures),
            "failures_sample": failures[:3],
            "keep_alive_requests": ka["requests"],
            "keep_alive_errors": ka["errors"],
            "stale_after_50ms": stale,
            "machine_load_1min": os.getloadavg()[0],
            "new_serial_first_seen_ms": {"p50": round(pick(0.5), 2), "p99": round(pick(0.99), 2), "max": round(pick(1.0), 2)},
            "legate_cpu_s": round(cpu, 2),
            "counters": counters,
            "rejections_logged": rejections[:2],
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--legate", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "legate"))
    p.add_argument("--rotations", type=int, default=100)
    p.add_argument("--styles", default="rename,in_place,recreate,k8s")
    args = p.parse_args()
    ca_key, ca_cert = make_ca()
    tmp = tempfile.mkdtemp(prefix="soak-ca-")
    ca_file = os.path.join(tmp, "ca.pem")
    write(ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    ok = True
    for style in args.styles.split(","):
        r = run_style(args, style, ca_key, ca_cert, ca_file)
        print(json.dumps(r), flush=True)
        ok &= r["failed_handshakes"] == 0 and r["stale_after_50ms"] == 0 and not r["keep_alive_errors"]
    shutil.rmtree(tmp, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
