"""Numbers behind the report, from experiment records (no plotting here): cells, Table 8.1, Table 8.2,
and the comparison with the seed's findings."""

from __future__ import annotations

import statistics

from mec_experiment.records import _num, dig, phase_total

STRATEGIES = ("m1", "m2", "m3")
APPS = ("a1", "a2", "a3")
NETWORKS = ("n1", "n2")

# Table 8.1 of the seed: (app, strategy) -> viable
SEED_TABLE_81 = {("a1", "m1"): "yes (manual input)", ("a1", "m2"): "yes", ("a1", "m3"): "yes",
                 ("a2", "m1"): "no", ("a2", "m2"): "yes", ("a2", "m3"): "yes",
                 ("a3", "m1"): "no", ("a3", "m2"): "no", ("a3", "m3"): "yes"}


def ordered(values, order):
    known = [v for v in order if v in values]
    return known + sorted(v for v in values if v not in order)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ok(records):
    return [r for r in records if r.get("status") == "ok"]


# metric name -> (function of a record, unit label)
METRICS = {
    "source_image": (lambda r: _num(dig(r, "sizes.source_image")), "bytes"),
    "tarball": (lambda r: _num(dig(r, "sizes.tarball")), "bytes"),
    "checkpoint_full": (lambda r: _num(dig(r, "sizes.checkpoint_full")), "bytes"),
    "pre_source": (lambda r: phase_total(r, "pre_relocation", "source"), "s"),
    "commit_freeze": (lambda r: _num(r.get("commit_freeze")), "s"),
    "pre_transfer": (lambda r: phase_total(r, "pre_relocation", "transfer"), "s"),
    "pre_target": (lambda r: phase_total(r, "pre_relocation", "target"), "s"),
    "volume": (lambda r: _num(dig(r, "sizes.volume")), "bytes"),
    "reloc_source": (lambda r: _num(dig(r, "durations.relocation.source_total")), "s"),
    "reloc_transfer": (lambda r: _num(dig(r, "durations.relocation.transfer_total")), "s"),
    "reloc_target": (lambda r: _num(dig(r, "durations.relocation.target_total")), "s"),
    "downtime_wall": (lambda r: _num(dig(r, "downtime.wall")), "s"),
    "downtime_user": (lambda r: _num(dig(r, "downtime.user")), "s"),
    "checkpoint_delta": (lambda r: _num(dig(r, "sizes.checkpoint_delta")), "bytes"),
    "rsync_transferred": (lambda r: _num(dig(r, "sizes.rsync_transferred_bytes")), "bytes"),
}


def values(records, metric, **where):
    fn = METRICS[metric][0]
    out = []
    for r in ok(records):
        if all(r.get(k) == v for k, v in where.items()):
            v = fn(r)
            if v is not None:
                out.append(v)
    return out


def migration_time(record):
    """Pre-relocation (source + transfer + target) plus the seed's downtime: the time a migration needs."""
    parts = [phase_total(record, "pre_relocation", s) for s in ("source", "transfer", "target")]
    wall = _num(dig(record, "downtime.wall"))
    if wall is None:
        return None
    return round(sum(p for p in parts if p is not None) + wall, 6)


def cell_medians(records):
    """{(app, strategy, network): {metric: median, 'runs': n, 'ok': n}} over all records."""
    cells = {}
    for r in records:
        key = (r.get("app"), r.get("strategy"), r.get("network"))
        cell = cells.setdefault(key, {"runs": 0, "ok": 0})
        cell["runs"] += 1
        cell["ok"] += r.get("status") == "ok"
    for key, cell in cells.items():
        app, strategy, network = key
        for metric in ("downtime_wall", "downtime_user", "pre_source", "pre_transfer", "pre_target"):
            cell[metric] = median(values(records, metric, app=app, strategy=strategy, network=network))
        cell["migration_time"] = median([migration_time(r) for r in ok(records)
                                         if (r.get("app"), r.get("strategy"), r.get("network")) == key])
    return cells


# stages of a run before the migration itself: a failure there says nothing about the strategy
NOT_MIGRATED = ("start", "reset", "state before", "probe")


def table_81(records):
    """{(app, strategy): {'text', 'viable', 'runs', 'passed', 'failed', 'lost'}} from the state checks.

    Runs that failed before the migration began (reset, ...) are left out: they say nothing of the strategy."""
    out = {}
    records = [r for r in records if dig(r, "experiment.stage_failed") not in NOT_MIGRATED]
    apps = ordered({r.get("app") for r in records}, APPS)
    strategies = ordered({r.get("strategy") for r in records}, STRATEGIES)
    for app in apps:
        for strategy in strategies:
            rs = [r for r in records if r.get("app") == app and r.get("strategy") == strategy]
            if not rs:
                continue
            passed = [r for r in rs if r.get("status") == "ok" and dig(r, "experiment.state_after.passed") is True]
            lost = [r for r in rs if r.get("status") == "ok" and dig(r, "experiment.state_after.passed") is False]
            failed = [r for r in rs if r.get("status") != "ok"]
            manual = strategy == "m1" and any(r.get("start_command") or dig(r, "experiment.start_command")
                                              or "CMD" in (r.get("lost_config") or []) for r in passed)
            if passed and len(passed) == len(rs):
                text = "yes" + (" (manual input: start command)" if manual else "")
            elif passed:
                text = "partly" + (" (manual input: start command)" if manual else "")
            elif lost:
                text = "no: state lost"
            else:
                text = "no: migration failed"
            text += " %d/%d" % (len(passed), len(rs))
            cause = ""
            if lost:
                cause = str(dig(lost[0], "experiment.state_after.detail") or "")
            elif failed:
                cause = str(failed[0].get("error") or "")
            out[(app, strategy)] = {"text": text, "viable": bool(passed) and len(passed) == len(rs),
                                    "runs": len(rs), "passed": len(passed), "lost": len(lost),
                                    "failed": len(failed), "cause": cause[:160],
                                    "seed": SEED_TABLE_81.get((app, strategy), "-")}
    return out


