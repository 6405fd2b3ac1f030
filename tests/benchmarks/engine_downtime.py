#!/usr/bin/env python3
"""Benchmark: the downtime of m1/m2 on each engine pair, side by side (not a test; prints figures).

Pairs: ``docker`` - the local lab (inventories/local: mec-lab-source -> mec-lab-target, Docker -> Docker);
``podman`` - the Podman lab's mec-pod-source -> mec-pod-target (Podman -> Podman); ``docker-podman`` - the Podman
lab's mec-pod-docker -> mec-pod-source (Docker -> Podman). Each run migrates a fresh counter app
(tests/integration/files/counter_app, with its volume) with playbooks/migrate.yml and reads the record's wall
downtime (source stop -> target running) and the sum of the relocation's operations. Pairs run one after the
other, run by run interleaved per strategy. Writes every run and its figures to
benchmarks/results/<name>.json (results_file: commit, load average), the medians with min/max as its summary.
Nothing else may use the labs while it runs (their hosts' load and the apps' placement are the benchmark's).

    .venv/bin/python tests/benchmarks/engine_downtime.py --pairs docker,podman --strategies m2 --runs 8
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from labtools import ROOT, WORK_ROOT, migrate  # noqa: E402
from results_file import start, summarize, write_results  # noqa: E402

IMAGE = "mec-test/counter:1"
LABS = {"local": Path(ROOT) / "inventories" / "local", "podman": Path(ROOT) / "inventories" / "podman"}
PAIRS = {"docker": ("local", "mec-lab-source", "mec-lab-target"),
         "podman": ("podman", "mec-pod-source", "mec-pod-target"),
         "docker-podman": ("podman", "mec-pod-docker", "mec-pod-source")}


class LabHost(object):
    def __init__(self, lab, name):
        inv = yaml.safe_load((LABS[lab] / "hosts.yml").read_text())
        hosts = {}
        for body in inv["all"]["children"]["mec_hosts"]["children"].values():
            hosts.update(body.get("hosts") or {})
        self.lab, self.name = lab, name
        self.address = hosts[name]["ansible_host"]
        self.cli = hosts[name].get("migration_engine", "docker")

    def sh(self, cmd, check=True):
        d = LABS[self.lab]
        p = subprocess.run(["ssh", "-i", str(d / "id_ed25519"), "-o", "UserKnownHostsFile=%s" % (d / "known_hosts"),
                            "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
                            "root@" + self.address, cmd], capture_output=True, text=True, timeout=600,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError("on %s: %s -> %s %s" % (self.name, cmd, p.returncode, p.stderr))
        return p.stdout.strip()

    def ensure_image(self):
        want = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE], capture_output=True, text=True,
                              check=True).stdout.strip()
        if self.sh("%s image inspect -f '{{.Id}}' %s" % (self.cli, IMAGE), check=False) != want:
            save = subprocess.Popen(["docker", "save", IMAGE], stdout=subprocess.PIPE)
            d = LABS[self.lab]
            subprocess.run(["ssh", "-i", str(d / "id_ed25519"), "-o", "UserKnownHostsFile=%s" % (d / "known_hosts"),
                            "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "root@" + self.address,
                            "%s load" % self.cli], stdin=save.stdout, check=True, capture_output=True, timeout=600)
            save.stdout.close()
            save.wait()

    def remove(self, app):
        self.sh("%s rm -f %s; %s volume rm -f %s-data; %s images --format '{{.Repository}}:{{.Tag}}' | "
                "grep -F 'mec-migration/%s:' | xargs -r %s rmi -f"
                % (self.cli, app, self.cli, app, self.cli, app, self.cli), check=False)


def one_run(pair, strategy, results):
    lab, src_name, dst_name = PAIRS[pair]
    src, dst = LabHost(lab, src_name), LabHost(lab, dst_name)
    app = "bd" + uuid.uuid4().hex[:8]
    run_id = "b" + uuid.uuid4().hex[:10]
    try:
        src.sh("%s run -d --name %s -v %s-data:/data %s" % (src.cli, app, app, shlex.quote(IMAGE)))
        time.sleep(2)
        rc, out, record = migrate(results, inventory=str(LABS[lab] / "hosts.yml"), app=app, strategy=strategy,
                                  migration_source_host=src_name, migration_target_host=dst_name, run_id=run_id)
        ok = rc == 0 and record is not None and record.get("status") == "ok"
        return dict(pair=pair, strategy=strategy, ok=ok, run_id=run_id,
                    wall=(record or {}).get("downtime", {}).get("wall"),
                    operations_sum=(record or {}).get("downtime", {}).get("operations_sum"),
                    durations=(record or {}).get("durations"), error=None if ok else out[-1500:])
    finally:
        for h in (src, dst):
            h.remove(app)
            h.sh("rm -rf %s/%s" % (WORK_ROOT, run_id), check=False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", default="docker,podman")
    ap.add_argument("--strategies", default="m2")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--name", default="engine-downtime")
    args = ap.parse_args(argv)
    pairs, strategies = args.pairs.split(","), args.strategies.split(",")
    for pair in pairs:
        lab, src_name, _ = PAIRS[pair]
        LabHost(lab, src_name).ensure_image()
    start()
    runs = []
    with tempfile.TemporaryDirectory() as results:
        for pair in pairs:
            for i in range(args.runs):
                for strategy in strategies:
                    r = one_run(pair, strategy, os.path.join(results, "%s-%s-%d" % (pair, strategy, i)))
                    runs.append(r)
                    print("%-14s %s run %d: %s wall %s s, operations %s s" % (
                        pair, strategy, i + 1, "ok" if r["ok"] else "FAILED", r["wall"], r["operations_sum"]))
    summary = {}
    print("%-14s %-3s %28s %28s %s" % ("pair", "str", "wall median (min-max)", "operations median", "ok"))
    for pair in pairs:
        for strategy in strategies:
            sel = [r for r in runs if r["pair"] == pair and r["strategy"] == strategy and r["ok"]]
            wall = summarize([r["wall"] for r in sel])
            ops = summarize([r["operations_sum"] for r in sel])
            n_all = len([r for r in runs if r["pair"] == pair and r["strategy"] == strategy])
            key = "%s_%s" % (pair.replace("-", "_"), strategy)
            summary[key] = dict(wall_s=wall, operations_s=ops, ok=len(sel), runs=n_all)
            if wall["n"]:
                print("%-14s %-3s %10.3f (%.3f-%.3f) %10.3f (%.3f-%.3f) %d/%d" % (
                    pair, strategy, wall["median"], wall["min"], wall["max"], ops["median"], ops["min"], ops["max"],
                    len(sel), n_all))
    path = write_results(args.name, runs, summary, extra=dict(pairs={p: PAIRS[p] for p in pairs}))
    print("results:", path)


if __name__ == "__main__":
    main()
