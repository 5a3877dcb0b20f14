#!/usr/bin/env python3
"""The examples' demo app (Python standard library only), like the Flask app of Envoy's
front-proxy sandbox: every GET answers one line saying which service and which instance
answered, so round robin shows in the output.

    Hello from behind legate (service 1)! hostname: service1-a resolvedhostname: 127.0.0.11

Usage: service.py --bind 127.0.0.11 --port 8081 --service 1 --instance service1-a
       [--banner TEXT]   (replaces the whole line, e.g. "httpd instance 1")
"""

import argparse
import http.server
import socketserver


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--service", default="1")
    p.add_argument("--instance", required=True, help="the instance's name, shown as its hostname")
    p.add_argument("--banner", help="answer this line instead of the front-proxy greeting")
    args = p.parse_args()
    line = args.banner or (
        f"Hello from behind legate (service {args.service})! "
        f"hostname: {args.instance} resolvedhostname: {args.bind}"
    )
    body = (line + "\n").encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(body)))
            self.send_header("x-instance", args.instance)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    Server((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
