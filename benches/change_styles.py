#!/usr/bin/env python3
"""Change-to-effect latency of every way a file gets written, median and p99.

The bench harness (../shared/bench/bench.py reload) times atomic renames over 10 changes and
only checks that an in-place edit is seen at all. The hot-reload issue asks for the median
and p99 of every change style: this script makes --changes changes of each style to the RDS
file (the route toggles between clusters a and b) and the EDS file (cluster a's endpoint
toggles between upstreams A and C) of the harness's file-based layout, and to the whole set
through a Kubernetes ConfigMap `..data` swap, and times each from the syscall that completes
the change (the rename, the writer's close, the symlink swap) to the first fresh-connection
request the new target answers, polling every ~1 ms like the harness.

    cargo build --release
    python3 benches/change_styles.py [--bin target/release/legate] [--changes 100]
                                     [--styles rename,inplace,vim,recreate,configmap]

With --bin pointing at Envoy, only `rename` (and `configmap` with --watched) is something it
does; the other styles time out after --timeout seconds and are reported as missed.

It reuses the harness's upstream (nginx, three server blocks A/B/C), file generators, probe
and process handling (every process started by PID, stopped by PID; only 127.0.0.1; every
wait bounded). Prints a markdown table.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "bench"))
import bench  # noqa: E402  (the harness, beside the project)


def inplace(path, text):
    """truncate + write + close: IN_MODIFY then IN_CLOSE_WRITE."""
    with open(path, "w") as f:
        f.write(text)
    return time.monotonic()


def vim(path, text):
    """vim's save with `backupcopy=auto` on a plain file: its 4913 probe, the original
    renamed to a backup, the new file created and written, the backup removed."""
    d = os.path.dirname(path)
    probe = os.path.join(d, "4913")
    with open(probe, "w"):
        pass
    os.unlink(probe)
    backup = path + "~"
    os.rename(path, backup)
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    t = time.monotonic()
    os.unlink(backup)
    return t


def recreate(path, text):
    """rm, then a new file written and closed."""
    os.unlink(path)
    with open(path, "w") as f:
        f.write(text)
    return time.monotonic()


WRITERS = {"rename": bench.atomic_write, "inplace": inplace, "vim": vim, "recreate": recreate}


def measure(n, change, expect, timeout, settle):
    lat = []
    for i in range(n):
        exp = expect[i % len(expect)]
        t0 = change(i)
        t = bench.wait_until_upstream(bench.PROXY_PORT, "/", exp, timeout=timeout)
        lat.append(None if t is None else (time.monotonic() - t0) * 1000)
        if t is None:
            # Put the expected target back by a rename so the next change is a change again.
            return lat
        time.sleep(settle)
    return lat


def summary(lat):
    seen = sorted(x for x in lat if x is not None)
    if not seen:
        return {"n": len(lat), "seen": 0}
    p = lambda q: seen[min(len(seen) - 1, max(0, int(round(q * len(seen))) - 1))]
    return {"n": len(lat), "seen": len(seen), "p50": p(0.5), "p99": p(0.99), "max": seen[-1]}


def file_styles(a, wd, styles, out):
    e = bench.DynEnvoy(a.bin, wd, "styles")
    d = e.dir
    try:
        for style in styles:
            w = WRITERS[style]
            eds = measure(a.changes, lambda i: w(f"{d}/eds_a.yaml", bench.eds_yaml("a", bench.UP["C" if i % 2 == 0 else "A"])),
                          ["C", "A"], a.timeout, a.settle)
            bench.atomic_write(f"{d}/eds_a.yaml", bench.eds_yaml("a", bench.UP["A"]))
            bench.wait_until_upstream(bench.PROXY_PORT, "/", "A", timeout=5)
            rds = measure(a.changes, lambda i: w(f"{d}/rds.yaml", bench.rds_yaml("b" if i % 2 == 0 else "a")),
                          ["B", "A"], a.timeout, a.settle)
            bench.atomic_write(f"{d}/rds.yaml", bench.rds_yaml("a"))
            bench.wait_until_upstream(bench.PROXY_PORT, "/", "A", timeout=5)
            out[f"{style} EDS"] = summary(eds)
            out[f"{style} RDS"] = summary(rds)
            bench.log(style, out[f"{style} EDS"], out[f"{style} RDS"])
    finally:
        e.close()


def configmap(a, wd, out):
    k = os.path.join(wd, "cm")
    shutil.rmtree(k, ignore_errors=True)
    os.makedirs(k)
    files = lambda port: {
        "eds_a.yaml": bench.eds_yaml("a", port), "eds_b.yaml": bench.eds_yaml("b", bench.UP["B"]),
        "rds.yaml": bench.rds_yaml("a"), "cds.yaml": bench.cds_yaml(k, watched=a.watched),
        "lds.yaml": bench.lds_yaml(k, watched=a.watched)}
    seq = [0]

    def publish(content, first=False):
        # The kubelet's layout: files are symlinks into ..data, a symlink to a timestamped
        # folder, swapped by renaming ..data_tmp over it; the old folder is then removed.
        seq[0] += 1
        ts = os.path.join(k, f"..2026_11_22_00_00_00.{seq[0]}")
        os.makedirs(ts)
        for fn, txt in content.items():
            with open(os.path.join(ts, fn), "w") as f:
                f.write(txt)
        tmp = os.path.join(k, "..data_tmp")
        os.symlink(os.path.basename(ts), tmp)
        old = None if first else os.readlink(os.path.join(k, "..data"))
        os.rename(tmp, os.path.join(k, "..data"))
        t = time.monotonic()
        if first:
            for fn in content:
                os.symlink(f"..data/{fn}", os.path.join(k, fn))
        if old:
            shutil.rmtree(os.path.join(k, old))
        return t

    publish(files(bench.UP["A"]), first=True)
    e = bench.DynEnvoy(a.bin, wd, "cm", watched=a.watched, refdir=k, write_files=False)
    try:
        lat = measure(a.changes, lambda i: publish(files(bench.UP["C" if i % 2 == 0 else "A"])), ["C", "A"],
                      a.timeout, a.settle)
        out["configmap EDS"] = summary(lat)
        bench.log("configmap", out["configmap EDS"])
    finally:
        e.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "target", "release", "legate"))
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--styles", default="rename,inplace,vim,recreate,configmap")
    ap.add_argument("--watched", action="store_true", help="configmap with watched_directory")
    ap.add_argument("--timeout", type=float, default=2.0, help="seconds a change may take before it counts as missed")
    ap.add_argument("--settle", type=float, default=0.15, help="seconds between changes")
    a = ap.parse_args()
    styles = [s for s in a.styles.split(",") if s]
    wd = tempfile.mkdtemp(prefix="change_styles.")
    out = {}
    up = bench.Upstream(wd)
    try:
        fs = [s for s in styles if s in WRITERS]
        if fs:
            file_styles(a, wd, fs, out)
        if "configmap" in styles:
            time.sleep(0.5)
            configmap(a, wd, out)
    finally:
        up.close()
        shutil.rmtree(wd, ignore_errors=True)
    print(f"\n{os.path.basename(a.bin)}: change-to-effect ms over {a.changes} changes per row "
          f"(probe: fresh connection, ~1 ms between probes)\n")
    print("| change | seen | median | p99 | max |\n|---|---|---|---|---|")
    for k, s in out.items():
        if s.get("seen"):
            print(f"| {k} | {s['seen']}/{s['n']} | {s['p50']:.1f} | {s['p99']:.1f} | {s['max']:.1f} |")
        else:
            print(f"| {k} | 0/{s['n']} | - | - | - |")


if __name__ == "__main__":
    main()
