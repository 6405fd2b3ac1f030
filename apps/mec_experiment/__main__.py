"""python -m mec_experiment {run-one,validate,csv} ... (see run.py and records.py)."""

from __future__ import annotations

import argparse
import json
import sys

from .records import write_csv
from .run import APP_SPECS, run_one


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mec_experiment")
    sub = ap.add_subparsers(dest="cmd", required=True)
    one = sub.add_parser("run-one", help="one run of the matrix (resumable; failures are recorded)")
    one.add_argument("--inventory", required=True)
    one.add_argument("--results", required=True)
    one.add_argument("--app", required=True, choices=sorted(APP_SPECS))
    one.add_argument("--strategy", required=True)
    one.add_argument("--network", required=True)
    one.add_argument("--rep", type=int, required=True)
    one.add_argument("--transfer", default="stream")
    one.add_argument("--migration-port", type=int, default=0,
                     help="migration_port of migrate.yml (0: its default, 47777, which other runs on the lab may hold)")
    one.add_argument("--apps-extra-vars", default="", help="JSON: extra vars for playbooks/apps.yml (reset)")
    one.add_argument("--reset", choices=["app", "full", "never", "needed", "always"], default="app",
                     help="put the app back on the source first, checked: app (only the migrated app, direct docker "
                          "run; default), full (playbooks/apps.yml first), never; needed = app, always = full")
    one.add_argument("--apps-dir", default="/opt/mec-apps",
                     help="mec_apps_dir of the hosts (where the role keeps run-<app>.json)")
    one.add_argument("--timeout", type=float, default=600)
    one.add_argument("--retry-failed", nargs="?", const="yes", default="no", choices=["yes", "no"],
                     help="run again a run recorded as failed")
    one.add_argument("--debug", action="store_true")
    c = sub.add_parser("csv", help="rewrite RESULTS/results.csv from RESULTS/runs/*.json")
    c.add_argument("results")
    args = ap.parse_args(argv)
    if args.cmd == "csv":
        print(write_csv(args.results))
        return 0
    out = run_one(args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
