#!/usr/bin/env python3
"""One gRPC service of the example (grpcio), answering with the name of its instance.

Usage: service.py alive|user ADDRESS PORT INSTANCE   (stubs from gateway.proto on PYTHONPATH)
"""

import sys
from concurrent import futures

import grpc

import gateway_pb2
import gateway_pb2_grpc


class Alive(gateway_pb2_grpc.AliveServiceServicer):
    def __init__(self, instance):
        self.instance = instance

    def Check(self, request, context):
        return gateway_pb2.AliveReply(served_by=self.instance)


class User(gateway_pb2_grpc.UserServiceServicer):
    def __init__(self, instance):
        self.instance = instance

    def Get(self, request, context):
        return gateway_pb2.UserReply(name=request.name, served_by=self.instance)


def main():
    kind, address, port, instance = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if kind == "alive":
        gateway_pb2_grpc.add_AliveServiceServicer_to_server(Alive(instance), server)
    else:
        gateway_pb2_grpc.add_UserServiceServicer_to_server(User(instance), server)
    server.add_insecure_port(f"{address}:{port}")
    server.start()
    print(f"{instance}: gateway.{kind.capitalize()}Service on {address}:{port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
