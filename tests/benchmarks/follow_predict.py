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
- the source's cost per poll (CPU time of the prediction, the HTTP read included).

    .venv/bin/python tests/benchmarks/follow_predict.py [--duration 600] [--ue 10.100.0.1] [--horizons 20,40,60]

Asserts nothing; figures in docs/follow.md ("Ahead of the handover").
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import statistics
import sys
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


async def drive(ma, ue: str, duration: float, settings: dict) -> tuple[list, list, float, int]:
    """(predictions, handovers [(t, from, to)], CPU seconds spent polling, polls) over the drive."""
    sbx = await InProcessSandbox().start()
    start = sbx.sb.at(0.0)  # the platform time of simulated instant 0
    handovers = []
    sbx.sb.mobility.listeners.append(lambda changes: handovers.extend(
        (c.t, c.old_zone, c.new_zone) for c in changes if c.ue == ue and c.old_zone != c.new_zone))
    queue: asyncio.Queue = asyncio.Queue()
    src = ma.ApproachSource(ma.Settings({"platform_url": sbx.url, "ues": [ue], **settings}), queue)
    await src.start()
    cpu, polls = 0.0, 0
    try:
        t = 0.0
        step = src.s.poll_interval
        while t <= duration:
            await sbx.advance_to(t)
            before = time.process_time()
            await src.poll_once()
            cpu += time.process_time() - before
            polls += 1
            t += step
    finally:
        await src.api.close()
        await sbx.stop()
    predictions = []
    while not queue.empty():
        e = queue.get_nowait()
        predictions.append(dict(e, t=e["at_epoch"] - start))
    return predictions, handovers, cpu, polls


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
    args = ap.parse_args()
    ma = load_source()
    for horizon in [float(h) for h in args.horizons.split(",")]:
        predictions, handovers, cpu, polls = asyncio.run(drive(ma, args.ue, args.duration, {
            "horizon": horizon, "poll_interval": args.poll_interval}))
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
        print(f"cost: {1000 * cpu / max(polls, 1):.2f} ms CPU per poll ({polls} polls, HTTP read included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
