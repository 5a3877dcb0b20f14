#!/usr/bin/env python3
"""A tiny authoritative DNS server for the examples (Python standard library only).

It answers A queries over UDP from a records file that it re-reads whenever the file changes,
so a script "scales" a service by appending a line. Records file, one name per line:

    service1  127.0.0.11 127.0.0.12     # every address is one A record
    service2  127.0.0.21                # '#' starts a comment

A known name asked for another type (AAAA, ...) gets an empty NOERROR answer; an unknown name
gets NXDOMAIN. Every record carries the TTL given by --ttl (default 5 s), which a cluster with
`respect_dns_ttl: true` follows.

Usage: dns_server.py --records FILE [--bind 127.0.0.53] [--port 5353] [--ttl 5] [--log FILE]
"""

import argparse
import os
import socket
import struct
import sys
import time

QTYPE_A = 1


class Records:
    """The records file, read again when its modification time or size changes."""

    def __init__(self, path):
        self.path = path
        self.stamp = None
        self.table = {}

    def lookup(self, name):
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self.stamp:
            self.stamp = stamp
            self.table = self._read()
        return self.table.get(name)

    def _read(self):
        table = {}
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.readlines()
        except OSError:
            return table
        for line in lines:
            words = line.split("#", 1)[0].split()
            if not words:
                continue
            name = words[0].rstrip(".").lower()
            addrs = table.setdefault(name, [])
            for ip in words[1:]:
                try:
                    addrs.append(socket.inet_aton(ip))
                except OSError:
                    print(f"dns_server: ignoring bad address {ip!r} for {name}", file=sys.stderr)
        return table


def parse_question(msg):
    """(id, flags, qname, qtype, end of question) of a query, or None when malformed."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount < 1:
        return None
    labels, i = [], 12
    while True:
        if i >= len(msg):
            return None
        n = msg[i]
        i += 1
        if n == 0:
            break
        if n & 0xC0 or i + n > len(msg):
            return None
        labels.append(msg[i : i + n].decode("ascii", "replace"))
        i += n
    if i + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[i : i + 4])
    return qid, flags, ".".join(labels).lower(), qtype, i + 4


def answer(msg, records, ttl):
    q = parse_question(msg)
    if q is None:
        return None
    qid, flags, name, qtype, end = q
    question = msg[12:end]
    addrs = records.lookup(name)
    rcode = 3 if addrs is None else 0  # NXDOMAIN for unknown names
    answers = addrs if (addrs and qtype == QTYPE_A) else []
    # QR, opcode copied, AA, RD copied, RA.
    out_flags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode
    head = struct.pack("!HHHHHH", qid, out_flags, 1, len(answers), 0, 0)
    body = b"".join(struct.pack("!HHHIH", 0xC00C, QTYPE_A, 1, ttl, 4) + a for a in answers)
    return head + question + body


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", required=True)
    p.add_argument("--bind", default="127.0.0.53")
    p.add_argument("--port", type=int, default=5353)
    p.add_argument("--ttl", type=int, default=5)
    p.add_argument("--log", help="append one line per query to this file")
    args = p.parse_args()
    records = Records(args.records)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.bind, args.port))
    log = open(args.log, "a", buffering=1, encoding="utf-8") if args.log else None
    print(f"dns_server: {args.bind}:{args.port} answering from {args.records} (ttl {args.ttl}s)", flush=True)
    while True:
        msg, peer = sock.recvfrom(4096)
        reply = answer(msg, records, args.ttl)
        if reply is None:
            continue
        if log:
            q = parse_question(msg)
            log.write(f"{time.time():.3f} {q[2]} type={q[3]} answers={struct.unpack('!H', reply[6:8])[0]}\n")
        sock.sendto(reply, peer)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
