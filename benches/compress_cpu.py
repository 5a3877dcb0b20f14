#!/usr/bin/env python3
"""CPU of gzip level 6 on a 100 KiB JSON response: legate against Envoy 1.40, side by side.

Starts one upstream (Python, serving the same 100 KiB JSON document), then Envoy and legate
with the same bootstrap (a compressor filter, gzip COMPRESSION_LEVEL_6, default window and
memory level), sends N requests with `accept-encoding: gzip` to each over a keep-alive
connection, checks every answer decodes to the document, and prints the user+sys CPU each
proxy process spent (from /proc/<pid>/stat) per request. Run it on a quiet machine; it says
the load average before and after.

    python3 benches/compress_cpu.py --envoy /path/to/envoy --legate target/release/legate [-n 2000]
"""
import argparse, gzip, http.client, http.server, json, os, socket, subprocess, sys, tempfile, threading, time

DOC = json.dumps([{"id": i, "name": "item-%d" % i, "tags": ["a", "b", "c"], "price": i * 1.25,
                   "description": "lorem ipsum dolor sit amet " * 3} for i in range(1200)]).encode()[:100 * 1024]


class Up(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(DOC)))
        self.end_headers()
        self.wfile.write(DOC)

    def log_message(self, *a):
        pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def config(listen, admin, up):
    return json.dumps({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin}}},
        "static_resources": {
            "listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": listen}},
                           "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
                               "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                               "stat_prefix": "b",
                               "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                                   {"match": {"prefix": "/"}, "route": {"cluster": "up"}}]}]},
                               "http_filters": [
                                   {"name": "envoy.filters.http.compressor", "typed_config": {
                                       "@type": "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.Compressor",
                                       "compressor_library": {"name": "g", "typed_config": {
                                           "@type": "type.googleapis.com/envoy.extensions.compression.gzip.compressor.v3.Gzip",
                                           "compression_level": "COMPRESSION_LEVEL_6"}}}},
                                   {"name": "envoy.filters.http.router", "typed_config": {
                                       "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}],
            "clusters": [{"name": "up", "connect_timeout": "1s", "type": "STATIC", "load_assignment": {
                "cluster_name": "up", "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                    "address": "127.0.0.1", "port_value": up}}}}]}]}}]}})


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(name, argv, listen, n):
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        c = http.client.HTTPConnection("127.0.0.1", listen, timeout=10)
        for _ in range(20):  # warm-up
            c.request("GET", "/", headers={"accept-encoding": "gzip"})
            c.getresponse().read()
        before = cpu(proc.pid)
        wire = 0
        for _ in range(n):
            c.request("GET", "/", headers={"accept-encoding": "gzip"})
            r = c.getresponse()
            body = r.read()
            assert r.getheader("content-encoding") == "gzip" and gzip.decompress(body) == DOC, name
            wire += len(body)
        spent = cpu(proc.pid) - before
        return spent, wire // n
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    a = argparse.ArgumentParser()
    a.add_argument("--envoy", required=True)
    a.add_argument("--legate", required=True)
    a.add_argument("-n", type=int, default=2000)
    args = a.parse_args()
    up = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", up), Up)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    load0 = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory() as d:
        for name, binary, extra in (("envoy", args.envoy, ["--base-id", str(os.getpid() % 60000)]),
                                    ("legate", args.legate, [])):
            listen, admin = free_port(), free_port()
            path = os.path.join(d, name + ".json")
            with open(path, "w") as f:
                f.write(config(listen, admin, up))
            argv = [binary, "-c", path, "--concurrency", "1", "--disable-hot-restart"] + extra
            results[name] = run(name, argv, listen, args.n)
    load1 = os.getloadavg()[0]
    print("load average before %.2f after %.2f, %d requests of %d bytes each" % (load0, load1, args.n, len(DOC)))
    for name, (spent, size) in results.items():
        print("%-6s cpu %.3f s = %.1f us/request, %d bytes gzipped" % (name, spent, spent / args.n * 1e6, size))
    print("legate/envoy cpu ratio %.2f" % (results["legate"][0] / max(results["envoy"][0], 1e-9)))


if __name__ == "__main__":
    main()
