#!/usr/bin/env python3
"""Images per second of r2unet.dask.segment_files on a LocalCluster with 1
and 2 worker processes (one thread each, r2unet's kernels on the worker's
cores), on the given images (default: DRIVE's 20 test images).

    python scripts/dask-throughput.py [IMAGES...] [--threads-per-worker-kernels N]

Each cluster segments the set twice: the first pass includes every worker
loading the model, the second is warm. Needs the r2unet package with its
dask extra (pip install './crates/r2unet-py[dask]').
"""

import argparse
import glob
import os
import pathlib
import platform
import tempfile
import time

from dask.distributed import Client, LocalCluster

from r2unet.dask import segment_files

ROOT = pathlib.Path(__file__).resolve().parents[1]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("images", nargs="*")
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    images = args.images or sorted(
        glob.glob(str(ROOT.parent / "shared/data/DRIVE/test/images/*.tif"))
    )
    if not images:
        raise SystemExit("no images given and ../shared/data/DRIVE not found")
    print(f"{len(images)} images, {os.cpu_count()} cores: {cpu_name()}")
    for n in [int(w) for w in args.workers.split(",")]:
        # Each worker's kernels share the machine's cores between workers.
        threads = max(1, (os.cpu_count() or 1) // n)
        env = {"RAYON_NUM_THREADS": str(threads)}
        with LocalCluster(
            n_workers=n, threads_per_worker=1, processes=True,
            dashboard_address=None, env=env,
        ) as cluster, Client(cluster) as client, tempfile.TemporaryDirectory() as out:
            for label in ["cold (includes loading the model)", "warm"]:
                start = time.perf_counter()
                rows = segment_files(client, images, out)
                elapsed = time.perf_counter() - start
                failed = [r for r in rows if not r["ok"]]
                assert not failed, failed[0]["error"]
                print(f"{n} worker(s), {threads} kernel thread(s) each, {label}: "
                      f"{len(images) / elapsed:.2f} images/s ({elapsed:.1f} s)")


if __name__ == "__main__":
    main()
