"""python -m mec_drive: one command for the drive experiment (docs/drive.md)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .lab import ROOT, ZONES_INVENTORY, DriveError, ZonesLab
from .report import table
from .runner import RULEBOOK, Drive


def _kv(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=VALUE")
    return key, value


def ahead_available() -> bool:
    return "follow_mode" in (ROOT / RULEBOOK).read_text(encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mec_drive", description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0, help="drive time (default 10)")
    ap.add_argument("--mode", choices=["reactive", "ahead", "both"], default="reactive",
                    help="the rulebook's follow_mode; both: reactive, then ahead (default reactive)")
    ap.add_argument("--strategy", choices=["m1", "m2", "m3"], default="m2")
    ap.add_argument("--ue", default="10.100.0.1", help="the car (default 10.100.0.1, 20 m/s, LOOP)")
    ap.add_argument("--inventory", type=Path, default=ZONES_INVENTORY)
    ap.add_argument("--sandbox-address", default="172.30.80.1",
                    help="where the drive's sandbox listens: the controller's address on the zones lab network, "
                         "which the hosts' gateways reach (default 172.30.80.1)")
    ap.add_argument("--sandbox-port", type=int, default=18470)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "drive")
    ap.add_argument("--rulebook-var", type=_kv, action="append", default=[], metavar="NAME=VALUE",
                    help="an extra variable for the rulebook's vars file (repeatable)")
    ap.add_argument("--skip-deploy", action="store_true",
                    help="do not run playbooks/apps.yml (the gateways already point at this sandbox, A2's image "
                         "is on the source host)")
    ap.add_argument("--reanalyse", type=Path, metavar="DIR",
                    help="assemble a finished drive's results folder again (no lab needed), print its table")
    args = ap.parse_args(argv)
    if args.reanalyse:
        summary = Drive.reanalyse(args.reanalyse, ZonesLab(args.inventory))
        print(table(summary, json.loads((args.reanalyse / "hops.json").read_text())))
        return 0
    if not 0.5 <= args.minutes <= 120:
        ap.error("--minutes must be within 0.5 and 120")
    modes = ["reactive", "ahead"] if args.mode == "both" else [args.mode]
    if "ahead" in modes and not ahead_available():
        print(f"error: the ahead-of-time mode is not available: {RULEBOOK} has no follow_mode", file=sys.stderr)
        return 2
    try:
        lab = ZonesLab(args.inventory)
        for i, mode in enumerate(modes):
            drive = Drive(mode, args.minutes, args.strategy, args.ue, args.sandbox_address, args.sandbox_port,
                          args.out, dict(args.rulebook_var), lab, skip_deploy=args.skip_deploy or i > 0)
            summary = drive.run()
            hops = json.loads((drive.out / "hops.json").read_text())
            print(table(summary, hops))
            print(f"  written: {drive.out}/{{timeline.jsonl,hops.json,summary.json,timeline.png}}", flush=True)
    except DriveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
