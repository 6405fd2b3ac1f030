#!/usr/bin/env python3
"""The apps' image sizes on a lab host (docs/apps.md "Image sizes"), written to benchmarks/results/.

Reads, on the local lab's source host (or --host), each image's size as its engine reports it
(`docker image inspect -f '{{.Size}}'`) and the size of the lab's base image they are built on, and writes
``benchmarks/results/<name>.json``: one raw entry per image (bytes), and per image its size and its size over the
base in MB (10^6 bytes, as `docker images` prints them). Read-only on the host. Prints the table; asserts nothing.

    .venv/bin/python tests/benchmarks/image_sizes.py [--name image-sizes] [--host 172.30.77.11]
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from results_file import start, write_results  # noqa: E402
from labtools import Host, lab_hosts  # noqa: E402

BASE = "mec-lab/base:bookworm"
IMAGES = ["mec-apps/a1:latest", "mec-apps/a2:latest", "mec-apps/a3:latest", "mec-apps/a3-loader:latest",
          "mec-apps/gateway:latest"]


def key(image):
    """summary key of an image: mec-apps/a3-loader:latest -> a3_loader."""
    return image.split("/")[-1].split(":")[0].replace("-", "_")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", default="image-sizes")
    ap.add_argument("--host", help="a lab host's address (default: the local lab's source host)")
    args = ap.parse_args(argv)
    start()
    address = args.host or lab_hosts()["source"].address
    host = Host(address)
    engine = host.docker("version", "--format", "{{.Server.Version}}")
    runs = []
    for image in [BASE] + IMAGES:
        size = int(host.docker("image", "inspect", "-f", "{{.Size}}", image))
        image_id = host.docker("image", "inspect", "-f", "{{.Id}}", image)
        runs.append({"image": image, "size_bytes": size, "id": image_id})
    base = runs[0]["size_bytes"]
    summary = {"base_mb": round(base / 1e6, 1)}
    for r in runs[1:]:
        summary[key(r["image"])] = {"size_mb": round(r["size_bytes"] / 1e6, 1),
                                    "over_base_mb": round((r["size_bytes"] - base) / 1e6, 1)}
    path = write_results(args.name, runs, summary, extra={"host": address, "engine": engine, "base": BASE})
    print("%-28s %10s %10s" % ("image", "size MB", "over base"))
    print("%-28s %10.1f %10s" % (BASE, summary["base_mb"], "-"))
    for r in runs[1:]:
        s = summary[key(r["image"])]
        print("%-28s %10.1f %+10.1f" % (r["image"], s["size_mb"], s["over_base_mb"]))
    print("results:", path)


if __name__ == "__main__":
    main()
