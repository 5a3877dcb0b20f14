"""The demo app behind each sidecar in compose.yaml (Envoy's front-proxy sandbox's service):
answers every GET with its service name and the container's hostname and address, so that
round robin over scaled replicas shows in the answers. Python's standard library only."""

import http.server
import os
import socket

SERVICE = os.environ.get("SERVICE_NAME", "1")
HOST = socket.gethostname()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (
            f"Hello from behind legate (service {SERVICE})! "
            f"hostname: {HOST} resolved hostname: {socket.gethostbyname(HOST)}\n"
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("127.0.0.1", 8080), Handler).serve_forever()
