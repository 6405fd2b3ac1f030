#!/usr/bin/env python3
"""Benchmark: how long an engine's stop of the counter app takes, against SIGTERM plus waiting until the engine says
the container no longer runs (what the relocation needs before it reads the volumes), on the Podman lab's hosts
(inventories/podman/hosts.yml: mec-pod-source runs Podman, mec-pod-docker Docker). Not a test; prints figures.

Each run starts a fresh counter (tests/integration/files/counter_app, with a volume; it ends at once on SIGTERM),
waits 1 s, then times one of: ``stop`` (the Docker SDK's stop, timeout 2 s: what relocation.py calls) or
``kill_wait`` (the SDK's kill with SIGTERM, then inspect every 5 ms until State.Running is false). The timed code
runs on the host (a Python script over SSH). Ways alternate run by run. Writes benchmarks/results/<name>.json.

    .venv/bin/python tests/benchmarks/engine_stop.py [--runs 10] [--hosts mec-pod-source,mec-pod-docker]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, ".."))  # labutil, which podman_labtools reads

from results_file import start, summarize, write_results  # noqa: E402
from podman_labtools import SSH_OPTS, podman_lab_hosts  # noqa: E402

WAYS = ("stop", "kill_wait")
REMOTE = r'''
import json, subprocess, sys, time
import docker
runs, cli, url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
api = docker.DockerClient(base_url=url, version="auto").api
name = "mec-bench-engine-stop"
out = []
try:
    for i in range(runs):
        for way in ("stop", "kill_wait"):
            subprocess.run([cli, "rm", "-f", name], capture_output=True)
            subprocess.run([cli, "run", "-d", "--name", name, "-v", name + "-data:/data", "mec-test/counter:1"],
                           check=True, capture_output=True)
            time.sleep(1.0)
            t0 = time.monotonic()
            if way == "stop":
                api.stop(name, timeout=2)
            else:
                api.kill(name, signal="SIGTERM")
                while api.inspect_container(name)["State"]["Running"]:
                    time.sleep(0.005)
            out.append(dict(way=way, seconds=round(time.monotonic() - t0, 6)))
finally:
    subprocess.run([cli, "rm", "-f", name], capture_output=True)
    subprocess.run([cli, "volume", "rm", "-f", name + "-data"], capture_output=True)
print(json.dumps(out))
'''


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--hosts", default="mec-pod-source,mec-pod-docker")
    ap.add_argument("--name", default="engine-stop")
    args = ap.parse_args(argv)
    lab = podman_lab_hosts()
    start()
    runs, summary = [], {}
    for name in args.hosts.split(","):
        host = lab[name]
        url = "unix:///run/podman/podman.sock" if host.engine == "podman" else "unix:///var/run/docker.sock"
        argv = ["ssh"] + SSH_OPTS + ["root@" + host.address, "python3", "-", str(args.runs), host.engine, url]
        proc = subprocess.run(argv, input=REMOTE, capture_output=True, text=True, timeout=1800, check=True)
        for r in json.loads(proc.stdout.strip().splitlines()[-1]):
            runs.append(dict(r, host=name, engine=host.engine))
        for way in WAYS:
            s = summarize([r["seconds"] for r in runs if r["host"] == name and r["way"] == way])
            summary["%s_%s_s" % (host.engine, way)] = s
            print("%-16s %-7s %-10s %.3f s median (%.3f-%.3f), n=%d" % (name, host.engine, way, s["median"], s["min"],
                                                                        s["max"], s["n"]))
    path = write_results(args.name, runs, summary, extra=dict(hosts=args.hosts.split(",")))
    print("results:", path)


if __name__ == "__main__":
    main()
