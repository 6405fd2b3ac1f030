#!/usr/bin/env python3
"""Benchmark: how long an engine's stop of the counter app takes, against SIGTERM plus waiting until the engine says
the container no longer runs (what the relocation needs before it reads the volumes), on the Podman lab's hosts
(inventories/podman/hosts.yml: mec-pod-source runs Podman, mec-pod-docker Docker). Not a test; prints figures.

Each run starts a fresh counter (tests/integration/files/counter_app, with a volume; it ends at once on SIGTERM),
waits 1 s, then times one of (``--ways``):

- ``stop``: the Docker SDK's stop, timeout 2 s (the engine's compatible API; what relocation.py called up to
  session 18);
- ``kill_wait``: the SDK's kill with SIGTERM, then inspect every 5 ms until State.Running is false (not a usable
  stop on Podman: its restart policy undoes a kill);
- ``libpod_stop``: Podman's own endpoint, ``POST /v4.0.0/libpod/containers/{id}/stop?timeout=2``;
- ``stop_nonet``: ``stop`` of a counter run with ``--network none`` (no network to tear down);
- ``stop_container``: plugins/module_utils/engines.py's ``stop_container`` (the stop in a thread, the process's
  exit seen on a pidfd): ``seconds`` until it returned (the process exited), ``returned`` until the engine's stop
  returned.

The timed code runs on the host (a Python script over SSH, engines.py sent along). Ways alternate run by run.
Writes benchmarks/results/<name>.json.

    .venv/bin/python tests/benchmarks/engine_stop.py [--runs 10] [--hosts mec-pod-source,mec-pod-docker] [--ways ...]
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

WAYS = ("stop", "kill_wait", "libpod_stop", "stop_nonet", "stop_container")
REMOTE = r'''
import importlib.util, json, subprocess, sys, time
import docker
runs, cli, url, ways, engines_py = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].split(","), sys.argv[5]
spec = importlib.util.spec_from_file_location("engines", engines_py)
engines = importlib.util.module_from_spec(spec)
spec.loader.exec_module(engines)
client = docker.DockerClient(base_url=url, version="auto")
client.mec_engine = cli
api = client.api
name = "mec-bench-engine-stop"
out = []
try:
    for i in range(runs):
        for way in ways:
            if way == "libpod_stop" and cli != "podman":
                continue
            subprocess.run([cli, "rm", "-f", name], capture_output=True)
            net = ["--network", "none"] if way == "stop_nonet" else []
            subprocess.run([cli, "run", "-d", "--name", name, "-v", name + "-data:/data"] + net
                           + ["mec-test/counter:1"], check=True, capture_output=True)
            time.sleep(1.0)
            info = api.inspect_container(name)
            row = {}
            t0 = time.monotonic()
            if way in ("stop", "stop_nonet"):
                api.stop(name, timeout=2)
            elif way == "libpod_stop":
                r = api._post(api.base_url + "/v4.0.0/libpod/containers/%s/stop" % name, params={"timeout": 2})
                r.raise_for_status()
            elif way == "stop_container":
                stopping = engines.stop_container(client, info, 2)
                row["seconds"] = round(time.monotonic() - t0, 6)
                stopping.wait()
                row["returned"] = round(time.monotonic() - t0, 6)
            else:
                api.kill(name, signal="SIGTERM")
                while api.inspect_container(name)["State"]["Running"]:
                    time.sleep(0.005)
            row.setdefault("seconds", round(time.monotonic() - t0, 6))
            out.append(dict(row, way=way))
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
    ap.add_argument("--ways", default="stop,kill_wait")
    args = ap.parse_args(argv)
    ways = args.ways.split(",")
    assert set(ways) <= set(WAYS), "ways: %s" % ", ".join(WAYS)
    with open(os.path.join(HERE, "..", "..", "plugins", "module_utils", "engines.py")) as fh:
        engines_src = fh.read()
    lab = podman_lab_hosts()
    start()
    runs, summary = [], {}
    for name in args.hosts.split(","):
        host = lab[name]
        url = "unix:///run/podman/podman.sock" if host.engine == "podman" else "unix:///var/run/docker.sock"
        # engines.py beside the script in a private temporary folder on the host
        setup = "d=$(mktemp -d) && cat > $d/engines.py && echo $d"
        tmp = subprocess.run(["ssh"] + SSH_OPTS + ["root@" + host.address, setup], input=engines_src,
                             capture_output=True, text=True, timeout=60, check=True).stdout.strip()
        argv = ["ssh"] + SSH_OPTS + ["root@" + host.address, "python3 - %d %s %s %s %s/engines.py; rm -rf %s"
                                     % (args.runs, host.engine, url, ",".join(ways), tmp, tmp)]
        proc = subprocess.run(argv, input=REMOTE, capture_output=True, text=True, timeout=1800, check=True)
        for r in json.loads(proc.stdout.strip().splitlines()[-1]):
            runs.append(dict(r, host=name, engine=host.engine))
        for way in ways:
            for key in ("seconds", "returned"):
                values = [r[key] for r in runs if r["host"] == name and r["way"] == way and key in r]
                if not values:
                    continue
                s = summarize(values)
                summary["%s_%s%s_s" % (host.engine, way, "" if key == "seconds" else "_returned")] = s
                print("%-16s %-7s %-24s %.3f s median (%.3f-%.3f), n=%d" % (
                    name, host.engine, way + ("" if key == "seconds" else " (stop returned)"), s["median"], s["min"],
                    s["max"], s["n"]))
    path = write_results(args.name, runs, summary, extra=dict(hosts=args.hosts.split(","), ways=ways))
    print("results:", path)


if __name__ == "__main__":
    main()
