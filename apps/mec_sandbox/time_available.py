"""Time available for migration (the seed's section 8.4.3, Table 8.2).

For every moving UE of the scenario, simulate its trip and measure how long it stays with one MEC
host under each placement. A stay that is cut by the start or the end of the simulated window is
left out (its true length is unknown), and so is time without any MEC host (coverage gaps).

    PYTHONPATH=apps python -m mec_sandbox.time_available --placement per-ap --placement per-zone \
        --duration 3600 --out results/time_available
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from dataclasses import dataclass

from .mobility import PLACEMENTS, Mobility, Placement
from .scenario import ScenarioError, load_scenario

# Table 8.2 of the seed (ETSI MEC Sandbox, 4g-5g-wifi-macro), in seconds.
SEED_TABLE = {"per-ap": (12.301, 1.037), "per-zone": (53.151, 1.854)}


@dataclass
class Stay:
    placement: str
    ue: str
    host: str
    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def poa_timeline(scenario, duration: float, step: float) -> dict[str, list[tuple[float, str | None, str | None]]]:
    """Per moving UE: [(t, poa, zone), ...] at t=0 and at every change of point of access."""
    mobility = Mobility(scenario, Placement(scenario, "per-ap"), step=step)
    movers = [name for name, ue in scenario.ues.items() if ue.moving]
    timeline = {name: [(0.0, mobility.states[name].poa, mobility.states[name].zone)] for name in movers}
    mobility.listeners.append(lambda changes: [
        timeline[c.ue].append((c.t, c.new_poa, c.new_zone)) for c in changes if c.ue in timeline])
    # advance in chunks so listeners see changes as they come
    t = 0.0
    while t < duration:
        t = min(duration, t + 60.0)
        mobility.advance_to(t)
    return timeline


def stays_for(placement: Placement, timeline) -> list[Stay]:
    """Cut each UE's timeline into stays with one MEC host under ``placement``."""
    stays: list[Stay] = []
    for ue, events in timeline.items():
        _t0, poa0, zone0 = events[0]
        host, since, censored = placement.host_for(poa0, zone0, None), 0.0, True
        for t, poa, zone in events[1:]:
            new_host = placement.host_for(poa, zone, host)
            if new_host == host:
                continue
            if host is not None and not censored:
                stays.append(Stay(placement.mode, ue, host, since, t))
            censored = False
            host, since = new_host, t
        # the last stay is cut by the end of the window: left out
    return stays


def summarise(stays: list[Stay]) -> dict:
    d = sorted(s.duration for s in stays)
    if not d:
        return {"count": 0}
    q = statistics.quantiles(d, n=10) if len(d) >= 2 else [d[0]] * 9
    return {"count": len(d), "mean": statistics.fmean(d), "min": d[0], "p10": q[0],
            "median": statistics.median(d), "p90": q[-1], "max": d[-1]}


def write_outputs(out: str, results: dict[str, list[Stay]], meta: dict) -> dict[str, str]:
    os.makedirs(out, exist_ok=True)
    paths = {"csv": os.path.join(out, "time_available.csv"), "md": os.path.join(out, "time_available.md"),
             "png": os.path.join(out, "time_available.png")}
    with open(paths["csv"], "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["placement", "ue", "host", "start_s", "end_s", "duration_s"])
        for mode, stays in results.items():
            for s in stays:
                w.writerow([mode, s.ue, s.host, f"{s.start:.2f}", f"{s.end:.2f}", f"{s.duration:.2f}"])
    lines = [(f"Scenario `{meta['scenario']}`, moving UEs {meta['ues']}, simulated {meta['duration']:.0f} s "
              f"in steps of {meta['step']} s; stays cut by the window's start or end are left out."), "",
             ("| placement | MEC hosts | stays | average (s) | shortest (s) | p10 (s) | median (s) | p90 (s) "
              "| longest (s) | seed average (s) | seed shortest (s) |"),
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for mode, stays in results.items():
        s = summarise(stays)
        seed = SEED_TABLE.get(mode)
        seed_cols = f"{seed[0]:.3f} | {seed[1]:.3f}" if seed else "- | -"
        if s["count"]:
            lines.append(f"| {mode} | {meta['hosts'][mode]} | {s['count']} | {s['mean']:.3f} | {s['min']:.3f} | "
                         f"{s['p10']:.3f} | {s['median']:.3f} | {s['p90']:.3f} | {s['max']:.3f} | {seed_cols} |")
        else:
            lines.append(f"| {mode} | {meta['hosts'][mode]} | 0 | - | - | - | - | - | - | {seed_cols} |")
    with open(paths["md"], "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    _histogram(paths["png"], results)
    return paths


def _histogram(path: str, results: dict[str, list[Stay]]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results)
    fig, axes = plt.subplots(len(modes), 1, figsize=(8, 2.6 * len(modes)), squeeze=False)
    for ax, mode in zip(axes[:, 0], modes):
        d = [s.duration for s in results[mode]]
        if d:
            ax.hist(d, bins=40, color="#3b6ea5", edgecolor="white")
            ax.axvline(statistics.fmean(d), color="#c0392b", linestyle="--",
                       label=f"average {statistics.fmean(d):.1f} s")
            ax.legend(loc="upper right")
        ax.set_title(f"time with one MEC host, placement {mode} ({len(d)} stays)")
        ax.set_xlabel("seconds")
        ax.set_ylabel("stays")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def analyse(scenario_path: str | None, placements: list[str], duration: float, step: float,
            coverage: str | None = None) -> tuple[dict[str, list[Stay]], dict]:
    scenario = load_scenario(scenario_path)
    timeline = poa_timeline(scenario, duration, step)
    results, hosts = {}, {}
    for mode in placements:
        placement = Placement(scenario, mode, coverage=coverage)
        results[mode] = stays_for(placement, timeline)
        hosts[mode] = len(placement.hosts())
    meta = {"scenario": scenario.name, "ues": ", ".join(sorted(timeline)), "duration": duration, "step": step,
            "hosts": hosts}
    return results, meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mec_sandbox.time_available", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", help="AdvantEDGE scenario JSON (default: packaged 4g-5g-wifi-macro)")
    ap.add_argument("--placement", action="append", choices=PLACEMENTS,
                    help="repeatable; default: per-ap and per-zone (the seed's two)")
    ap.add_argument("--coverage", help="for --placement coverage: 'mep1:zone01:zone02/mep2:zone04'")
    ap.add_argument("--duration", type=float, default=3600.0, help="simulated seconds (default 3600)")
    ap.add_argument("--step", type=float, default=0.1, help="simulation step in seconds (default 0.1)")
    ap.add_argument("--out", required=True, help="directory for time_available.{md,csv,png}")
    args = ap.parse_args(argv)
    try:
        results, meta = analyse(args.scenario, args.placement or ["per-ap", "per-zone"], args.duration,
                                args.step, args.coverage)
    except (ScenarioError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = write_outputs(args.out, results, meta)
    with open(paths["md"], encoding="utf-8") as fh:
        print(fh.read())
    print("wrote " + ", ".join(paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
