#!/usr/bin/env python3
"""The gateway application's side: gRPC calls through the sidecar's egress listener.

Usage: client.py TARGET STEP...   with STEP a CALL, or `--until EXPECTED CALL` (repeats the
call for up to 10 s until it prints EXPECTED, else exits 1), and CALL one of
  alive            gateway.AliveService/Check
  user             gateway.UserService/Get
  unknown          gateway.OrderService/List (a service no route names)
Prints one line per call: `<method> -> <served_by>` or `<method> -> <STATUS>: <details>`.
"""

import sys
import time

import grpc

import gateway_pb2
import gateway_pb2_grpc


def call(channel, what):
    try:
        if what == "alive":
            reply = gateway_pb2_grpc.AliveServiceStub(channel).Check(gateway_pb2.AliveRequest(), timeout=5)
            return "AliveService/Check -> " + reply.served_by
        if what == "user":
            reply = gateway_pb2_grpc.UserServiceStub(channel).Get(gateway_pb2.UserRequest(name="ada"), timeout=5)
            return f"UserService/Get({reply.name}) -> {reply.served_by}"
        raw = channel.unary_unary("/gateway.OrderService/List", request_serializer=None, response_deserializer=None)
        raw(b"", timeout=5)
        return "OrderService/List -> answered"
    except grpc.RpcError as e:
        name = {"alive": "AliveService/Check", "user": "UserService/Get"}.get(what, "OrderService/List")
        details = f": {e.details()}" if e.details() else ""
        return f"{name} -> {e.code().name}{details}"


def until(channel, expected, what):
    """Repeats the call for up to 10 s until it prints `expected`; whether it did."""
    deadline = time.monotonic() + 10
    got = call(channel, what)
    while got != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        got = call(channel, what)
    print(got if got == expected else f"!! expected {expected!r}, got {got!r}", flush=True)
    return got == expected


def main():
    target, args = sys.argv[1], sys.argv[2:]
    # Quick reconnects: the proxies may still be starting when the first call is made.
    options = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 200)]
    with grpc.insecure_channel(target, options=options) as channel:
        while args:
            if args[0] == "--until":
                if not until(channel, args[1], args[2]):
                    sys.exit(1)
                args = args[3:]
            else:
                print(call(channel, args[0]), flush=True)
                args = args[1:]


if __name__ == "__main__":
    main()
