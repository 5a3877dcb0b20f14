#!/bin/sh
# One service replica of compose.yaml: the app on 127.0.0.1:8080 and its legate sidecar in
# front of it, in one container so that `--scale` scales them together (a sidecar container
# sharing the app's network namespace would not follow the scale). legate runs as PID 1's
# replacement and gets `docker stop`'s SIGTERM; the app goes with the container.
set -eu
python3 /app/service.py &
exec legate -c /etc/legate/envoy.yaml --service-cluster "service${SERVICE_NAME:-1}" --drain-time-s 5
