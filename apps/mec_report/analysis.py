"""Numbers behind the report, from experiment records (no plotting here): cells, Table 8.1, Table 8.2,
and the comparison with the seed's findings."""

from __future__ import annotations

import statistics

from mec_experiment.records import attempt_of, dig, phase_total

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


def _run_key(r):
    return (r.get("app"), r.get("strategy"), r.get("network"), dig(r, "experiment.rep"))


def final_attempts(records):
    """One record per run of the matrix (app, strategy, network, rep): its last attempt. The report's figures
    and tables are over these, so a retried run counts once."""
    last = {}
    for r in records:
        key = _run_key(r)
        if key not in last or attempt_of(r) > attempt_of(last[key]):
            last[key] = r
    return list(last.values())


def attempt_summary(records):
    """{'runs', 'first_ok', 'final_ok', 'retried', 'attempts'}: runs of the matrix, how many succeeded at their
    first attempt, how many in the end, how many were run more than once, and all attempts."""
    first = [r for r in records if attempt_of(r) == 1]
    final = final_attempts(records)
    return {"runs": len(final), "first_ok": sum(r.get("status") == "ok" for r in first),
            "first": len(first), "final_ok": sum(r.get("status") == "ok" for r in final),
            "retried": sum(attempt_of(r) > 1 for r in final), "attempts": len(records)}


def ok(records):
    return [r for r in records if r.get("status") == "ok"]


# metric name -> (function of a record, unit label)
METRICS = {
    "source_image": (lambda r: dig(r, "sizes.source_image"), "bytes"),
    "tarball": (lambda r: dig(r, "sizes.tarball"), "bytes"),
    "checkpoint_full": (lambda r: dig(r, "sizes.checkpoint_full"), "bytes"),
    "pre_source": (lambda r: phase_total(r, "pre_relocation", "source"), "s"),
    "commit_freeze": (lambda r: r.get("commit_freeze"), "s"),
    "pre_transfer": (lambda r: phase_total(r, "pre_relocation", "transfer"), "s"),
    "pre_target": (lambda r: phase_total(r, "pre_relocation", "target"), "s"),
    "volume": (lambda r: dig(r, "sizes.volume"), "bytes"),
    "reloc_source": (lambda r: dig(r, "durations.relocation.source_total"), "s"),
    "reloc_transfer": (lambda r: dig(r, "durations.relocation.transfer_total"), "s"),
    "reloc_target": (lambda r: dig(r, "durations.relocation.target_total"), "s"),
    "downtime_wall": (lambda r: dig(r, "downtime.wall"), "s"),
    "downtime_user": (lambda r: dig(r, "downtime.user"), "s"),
    "freeze_user": (lambda r: dig(r, "downtime.user_pre_relocation_freeze"), "s"),
    "checkpoint_delta": (lambda r: dig(r, "sizes.checkpoint_delta"), "bytes"),
    "rsync_transferred": (lambda r: dig(r, "sizes.rsync_transferred_bytes"), "bytes"),
    "checkpoint_final": (lambda r: dig(r, "sizes.checkpoint_final"), "bytes"),
    "stream": (lambda r: dig(r, "sizes.stream"), "bytes"),
    "criu_dump": (lambda r: dig(r, "criu.dump_duration"), "s"),
    "delta_ratio": (lambda r: delta_ratio(r), "x"),
}

# The seed's m3 figures (chapter 8.3.2): every app made at least 13 MB of checkpoint data, A3 about 16 MB;
# rsync sent on average 2.9 MB of it, 4.52 times less than a full copy.
SEED_DELTA_RATIO = 4.52
SEED_CHECKPOINT_MB = (13.0, 16.0)
SEED_DELTA_MB = 2.9


def delta_ratio(record):
    """The relocation checkpoint against what of it was really sent (its page delta): the seed's rsync
    speedup. checkpoint_final / checkpoint_delta; for records without them (before the stream transfer)
    checkpoint_full / rsync_transferred_bytes. None when either is missing or zero."""
    final, delta = dig(record, "sizes.checkpoint_final"), dig(record, "sizes.checkpoint_delta")
    if not (final and delta):
        final, delta = dig(record, "sizes.checkpoint_full"), dig(record, "sizes.rsync_transferred_bytes")
    return round(final / delta, 3) if final and delta else None


def spread(vals):
    """{'n', 'median', 'min', 'max', 'p90'} of the values that are not None; None when there are none."""
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    p90 = vals[min(len(vals) - 1, max(0, int(round(0.9 * len(vals) + 0.5)) - 1))]
    return {"n": len(vals), "median": statistics.median(vals), "min": vals[0], "max": vals[-1], "p90": p90}


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
    wall = dig(record, "downtime.wall")
    if wall is None:
        return None
    return round(sum(p for p in parts if p is not None) + wall, 6)


def cell_medians(records):
    """{(app, strategy, network): {metric: median, 'runs': n, 'ok': n, 'first_ok': n}}: ``records`` are one per
    run (final_attempts); 'first_ok' counts the runs ok at their first attempt."""
    cells = {}
    for r in records:
        key = (r.get("app"), r.get("strategy"), r.get("network"))
        cell = cells.setdefault(key, {"runs": 0, "ok": 0, "first_ok": 0})
        cell["runs"] += 1
        cell["ok"] += r.get("status") == "ok"
        cell["first_ok"] += r.get("status") == "ok" and attempt_of(r) == 1
    for key, cell in cells.items():
        app, strategy, network = key
        for metric in ("downtime_wall", "downtime_user", "freeze_user", "pre_source", "pre_transfer", "pre_target",
                       "reloc_source"):
            vals = values(records, metric, app=app, strategy=strategy, network=network)
            cell[metric] = median(vals)
            cell[metric + "_spread"] = spread(vals)
        cell["migration_time"] = median([migration_time(r) for r in ok(records)
                                         if (r.get("app"), r.get("strategy"), r.get("network")) == key])
    return cells


