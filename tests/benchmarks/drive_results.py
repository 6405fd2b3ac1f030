#!/usr/bin/env python3
"""The drive experiment's figures as a results file: finished drives (``python -m mec_drive``) -> benchmarks/results.

A drive writes its own folder (``summary.json``, ``drive.json``, ...; docs/drive.md). This reads a set of them, for
instance alternating reactive/ahead pairs, and writes ``benchmarks/results/<name>.json`` with one raw entry per
drive (mode, car, served locally over the whole drive and after the first handover, counter against zones entered,
failed hops, handover -> serving and the UE-visible outage per hop, the load average around the drive) and a
summary per mode and per pair (the k-th reactive drive with the k-th ahead drive, in time order).

    .venv/bin/python tests/benchmarks/drive_results.py --name drive-fair-ue2 --log drives.log \\
        results/drive-fair/20261206T2120*-reactive results/drive-fair/20261206T2126*-ahead ...

``--log``: the output of the loop that ran the drives, with a line ``=== MODE start HH:MM:SS load L1 L5 L15 ...``
before and ``=== MODE end HH:MM:SS ... load L1 L5 L15 ...`` after each drive, in the drives' order; the drive
does not record the load average itself. The commit is the one of the checkout the drives ran from. Prints the
table; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

from results_file import summarize, write_results

LOG_RE = re.compile(r"^=== (?P<mode>reactive|ahead) (?P<what>start|end) (?P<time>\d\d:\d\d:\d\d)\b.*?"
                    r"load (?P<l1>[\d.]+) (?P<l5>[\d.]+) (?P<l15>[\d.]+)")


def read_log(path):
    """[(mode, loadavg at start, loadavg at end)] in the order the drives ran."""
    out, current = [], None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        m = LOG_RE.match(line.strip())
        if not m:
            continue
        load = [float(m.group(k)) for k in ("l1", "l5", "l15")]
        if m.group("what") == "start":
            current = (m.group("mode"), load)
        elif current is not None and current[0] == m.group("mode"):
            out.append((current[0], current[1], load))
            current = None
    return out


def drive_entry(folder):
    s = json.loads((folder / "summary.json").read_text())
    local = s["served_locally"]
    after = local.get("after_first_handover") or {}
    fig = s.get("figures", {})
    return {
        "drive": folder.name, "mode": s["mode"], "ue": s["ue"], "strategy": s["strategy"], "minutes": s["minutes"],
        "started_at": s["started_at"],
        "served_locally": local["ratio"], "served_locally_after_first_handover": after.get("ratio"),
        "counter": s["counter"]["a2"], "zones_entered": s["counter"]["zones_entered"],
        "handovers": s["hops"]["handovers"], "migrations": s["hops"]["migrations"],
        "migrations_failed": s["hops"]["migrations_failed"], "stagings_given_up": s["hops"]["stagings_given_up"],
        "rulebook_runs_failed_other": s["hops"]["rulebook_runs_failed_other"],
        "handover_to_serving_median_s": (fig.get("handover_to_serving_s") or {}).get("median"),
        "ue_downtime_per_hop_median_s": (fig.get("ue_downtime_per_hop_s") or {}).get("median"),
    }


def numbers(values):
    return [v for v in values if v is not None]


def build(entries):
    by_mode = {m: [e for e in entries if e["mode"] == m] for m in ("reactive", "ahead")}
    summary = {}
    for mode, es in by_mode.items():
        summary[mode] = {
            "drives": len(es),
            "served_locally": summarize(numbers(e["served_locally"] for e in es)),
            "served_locally_after_first_handover": summarize(
                numbers(e["served_locally_after_first_handover"] for e in es)),
            "handover_to_serving_median_s": summarize(numbers(e["handover_to_serving_median_s"] for e in es)),
            "ue_downtime_per_hop_median_s": summarize(numbers(e["ue_downtime_per_hop_median_s"] for e in es)),
            "counter_equals_zones_entered": sum(e["counter"] == e["zones_entered"] for e in es),
            "drives_without_failed_hop": sum(e["migrations_failed"] == 0 and e["rulebook_runs_failed_other"] == 0
                                             for e in es),
            "loadavg_1min_at_start": summarize(numbers((e.get("loadavg_before") or [None])[0] for e in es)),
        }
    pairs = []
    for r, a in zip(by_mode["reactive"], by_mode["ahead"]):
        pairs.append({"reactive": r["drive"], "ahead": a["drive"],
                      "served_locally_difference": (a["served_locally"] - r["served_locally"]
                                                    if None not in (a["served_locally"], r["served_locally"])
                                                    else None)})
    summary["pairs"] = pairs
    summary["served_locally_difference"] = summarize(numbers(p["served_locally_difference"] for p in pairs))
    return summary


def git_head(folder):
    p = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return (p.stdout.strip() or None), bool(dirty.stdout.strip())


def utc(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat(timespec="seconds")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("drives", nargs="+", type=Path, help="finished drives' folders (summary.json in each)")
    ap.add_argument("--name", required=True, help="benchmarks/results/<NAME>.json")
    ap.add_argument("--log", type=Path, help="the drives loop's output with the load average lines")
    ap.add_argument("--results-dir", type=Path, default=None, help="instead of benchmarks/results/")
    args = ap.parse_args(argv)
    folders = sorted(args.drives, key=lambda f: json.loads((f / "summary.json").read_text())["started_at"])
    entries = [drive_entry(f) for f in folders]
    if args.log:
        loads = read_log(args.log)
        if [m for m, _, _ in loads] != [e["mode"] for e in entries]:
            sys.exit("the log's drives %s are not the folders' %s" % ([m for m, _, _ in loads],
                                                                     [e["mode"] for e in entries]))
        for e, (_, before, after) in zip(entries, loads):
            e["loadavg_before"], e["loadavg_after"] = before, after
    commit, dirty = git_head(folders[0])
    if commit is None:
        sys.exit("%s is in no git checkout: the results file must name the commit the drives ran on" % folders[0])
    summary = build(entries)
    measured = {"command": ["python", "-m", "mec_drive", "(per drive: see runs)"], "commit": commit, "dirty": dirty,
                "started_at": utc(entries[0]["started_at"]),
                "finished_at": utc(entries[-1]["started_at"] + 60 * entries[-1]["minutes"])}
    if args.log:
        measured.update(loadavg_before=entries[0]["loadavg_before"], loadavg_after=entries[-1]["loadavg_after"])
    path = write_results(args.name, entries, summary, extra={"drives_from": str(folders[0].parent)},
                         results_dir=args.results_dir, measured=measured)
    print("%-34s %-8s %9s %12s %8s %7s %s" % ("drive", "mode", "local %", "after 1st %", "counter", "failed",
                                            "load 1 min start/end"))
    for e in entries:
        pct = ["-" if v is None else "%.1f" % (100 * v) for v in (e["served_locally"],
                                                                  e["served_locally_after_first_handover"])]
        print("%-34s %-8s %9s %12s %5s/%-2s %7d %s" % (e["drive"], e["mode"], pct[0], pct[1], e["counter"],
                                                      e["zones_entered"], e["migrations_failed"],
                                                      "%s / %s" % ((e.get("loadavg_before") or ["-"])[0],
                                                                   (e.get("loadavg_after") or ["-"])[0])))
    for mode in ("reactive", "ahead"):
        s = summary[mode]["served_locally"]
        if s["n"]:
            print("%s: served locally median %.1f %% [%.1f-%.1f], n=%d" % (mode, 100 * s["median"], 100 * s["min"],
                                                                          100 * s["max"], s["n"]))
    print("results:", path)


if __name__ == "__main__":
    main()
