#!/usr/bin/env python3
"""Reactive against ahead, fairly: alternating pairs of drives on the zones lab, then one results file.

    PYTHONPATH=apps .venv/bin/python tests/benchmarks/drive_comparison.py --pairs 3 --minutes 5 --ue 10.100.0.2 \
        --inventory inventories/zones-ue2/hosts.yml --deploy
    PYTHONPATH=apps .venv/bin/python tests/benchmarks/drive_comparison.py --aggregate results/drive-fair/*-*

Each pair is one reactive and one ahead drive (``python -m mec_drive``), their order alternating from pair to pair
(R A, A R, R A, ...) so that a drift of the machine's load does not favour one mode. The default UE 10.100.0.2 is
the car that no parameter of the follower was tuned on (the predictor's horizon and the relocation lead were tuned
on 10.100.0.1's first 600 s). Every drive counts, failed hops included; a drive that did not finish is a row with
its error, never left out.

Written: benchmarks/results/drive_comparison.json (tests/benchmarks/results_file.py): per drive the mode, the load
average before and after, served locally over the whole drive and after the first handover, hops moved / failed,
A2's counter against the zones entered, and the per-access-point staged-ahead range (ahead drives); the summary
gives, per mode, the median and spread of both served-locally ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from results_file import start, summarize, write_results  # noqa: E402


def _ratio(d):
    return None if not d else d.get("ratio")


def drive_row(folder: Path) -> dict:
    """One finished drive's figures from its summary.json (written by mec_drive)."""
    s = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    loc = s["served_locally"]
    after = loc.get("after_first_handover")
    row = {"folder": folder.name, "mode": s["mode"], "ue": s["ue"], "minutes": s["minutes"],
           "strategy": s["strategy"], "served_locally": _ratio(loc),
           "served_locally_after_first_handover": _ratio(after),
           "handovers": s["hops"]["handovers"], "by_outcome": s["hops"]["by_outcome"],
           "migrations": s["hops"]["migrations"], "migrations_failed": s["hops"]["migrations_failed"],
           "counter": s["counter"]["a2"], "zones_entered": s["counter"]["zones_entered"],
           "handover_to_serving_median_s": s["figures"]["handover_to_serving_s"].get("median"),
           "ue_downtime_per_hop_median_s": s["figures"]["ue_downtime_per_hop_s"].get("median")}
    d = s.get("derived", {})
    if "per_ap_staged" in d and "low" in d["per_ap_staged"]:
        row["per_ap_staged_low"] = d["per_ap_staged"]["low"]["ratio"]
        row["per_ap_staged_high"] = d["per_ap_staged"]["high"]["ratio"]
        row["staging_s"] = d["per_ap_staged"]["high"]["staging_s"]
    if "per_ap_replayed" in d:
        row["per_ap_replayed"] = d["per_ap_replayed"]["ratio"]
    return row


def run_drive(mode: str, args, deploy: bool) -> dict:
    before = [round(x, 2) for x in os.getloadavg()]
    out = Path(args.out)
    known = set(out.glob("*-" + mode)) if out.exists() else set()
    cmd = [sys.executable, "-m", "mec_drive", "--minutes", str(args.minutes), "--mode", mode, "--strategy",
           args.strategy, "--ue", args.ue, "--out", str(out)] + ([] if deploy else ["--skip-deploy"]) + (
               ["--inventory", str(args.inventory)] if args.inventory else [])
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "apps")), check=False,
                       capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    new = sorted(set(out.glob("*-" + mode)) - known)
    after = [round(x, 2) for x in os.getloadavg()]
    if p.returncode != 0 or not new or not (new[-1] / "summary.json").exists():
        return {"mode": mode, "error": "mec_drive exited %d: %s" % (p.returncode, p.stderr.strip()[-400:]),
                "loadavg_before": before, "loadavg_after": after, "seconds": round(time.time() - t0, 1)}
    row = drive_row(new[-1])
    row.update(loadavg_before=before, loadavg_after=after, seconds=round(time.time() - t0, 1))
    return row


def summary_of(rows: list[dict]) -> dict:
    out = {}
    for mode in ("reactive", "ahead"):
        done = [r for r in rows if r["mode"] == mode and "error" not in r]
        out[mode] = {
            "drives": len([r for r in rows if r["mode"] == mode]), "drives_finished": len(done),
            "served_locally": summarize([r["served_locally"] for r in done if r["served_locally"] is not None]),
            "served_locally_after_first_handover": summarize(
                [r["served_locally_after_first_handover"] for r in done
                 if r["served_locally_after_first_handover"] is not None]),
            "migrations_failed": sum(r["migrations_failed"] for r in done),
            "counter_equals_zones_entered": sum(1 for r in done if r["counter"] == r["zones_entered"]),
            "load_1min_before": summarize([r["loadavg_before"][0] for r in done if "loadavg_before" in r]),
        }
        if mode == "ahead":
            out[mode]["per_ap_staged_low"] = summarize([r["per_ap_staged_low"] for r in done
                                                        if "per_ap_staged_low" in r])
            out[mode]["per_ap_staged_high"] = summarize([r["per_ap_staged_high"] for r in done
                                                         if "per_ap_staged_high" in r])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--ue", default="10.100.0.2")
    ap.add_argument("--strategy", default="m2", choices=["m1", "m2", "m3"])
    ap.add_argument("--out", default=str(ROOT / "results" / "drive-comparison"))
    ap.add_argument("--inventory", type=Path,
                    help="the zones lab's inventory (mec_drive's default); A2 starts on its source host, which must "
                         "serve the UE's first zone (10.100.0.2 starts in zone02: a copy of inventories/zones/ with "
                         "zone02's host in the group source)")
    ap.add_argument("--deploy", action="store_true", help="run apps.yml before the first drive (mec_drive's deploy)")
    ap.add_argument("--aggregate", nargs="+", type=Path, metavar="DRIVE_DIR",
                    help="only assemble the results file from finished drives' folders")
    ap.add_argument("--name", default="drive_comparison", help="the results file's name")
    args = ap.parse_args(argv)
    start()
    if args.aggregate:
        rows = [drive_row(d) for d in sorted(args.aggregate)]
    else:
        rows = []
        for pair in range(args.pairs):
            order = ("reactive", "ahead") if pair % 2 == 0 else ("ahead", "reactive")
            for mode in order:
                rows.append(run_drive(mode, args, deploy=args.deploy and not rows))
                print("drive %d: %s" % (len(rows), json.dumps(rows[-1])), flush=True)
    summary = summary_of(rows)
    path = write_results(args.name, rows, summary, extra={"ue": args.ue, "minutes": args.minutes,
                                                          "strategy": args.strategy, "pairs": args.pairs})
    for mode, s in summary.items():
        sl, af = s["served_locally"], s["served_locally_after_first_handover"]
        print("%-8s %d/%d drives finished; served locally median %s (min %s, max %s); after the first handover "
              "median %s (min %s, max %s); hops failed %d" % (
                  mode, s["drives_finished"], s["drives"], sl["median"], sl["min"], sl["max"], af["median"],
                  af["min"], af["max"], s["migrations_failed"]))
    print("written:", path)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