# stages of a run before the migration itself: a failure there says nothing about the strategy
NOT_MIGRATED = ("start", "reset", "state before", "probe", "state watch")


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


def table_81_cells(records):
    """{(app, strategy, network): {'passed', 'runs', 'lost', 'failed'}}: Table 8.1 per cell of the matrix (runs that
    failed before the migration began are left out, as in ``table_81``)."""
    out = {}
    for r in records:
        if dig(r, "experiment.stage_failed") in NOT_MIGRATED:
            continue
        cell = out.setdefault((r.get("app"), r.get("strategy"), r.get("network")),
                              {"passed": 0, "runs": 0, "lost": 0, "failed": 0})
        cell["runs"] += 1
        passed = dig(r, "experiment.state_after.passed")
        if r.get("status") != "ok":
            cell["failed"] += 1
        elif passed is True:
            cell["passed"] += 1
        elif passed is False:
            cell["lost"] += 1
    return out


def m3_rows(records):
    """Per (app, network) of the m3 runs: spreads of the checkpoint sizes, the delta, its ratio (the seed's rsync
    speedup), the stream, CRIU's dump and the relocation on the source beside m1's and m2's."""
    rows = []
    m3 = [r for r in ok(records) if r.get("strategy") == "m3"]
    for app in ordered({r.get("app") for r in m3}, APPS):
        for network in ordered({r.get("network") for r in m3 if r.get("app") == app}, NETWORKS):
            row = {"app": app, "network": network}
            for metric in ("checkpoint_full", "checkpoint_final", "checkpoint_delta", "delta_ratio", "stream",
                           "criu_dump", "downtime_wall"):
                row[metric] = spread(values(records, metric, app=app, strategy="m3", network=network))
            for s in STRATEGIES:
                row["reloc_source_" + s] = spread(values(records, "reloc_source", app=app, strategy=s, network=network))
            rows.append(row)
    return rows


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

    # strictly: a tie is no finding
    fastest = [all(m["m1"] < v for s, v in m.items() if s != "m1" and v is not None)
               for m in cells.values() if m.get("m1") is not None and sum(v is not None for v in m.values()) > 1]
    detail = "; ".join("%s/%s: %s" % (a, n, fmt(m)) for (a, n), m in cells.items()) or "no successful runs"
    findings.append(("M1 has the shortest downtime (median, per app and network)",
                     _verdict(None if not fastest else all(fastest)),
                     "%d of %d comparable cells; %s" % (sum(fastest), len(fastest), detail)))
    slowest = [all(m["m3"] > v for s, v in m.items() if s != "m3" and v is not None)
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
                     "median %s bytes under n1, %s under n2"
                     % tuple("-" if v is None else "%.0f" % v for v in (v1, v2))))
    ratios = [v for v in (delta_ratio(r) for r in ok(records) if r.get("strategy") == "m3") if v is not None]
    rs = spread(ratios)
    deltas = spread(values(records, "checkpoint_delta", strategy="m3"))
    findings.append(("rsync sends the final checkpoint's delta: about 4.52x less than the checkpoint (2.9 MB)",
                     _verdict(None if rs is None else 3.0 <= rs["median"] <= 6.0),
                     "checkpoint_final / checkpoint_delta median %s (min-max %s) over %d m3 runs; delta median %s"
                     % ("-" if rs is None else "%.2fx" % rs["median"],
                        "-" if rs is None else "%.2f-%.2fx" % (rs["min"], rs["max"]), len(ratios),
                        "-" if deltas is None else "%.2f MB" % (deltas["median"] / 1e6))))
    sizes = {a: spread(values(records, "checkpoint_full", app=a, strategy="m3")) for a in APPS}
    sizes = {a: s for a, s in sizes.items() if s}
    low, high = SEED_CHECKPOINT_MB
    inside = [low * 0.9 <= s["median"] / 1e6 <= high * 1.1 for s in sizes.values()]
    findings.append(("Every app makes at least 13 MB of checkpoint data, A3 about 16 MB",
                     _verdict(None if not inside else all(inside)),
                     "; ".join("%s %.2f MB (%.2f-%.2f)" % (a, s["median"] / 1e6, s["min"] / 1e6, s["max"] / 1e6)
                               for a, s in sizes.items()) + " (median full checkpoint, min-max)" if sizes
                     else "needs m3 runs"))
    slow = []
    for app in ordered({r.get("app") for r in records}, APPS):
        for network in ordered({r.get("network") for r in records}, NETWORKS):
            meds = {s: median(values(records, "reloc_source", app=app, strategy=s, network=network))
                    for s in STRATEGIES}
            others = [meds[s] for s in ("m1", "m2") if meds[s] is not None]
            if meds["m3"] is not None and others:
                slow.append(((app, network), meds, all(meds["m3"] > other for other in others)))
    findings.append(("M3 is the slowest on the source during relocation (Figure 8.8)",
                     _verdict(None if not slow else all(flag for _, _, flag in slow)),
                     "%d of %d cells; %s" % (sum(flag for _, _, flag in slow), len(slow), "; ".join(
                         "%s/%s: %s" % (a, n, fmt(m)) for (a, n), m, _ in slow))
                     if slow else "needs m3 and m1/m2 runs"))
    return findings
