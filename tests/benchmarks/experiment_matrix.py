"""Benchmark: the seed's whole matrix (3 apps x m1 m2 m3 x n1 n2) with one repetition on a lab, through
playbooks/experiment.yml. Prints the total duration (target: under 15 minutes) and the medians per cell,
then writes the report. Asserts nothing.

    /tmp/venvtest/bin/python tests/benchmarks/experiment_matrix.py [--inventory inventories/local/hosts.yml]
        [--results results/benchmark-matrix] [--reps 1] [--apps-vars '{"mec_gateway_upstream_url": ...}']
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "apps"))

from mec_experiment.records import load_records  # noqa: E402
from mec_report import analysis  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inventory", default=os.environ.get("MEC_EXPERIMENT_INVENTORY",
                                                          str(ROOT / "inventories" / "local" / "hosts.yml")))
    ap.add_argument("--results", default=str(ROOT / "results" / ("benchmark-matrix-" + time.strftime("%Y%m%dT%H%M%S"))))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--apps-vars", default=os.environ.get("MEC_EXPERIMENT_APPS_VARS", ""))
    args = ap.parse_args()
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", args.inventory, "playbooks/experiment.yml",
            "-e", "experiment_repetitions=%d" % args.reps, "-e", "experiment_results_dir=%s" % args.results]
    if args.apps_vars:
        argv += ["-e", json.dumps({"experiment_apps_extra_vars": json.loads(args.apps_vars)})]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, text=True, capture_output=True,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    total = time.monotonic() - start
    Path(args.results).mkdir(parents=True, exist_ok=True)
    (Path(args.results) / "experiment.log").write_text(proc.stdout + proc.stderr)
    for line in proc.stdout.splitlines():
        if '"msg": "a' in line and " #" in line:
            print("  " + line.strip().split('"msg": ', 1)[1].strip('"'))
    records, skipped = load_records(args.results)
    print("matrix: %d runs (%d ok) in %.1f s = %.1f min (target < 15 min), ansible-playbook rc=%d" % (
        len(records), sum(r["status"] == "ok" for r in records), total, total / 60, proc.returncode))
    print("| app | strategy | network | ok/runs | downtime seed (s) | downtime user (s) | migration time (s) |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: |")
    for (a, s, n), c in sorted(analysis.cell_medians(records).items(), key=lambda kv: tuple(map(str, kv[0]))):
        print("| %s | %s | %s | %d/%d | %s | %s | %s |" % (
            a, s, n, c["ok"], c["runs"], *("-" if c[k] is None else "%.3f" % c[k]
                                           for k in ("downtime_wall", "downtime_user", "migration_time"))))
    rep = subprocess.run([sys.executable, "-m", "mec_report", args.results], cwd=ROOT, text=True, capture_output=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "apps")))
    print(rep.stdout.strip() or rep.stderr.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