def fit_fraction(stays, needed):
    """Share of stays at least ``needed`` seconds long."""
    if not stays or needed is None:
        return None
    return sum(1 for s in stays if s >= needed) / len(stays)


def table_82(records, stays_by_placement):
    """Rows per (strategy, network): median migration time and, per placement, whether it fits."""
    rows = []
    strategies = ordered({r.get("strategy") for r in ok(records)}, STRATEGIES)
    networks = ordered({r.get("network") for r in ok(records)}, NETWORKS)
    for strategy in strategies:
        for network in networks:
            times = [migration_time(r) for r in ok(records)
                     if r.get("strategy") == strategy and r.get("network") == network]
            need = median([t for t in times if t is not None])
            downtime = median(values(records, "downtime_wall", strategy=strategy, network=network))
            if need is None:
                continue
            row = {"strategy": strategy, "network": network, "migration_time": need, "downtime": downtime,
                   "placements": {}}
            for placement, stays in stays_by_placement.items():
                avg = statistics.fmean(stays) if stays else None
                shortest = min(stays) if stays else None
                row["placements"][placement] = {
                    "average": avg, "shortest": shortest, "fits_average": avg is not None and need <= avg,
                    "fits_shortest": shortest is not None and need <= shortest,
                    "fraction": fit_fraction(stays, need)}
            rows.append(row)
    return rows


def _verdict(flag):
    return {True: "agree", False: "disagree", None: "no data"}[flag]


def compare_with_seed(records):
    """[(finding, verdict, numbers)] for the seed's five findings."""
    findings = []
    cells = {}
    for app in ordered({r.get("app") for r in records}, APPS):
        for network in ordered({r.get("network") for r in records}, NETWORKS):
            meds = {s: median(values(records, "downtime_wall", app=app, strategy=s, network=network))
                    for s in STRATEGIES}
            if any(v is not None for v in meds.values()):
                cells[(app, network)] = meds

    def fmt(meds):
        return ", ".join("%s %s" % (s, "-" if v is None else "%.3f s" % v) for s, v in meds.items())

    fastest = [min((v, s) for s, v in m.items() if v is not None)[1] == "m1"
               for m in cells.values() if m.get("m1") is not None and sum(v is not None for v in m.values()) > 1]
    detail = "; ".join("%s/%s: %s" % (a, n, fmt(m)) for (a, n), m in cells.items()) or "no successful runs"
    findings.append(("M1 has the shortest downtime (median, per app and network)",
                     _verdict(None if not fastest else all(fastest)),
                     "%d of %d comparable cells; %s" % (sum(fastest), len(fastest), detail)))
    slowest = [max((v, s) for s, v in m.items() if v is not None)[1] == "m3"
               for m in cells.values() if m.get("m3") is not None and sum(v is not None for v in m.values()) > 1]
    findings.append(("M3 has the longest downtime", _verdict(None if not slowest else all(slowest)),
                     "%d of %d comparable cells (m3 needs a successful run)" % (sum(slowest), len(slowest))))
    growth = {}
    for s in STRATEGIES:
        a = median(values(records, "downtime_wall", strategy=s, network="n1"))
        b = median(values(records, "downtime_wall", strategy=s, network="n2"))
        if a is not None and b is not None:
            growth[s] = b - a
    hurt = None if "m3" not in growth or len(growth) < 2 else max(growth, key=growth.get) == "m3"
    findings.append(("Congestion (n2) lengthens M3's downtime most", _verdict(hurt),
                     ", ".join("%s %+.3f s" % (s, g) for s, g in growth.items()) or "needs n1 and n2 runs"))
    v1 = median(values(records, "volume", app="a2", network="n1"))
    v2 = median(values(records, "volume", app="a2", network="n2"))
    findings.append(("A2's volume grows under congestion",
                     _verdict(None if v1 is None or v2 is None else v2 > v1),
                     "median %s bytes under n1, %s under n2" % (v1, v2)))
    ratios = []
    for r in ok(records):
        full, delta = _num(dig(r, "sizes.checkpoint_full")), _num(dig(r, "sizes.rsync_transferred_bytes"))
        if full and delta:
            ratios.append(full / delta)
    ratio = median(ratios)
    findings.append(("rsync's checkpoint delta is about 4.5x smaller than the full checkpoint",
                     _verdict(None if ratio is None else 3.0 <= ratio <= 6.0),
                     "median full/transferred = %s over %d m3 runs" % (
                         "-" if ratio is None else "%.2fx" % ratio, len(ratios))))
    return findings
