#!/usr/bin/env python3
"""Benchmark: how well mec.migration.mec_approach predicts a UE's zone changes (issue #11, item 4).

Runs the local MEC sandbox in this process on loopback with a manual clock and the event source against it,
advances the clock one poll interval at a time over the drive (default: car 10.100.0.1, its first 600
simulated seconds) and polls after each step, exactly as the source does in real time. The true handovers
are the sandbox's own zone changes (at its simulation step, 50 ms). Prints, per horizon:

- predictions put on the queue, right ones (the UE's next zone change is from_zone -> to_zone, before the
  prediction's timeout) and wrong ones;
- per handover: whether the prediction standing at that instant (the latest one for that from_zone) was right,
  its lead (handover - the prediction's time; what the staging had) and its eta error (lead - eta);
- handovers predicted with a lead of at least --staging seconds (time to stage an m2 hop: image on the target,
  container created; ~13 s with Ansible's start-up on the lab);
- the source's cost per poll (CPU time of the prediction, the HTTP read included);
- with ``--relocate-lead L`` (default 2 s; 0: off), the early-relocation marks (``relocate_seq`` in
  ``<ue>.approach.json``), polling again at the instant a mark falls due as the source does: per mark, the
  handover that followed and the mark's lead on it (the target is L), and the marks taken back or wrong (the UE
  did not make that handover: an early relocation to a zone it did not enter).

    .venv/bin/python tests/benchmarks/follow_predict.py [--duration 600] [--ue 10.100.0.1] [--horizons 20,40,60]
        [--relocate-lead 2]

Asserts nothing; figures in docs/follow.md ("Ahead of the handover").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "apps"), str(ROOT / "tests" / "eda")]
from test_mec_mobility import InProcessSandbox  # noqa: E402  (the sandbox in this event loop, manual clock)


def load_source():
    path = ROOT / "extensions" / "eda" / "plugins" / "event_source" / "mec_approach.py"
    spec = importlib.util.spec_from_file_location("mec_approach_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def drive(ma, ue: str, duration: float, settings: dict, state_dir: str) -> tuple[list, list, float, int, list]:
    """(predictions, handovers [(t, from, to)], CPU seconds spent polling, polls, marks) over the drive; marks are
    (t, approach file after the poll) whenever a poll wrote or took back a mark."""
    sbx = await InProcessSandbox().start()
    start = sbx.sb.at(0.0)  # the platform time of simulated instant 0
    handovers = []
    sbx.sb.mobility.listeners.append(lambda changes: handovers.extend(
        (c.t, c.old_zone, c.new_zone) for c in changes if c.ue == ue and c.old_zone != c.new_zone))
    queue: asyncio.Queue = asyncio.Queue()
    src = ma.ApproachSource(ma.Settings({**sbx.source_args, "ues": [ue], "state_dir": state_dir,
                                         **settings}), queue)
    await src.start()
    cpu, polls, marks = 0.0, 0, []
    approach = Path(state_dir) / f"{ue}.approach.json"
    try:
        t = 0.0
        step = src.s.poll_interval
        while t <= duration:
            await sbx.advance_to(t)
            before = time.process_time()
            src.wake = None
            counts = (src.stats["marked"], src.stats["unmarked"])
            await src.poll_once()
            cpu += time.process_time() - before
            polls += 1
            if (src.stats["marked"], src.stats["unmarked"]) != counts:
                marks.append((t, json.loads(approach.read_text())))
            t += step if src.wake is None else min(step, max(0.02, src.wake))  # as ApproachSource.run
    finally:
        await src.api.close()
        await sbx.stop()
    predictions = []
    while not queue.empty():
        e = queue.get_nowait()
        predictions.append(dict(e, t=e["at_epoch"] - start))
    return predictions, handovers, cpu, polls, marks


def score_marks(marks: list, handovers: list, predictions: list) -> dict:
    """Per mark written: the UE's next handover, whether it is the marked one (from_zone -> to_zone, before the
    prediction's timeout), and the mark's lead on it; marks taken back are counted apart."""
    rows, taken_back = [], 0
    by_seq = {p["seq"]: p for p in predictions}
    for t, state in marks:
        if "relocate_seq" not in state:
            taken_back += 1
            continue
        p = by_seq[state["relocate_seq"]]
        nxt = next((h for h in handovers if h[0] > t - 0.05), None)
        ok = bool(nxt and nxt[1] == p["from_zone"] and nxt[2] == p["to_zone"] and nxt[0] <= p["t"] + p["timeout"])
        rows.append({"t": t, "seq": p["seq"], "to": p["to_zone"], "right": ok, "lead": (nxt[0] - t) if ok else None,
                     "eta": state["relocate_eta"]})
    return {"rows": rows, "taken_back": taken_back}


def score(predictions: list, handovers: list, staging: float) -> dict:
    right = wrong = 0
    for p in predictions:
        nxt = next((h for h in handovers if h[0] > p["t"]), None)
        if nxt and nxt[1] == p["from_zone"] and nxt[2] == p["to_zone"] and nxt[0] <= p["t"] + p["timeout"]:
            right += 1
        else:
            wrong += 1
    rows = []
    for i, (t, old, new) in enumerate(handovers):
        since = handovers[i - 1][0] if i else -1.0
        standing = [p for p in predictions if since < p["t"] < t and p["from_zone"] == old]
        p = standing[-1] if standing else None
        ok = bool(p and p["to_zone"] == new and t <= p["t"] + p["timeout"])
        rows.append({"t": t, "from": old, "to": new, "predicted": ok, "lead": (t - p["t"]) if ok else None,
                     "eta_error": (t - p["t"] - p["eta"]) if ok else None, "stay": t - since if i else None})
    leads = [r["lead"] for r in rows if r["lead"] is not None]
    return {"emitted": len(predictions), "right": right, "wrong": wrong, "rows": rows, "leads": leads,
            "in_time": sum(1 for x in leads if x >= staging)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ue", default="10.100.0.1")
    ap.add_argument("--duration", type=float, default=600.0, help="simulated seconds of the drive (default 600)")
    ap.add_argument("--horizons", default="20,40,60", help="horizons to compare, seconds (default 20,40,60)")
    ap.add_argument("--poll-interval", type=float, default=1.0)
    ap.add_argument("--staging", type=float, default=13.0, help="lead a staging needs, s (default 13)")
    ap.add_argument("--relocate-lead", type=float, default=2.0, help="the source's relocate_lead, s (default 2)")
    args = ap.parse_args()
    ma = load_source()
    for horizon in [float(h) for h in args.horizons.split(",")]:
        with tempfile.TemporaryDirectory() as state_dir:
            predictions, handovers, cpu, polls, marks = asyncio.run(drive(ma, args.ue, args.duration, {
                "horizon": horizon, "poll_interval": args.poll_interval, "relocate_lead": args.relocate_lead},
                state_dir))
        s = score(predictions, handovers, args.staging)
        print(f"\n== {args.ue}, {args.duration:g} s, horizon {horizon:g} s, poll every {args.poll_interval:g} s: "
              f"{len(handovers)} handovers, {s['emitted']} predictions ({s['right']} right, {s['wrong']} wrong)")
        print(f"{'handover':>9} {'from':>7} {'to':>7} {'stay':>6} {'predicted':>9} {'lead':>6} {'eta err':>7}")
        for r in s["rows"]:
            print(f"{r['t']:9.2f} {r['from']:>7} {r['to']:>7} {'' if r['stay'] is None else '%6.1f' % r['stay']:>6} "
                  f"{'yes' if r['predicted'] else 'NO':>9} {'' if r['lead'] is None else '%6.1f' % r['lead']:>6} "
                  f"{'' if r['eta_error'] is None else '%+7.1f' % r['eta_error']:>7}")
        leads = s["leads"]
        if leads:
            print(f"predicted {len(leads)}/{len(handovers)} handovers; lead median {statistics.median(leads):.1f} s, "
                  f"min {min(leads):.1f} s, max {max(leads):.1f} s; {s['in_time']} with a lead >= {args.staging:g} s")
        errors = [r["eta_error"] for r in s["rows"] if r["eta_error"] is not None]
        if errors:
            print(f"eta error (actual - predicted): median {statistics.median(errors):+.1f} s, "
                  f"range {min(errors):+.1f} .. {max(errors):+.1f} s")
        if args.relocate_lead > 0:
            m = score_marks(marks, handovers, predictions)
            print(f"early-relocation marks (relocate_lead {args.relocate_lead:g} s): {len(m['rows'])} written, "
                  f"{sum(r['right'] for r in m['rows'])} before the handover they marked, "
                  f"{sum(not r['right'] for r in m['rows'])} wrong, {m['taken_back']} taken back")
            for r in m["rows"]:
                print(f"  mark at {r['t']:8.2f} seq {r['seq']:>3} -> {r['to']}: eta {r['eta']:5.2f} s, "
                      + (f"handover {r['lead']:5.2f} s later" if r["right"] else "WRONG (not the next handover)"))
            leads = [r["lead"] for r in m["rows"] if r["right"]]
            if leads:
                print(f"  mark lead on its handover: median {statistics.median(leads):.2f} s, "
                      f"range {min(leads):.2f} .. {max(leads):.2f} s (target {args.relocate_lead:g})")
        print(f"cost: {1000 * cpu / max(polls, 1):.2f} ms CPU per poll ({polls} polls, HTTP read included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
