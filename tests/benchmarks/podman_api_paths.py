#!/usr/bin/env python3
"""Which way to drive Podman: the same operations through the three ways a module can take on a Podman host, timed
on a host of the Podman lab (inventories/podman/hosts.yml, default mec-pod-source), written to benchmarks/results/.

Ways: ``compat`` - the Docker SDK (python3-docker 5.0.3, what the modules use) on Podman's Docker-compatible API;
``libpod`` - Podman's own REST API on the same socket (/v4.0.0/libpod/..., what the podman Python bindings call);
``cli`` - the ``podman`` command. Operations, each run ``--runs`` times per way, interleaved way by way: ``inspect``
(one container's inspect data: the per-call cost), ``commit`` (the counter app, paused), ``save`` (the committed
image, every layer, docker-archive format, into a file), ``load`` (that file, after the image was removed). The
timed code runs on the host itself (a Python script sent over SSH), so SSH is not in the figures. Prints the
medians with min/max; asserts nothing. Leaves nothing behind (its container, images and files are removed).

    .venv/bin/python tests/benchmarks/podman_api_paths.py [--runs 10] [--host mec-pod-source] [--name podman-api-paths]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from results_file import start, summarize, write_results  # noqa: E402

ROOT = Path(HERE).resolve().parents[1]
INVENTORY_DIR = ROOT / "inventories" / "podman"
WAYS = ("compat", "libpod", "cli")
OPS = ("inspect", "commit", "save", "load")

# Runs on the Podman host: python3 - <runs> <image>; prints one JSON list of {way, op, seconds, bytes}.
REMOTE = r'''
import json, os, subprocess, sys, time
import docker
runs, image = int(sys.argv[1]), sys.argv[2]
name = "mec-bench-api-paths"
work = "/var/tmp/mec-bench-api-paths"
os.makedirs(work, mode=0o700, exist_ok=True)
c = docker.DockerClient(base_url="unix:///run/podman/podman.sock", version="auto", timeout=300)
api = c.api
def libpod(method, path, **kw):
    res = getattr(api, "_" + method)(api.base_url + "/v4.0.0/libpod" + path, **kw)
    api._raise_for_status(res)
    return res
def sh(*argv):
    subprocess.run(["podman"] + list(argv), check=True, capture_output=True)
def rmi(ref):
    subprocess.run(["podman", "rmi", "-f", ref], capture_output=True)
subprocess.run(["podman", "rm", "-f", name], capture_output=True)
sh("run", "-d", "--name", name, "-v", name + "-data:/data", image)
time.sleep(1)
out = []
def timed(way, op, f, path=None):
    t0 = time.monotonic()
    f()
    out.append(dict(way=way, op=op, seconds=round(time.monotonic() - t0, 6),
                    bytes=os.path.getsize(path) if path else None))
def stream_to(path, chunks):
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
try:
    for i in range(runs):
        for way in ("compat", "libpod", "cli"):
            ref = "mec-bench/api-paths:%s%d" % (way, i)
            tar = "%s/%s.tar" % (work, way)
            if way == "compat":
                timed(way, "inspect", lambda: api.inspect_container(name))
                timed(way, "commit", lambda: api.commit(name, repository="mec-bench/api-paths", tag="%s%d" % (way, i)))
                timed(way, "save", lambda: stream_to(tar, api.get_image(ref)), tar)
                rmi(ref)
                def load():
                    with open(tar, "rb") as fh:
                        list(api.load_image(fh))
                timed(way, "load", load, tar)
            elif way == "libpod":
                timed(way, "inspect", lambda: libpod("get", "/containers/%s/json" % name).json())
                timed(way, "commit", lambda: libpod("post", "/commit", params=dict(
                    container=name, repo="mec-bench/api-paths", tag="%s%d" % (way, i), pause="true")).json())
                timed(way, "save", lambda: stream_to(tar, libpod(
                    "get", "/images/%s/get" % ref, params=dict(format="docker-archive"), stream=True
                ).iter_content(1 << 20)), tar)
                rmi(ref)
                def load():
                    with open(tar, "rb") as fh:
                        libpod("post", "/images/load", data=fh, headers={"Content-Type": "application/x-tar"}).json()
                timed(way, "load", load, tar)
            else:
                timed(way, "inspect", lambda: sh("container", "inspect", name))
                timed(way, "commit", lambda: sh("commit", "--pause", "-q", name, ref))
                timed(way, "save", lambda: sh("save", "--format", "docker-archive", "-o", tar, ref), tar)
                rmi(ref)
                timed(way, "load", lambda: sh("load", "-q", "-i", tar), tar)
            rmi(ref)
            os.unlink(tar)
finally:
    subprocess.run(["podman", "rm", "-f", name], capture_output=True)
    subprocess.run(["podman", "volume", "rm", "-f", name + "-data"], capture_output=True)
    subprocess.run(["rm", "-rf", work])
print(json.dumps(dict(runs=out, version=c.version()["Version"])))
'''


def ssh(address, argv, stdin_text):
    return subprocess.run(["ssh", "-i", str(INVENTORY_DIR / "id_ed25519"), "-o",
                           "UserKnownHostsFile=%s" % (INVENTORY_DIR / "known_hosts"), "-o", "StrictHostKeyChecking=yes",
                           "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "root@" + address] + argv,
                          input=stdin_text, capture_output=True, text=True, timeout=3600, check=True)


def main(argv=None):
    import yaml
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--host", default="mec-pod-source")
    ap.add_argument("--image", default="mec-test/counter:1", help="an image on the host (the counter test app)")
    ap.add_argument("--name", default="podman-api-paths")
    args = ap.parse_args(argv)
    inventory = yaml.safe_load((INVENTORY_DIR / "hosts.yml").read_text())
    hosts = {}
    for body in inventory["all"]["children"]["mec_hosts"]["children"].values():
        hosts.update(body.get("hosts") or {})
    address = hosts[args.host]["ansible_host"]
    start()
    proc = ssh(address, ["python3", "-", str(args.runs), args.image], REMOTE)
    answer = json.loads(proc.stdout.strip().splitlines()[-1])
    runs = answer["runs"]
    summary = {}
    print("%-8s %-8s %30s" % ("op", "way", "median s (min-max), n"))
    for op in OPS:
        for way in WAYS:
            s = summarize([r["seconds"] for r in runs if r["op"] == op and r["way"] == way])
            summary["%s_%s_s" % (op, way)] = s
            print("%-8s %-8s %10.4f (%.4f-%.4f), %d" % (op, way, s["median"], s["min"], s["max"], s["n"]))
    sizes = sorted(set(r["bytes"] for r in runs if r["op"] == "save"))
    summary["archive_bytes"] = {way: sorted(set(r["bytes"] for r in runs if r["op"] == "save" and r["way"] == way))
                                for way in WAYS}
    path = write_results(args.name, runs, summary, extra=dict(host=args.host, address=address, image=args.image,
                                                              podman=answer["version"], archive_bytes_seen=sizes))
    print("archive bytes:", summary["archive_bytes"])
    print("results:", path)


if __name__ == "__main__":
    main()
