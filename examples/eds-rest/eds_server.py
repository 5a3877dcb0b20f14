#!/usr/bin/env python3
"""A small REST discovery server (xDS over REST, JSON) for one EDS service.

The proxy POSTs `/v2/discovery:endpoints` (the v2 API) or `/v3/discovery:endpoints` (v3) every
`refresh_delay`; the server answers with a DiscoveryResponse holding one ClusterLoadAssignment
for the service asked for, typed for the API version of the request path. The script that runs
the example changes the endpoints through the control path:

    curl -X PUT --data '127.0.0.1:8081 127.0.0.1:8082' http://ADDR/control/endpoints
    curl http://ADDR/control/polls        # how many discovery requests came in, per path

Every discovery request is printed on stdout as `POST <path> type_url=<...> version=<...>`.
Usage: eds_server.py ADDRESS PORT   (Python standard library only)
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TYPE_URLS = {
    "/v2/discovery:endpoints": "type.googleapis.com/envoy.api.v2.ClusterLoadAssignment",
    "/v3/discovery:endpoints": "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
}

state_lock = threading.Lock()
state = {"endpoints": [], "version": 0, "polls": {}}


def assignment(service, type_url, endpoints):
    lb_endpoints = []
    for ep in endpoints:
        host, port = ep.rsplit(":", 1)
        lb_endpoints.append({"endpoint": {"address": {"socket_address": {"address": host, "port_value": int(port)}}}})
    cla = {"@type": type_url, "cluster_name": service}
    if lb_endpoints:
        cla["endpoints"] = [{"lb_endpoints": lb_endpoints}]
    return cla


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        body = self.read_body()
        type_url = TYPE_URLS.get(self.path)
        if type_url is None:
            return self.answer(404, "unknown path\n", "text/plain")
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return self.answer(400, "bad JSON\n", "text/plain")
        asked = request.get("type_url", "")
        with state_lock:
            state["polls"][self.path] = state["polls"].get(self.path, 0) + 1
            endpoints, version = list(state["endpoints"]), state["version"]
        print(f"POST {self.path} type_url={asked} version={request.get('version_info', '')!r}", flush=True)
        if asked != type_url:
            return self.answer(400, f"type_url {asked} does not match {self.path}\n", "text/plain")
        resources = [assignment(name, type_url, endpoints) for name in request.get("resource_names", [])]
        self.answer(200, json.dumps({"version_info": str(version), "resources": resources, "type_url": type_url}))

    def do_PUT(self):
        body = self.read_body().decode()
        if self.path != "/control/endpoints":
            return self.answer(404, "unknown path\n", "text/plain")
        with state_lock:
            state["endpoints"] = body.split()
            state["version"] += 1
            version = state["version"]
        self.answer(200, f"version {version}: {' '.join(body.split()) or '(no endpoints)'}\n", "text/plain")

    def do_GET(self):
        if self.path != "/control/polls":
            return self.answer(404, "unknown path\n", "text/plain")
        with state_lock:
            self.answer(200, json.dumps(state["polls"]))

    def log_message(self, *args):
        pass


def main():
    address, port = sys.argv[1], int(sys.argv[2])
    server = ThreadingHTTPServer((address, port), Handler)
    print(f"REST discovery server on {address}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
