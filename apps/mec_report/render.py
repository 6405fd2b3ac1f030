"""Markdown page and PNG figures of the experiment report."""

from __future__ import annotations

import random
from pathlib import Path

from mec_experiment.records import csv_text, dig

from . import analysis as an

FIGURES = [
    # (file, seed figure, title, metric, group by, hue, filter, scale, unit)
    ("fig_8_1_image_sizes.png", "8.1", "Container image sizes", "source_image", ("app",), None, {}, 1e-6, "MB"),
    ("fig_8_2_tarball_sizes.png", "8.2", "Tarball sizes (m3: + full checkpoint in the checkpoint figure)",
     "tarball", ("app", "strategy"), None, {}, 1e-6, "MB"),
    ("fig_8_2b_checkpoint_sizes.png", "8.2", "Full checkpoint sizes (m3)", "checkpoint_full", ("app", "strategy"),
     None, {"strategy": "m3"}, 1e-6, "MB"),
    ("fig_8_3_pre_source.png", "8.3", "Pre-relocation time on the source", "pre_source", ("app", "strategy"),
     None, {}, 1, "s"),
    ("fig_8_4_commit_freeze.png", "8.4", "Freeze during docker commit", "commit_freeze", ("app", "strategy"),
     None, {}, 1e3, "ms"),
    ("fig_8_5_pre_transfer.png", "8.5", "Pre-relocation transfer (image + checkpoint)", "pre_transfer",
     ("app", "strategy"), "network", {}, 1, "s"),
    ("fig_8_6_pre_target.png", "8.6", "Pre-relocation time on the target", "pre_target", ("app", "strategy"),
     None, {}, 1, "s"),
    ("fig_8_7_a2_volume.png", "8.7", "A2's volume at the stop, by network", "volume", ("strategy",), "network",
     {"app": "a2"}, 1e-3, "kB"),
    ("fig_8_8_reloc_source.png", "8.8", "Relocation time on the source", "reloc_source", ("app", "strategy"),
     "network", {}, 1, "s"),
    ("fig_8_9_reloc_transfer.png", "8.9", "Relocation transfer (volume, checkpoint delta)", "reloc_transfer",
     ("app", "strategy"), "network", {}, 1, "s"),
    ("fig_8_10_reloc_target.png", "8.10", "Relocation time on the target", "reloc_target", ("app", "strategy"),
     "network", {}, 1, "s"),
    ("fig_8_11_downtime.png", "8.11", "Downtime (seed: stop to target started)", "downtime_wall",
     ("app", "strategy"), "network", {}, 1, "s"),
    ("fig_8_11b_user_downtime.png", "8.11", "Downtime the user sees (probe)", "downtime_user",
     ("app", "strategy"), "network", {}, 1, "s"),
]

HUE_COLORS = {"n1": "#3b6ea5", "n2": "#c0392b", None: "#3b6ea5"}


def _groups(records, group_by, hue, where):
    sel = [r for r in an.ok(records) if all(r.get(k) == v for k, v in where.items())]
    orders = {"app": an.APPS, "strategy": an.STRATEGIES, "network": an.NETWORKS}
    keys = sorted({tuple(r.get(g) for g in group_by) for r in sel},
                  key=lambda k: tuple((list(orders[g]).index(v) if v in orders[g] else 99, str(v))
                                      for g, v in zip(group_by, k)))
    hues = (an.ordered({r.get(hue) for r in sel}, an.NETWORKS) if hue else []) or [None]
    return sel, keys, hues


def plot_metric(records, path, title, metric, group_by, hue, where, scale, unit) -> int:
    """Box plot with every run as a point, per group (and hue); returns the number of points drawn."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel, keys, hues = _groups(records, group_by, hue, where)
    fn = an.METRICS[metric][0]
    fig, ax = plt.subplots(figsize=(min(12.0, max(5.0, 0.7 * len(keys) * len(hues) + 1.5)), 4.0))
    rng = random.Random(1)
    points, positions, labels = 0, [], []
    width = 0.8 / len(hues)
    for i, key in enumerate(keys):
        for j, h in enumerate(hues):
            vals = [fn(r) for r in sel if tuple(r.get(g) for g in group_by) == key and (hue is None or r.get(hue) == h)]
            vals = [v * scale for v in vals if v is not None]
            pos = i + (j - (len(hues) - 1) / 2) * width
            if vals:
                ax.boxplot(vals, positions=[pos], widths=width * 0.8, showfliers=False,
                           medianprops={"color": "black"}, boxprops={"color": HUE_COLORS.get(h, "#555")})
                ax.scatter([pos + rng.uniform(-width / 5, width / 5) for _ in vals], vals, s=14,
                           color=HUE_COLORS.get(h, "#555"), alpha=0.8, zorder=3,
                           label=h if (h and i == 0) else None)
                points += len(vals)
        positions.append(i)
        labels.append(" ".join(str(k) for k in key))
    ax.set_xticks(positions)
    ax.set_xticklabels(labels, rotation=0 if len(keys) < 7 else 30)
    ax.set_xlim(-0.6, max(len(keys) - 0.4, 0.6))
    ax.set_ylabel(unit)
    ax.set_title(title + ("" if points else " (no data)"))
    if hue and points:
        handles, names = ax.get_legend_handles_labels()
        if handles:
            ax.legend(handles, names, title=hue, loc="best")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return points


def _fmt(v, digits=3):
    if v is None:
        return "-"
    return ("%%.%df" % digits) % v


def _fmt_spread(s, scale=1.0, digits=3):
    """'median (min-max)' of a spread, scaled; '-' when there is none."""
    if not s:
        return "-"
    if s["n"] == 1:
        return _fmt(s["median"] * scale, digits)
    return "%s (%s-%s)" % tuple(_fmt(s[k] * scale, digits) for k in ("median", "min", "max"))


def _failure(r):
    """A failed run's cause: the error, where the run stopped and how it ended, CRIU's own reason."""
    text = str(r.get("error") or "")[:240].replace("\n", " ")
    where = ", ".join("%s %s" % (k, r[k]) for k in ("outcome", "phase") if r.get(k))
    stage = dig(r, "experiment.stage_failed")
    if stage:
        where = ("stage " + stage + (", " + where if where else ""))
    criu = [str(e) for e in (dig(r, "criu.errors") or [])][:3]
    return text + (" (%s)" % where if where else "") + ("; CRIU: " + " / ".join(criu)[:300] if criu else "")


def _stays(stays_args):
    """{placement: [stay seconds]} from the MEC sandbox's time-available analysis (seed Table 8.2)."""
    from mec_sandbox.time_available import analyse

    results, _meta = analyse(None, ["per-ap", "per-zone"], stays_args[0], stays_args[1])
    return {mode: [s.duration for s in stays] for mode, stays in results.items()}


def render(records, skipped, out: Path, stays=None, title_dir="") -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.csv").write_text(csv_text(records), encoding="utf-8")
    summary = an.attempt_summary(records)
    retried_failures = [r for r in records if r.get("status") != "ok" and r not in an.final_attempts(records)]
    records = an.final_attempts(records)  # one per run: a retried run counts once, with its last attempt
    lines = ["# Experiment report", "",
             "Results folder `%s`: %d runs; **%d of %d ok at their first attempt**, %d ok after retries "
             "(%d runs retried, %d attempts in all); %d files skipped." % (
                 title_dir, summary["runs"], summary["first_ok"], summary["first"], summary["final_ok"],
                 summary["retried"], summary["attempts"], len(skipped)),
             "The figures and tables below are over each run's last attempt.", ""]
    if skipped:
        lines += ["Skipped files:", ""] + ["- `%s`: %s" % s for s in skipped] + [""]
    nets = {}
    for r in records:
        m = dig(r, "experiment.network_measured")
        if isinstance(m, dict) and m.get("mbit_s") is not None:
            nets.setdefault(r.get("network"), m)
    if nets:
        lines += ["## Network profiles (measured between the lab hosts)", "",
                  "| profile | HTB rate (Mbit/s) | measured (Mbit/s) | bytes | seconds (receiver) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for n in an.ordered(set(nets), an.NETWORKS):
            m = nets[n]
            lines.append("| %s | %s | %s | %s | %s |" % (n, m.get("rate_mbit"), m.get("mbit_s"), m.get("bytes"),
                                                         m.get("receiver_seconds")))
        lines.append("")
    # medians per cell
    cells = an.cell_medians(records)
    lines += ["## Medians per cell", "",
              "Median (min-max) over the cell's ok runs. *Freeze before the relocation*: the longest gap between the "
              "source's answers to the probe while it still served (the commit's pause, the pre-relocation dump), "
              "apart from the relocation's downtime.", "",
              "| app | strategy | network | runs | ok (first attempt) | downtime, seed (s) | downtime, user (s) "
              "| freeze before the relocation, user (s) "
              "| pre-relocation source / transfer / target (s) | relocation, source (s) | migration time (s) |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |"]
    order = {"app": an.APPS, "strategy": an.STRATEGIES, "network": an.NETWORKS}

    def cell_key(kv):
        return tuple((list(order[k]).index(v) if v in order[k] else 99, str(v)) for k, v in zip(order, kv[0]))

    for (a, s, n), c in sorted(cells.items(), key=cell_key):
        lines.append("| %s | %s | %s | %d | %d (%d) | %s | %s | %s | %s / %s / %s | %s | %s |" % (
            a, s, n, c["runs"], c["ok"], c["first_ok"], _fmt_spread(c["downtime_wall_spread"]),
            _fmt_spread(c["downtime_user_spread"]), _fmt_spread(c["freeze_user_spread"]),
            _fmt(c["pre_source"], 2), _fmt(c["pre_transfer"], 2), _fmt(c["pre_target"], 2),
            _fmt_spread(c["reloc_source_spread"]), _fmt(c["migration_time"], 2)))
    lines.append("")
    failed = [r for r in records if r.get("status") != "ok"]
    if failed:
        lines += ["### Failed runs", ""] + ["- %s %s %s #%s: %s" % (
            r.get("app"), r.get("strategy"), r.get("network"), dig(r, "experiment.rep"), _failure(r))
            for r in failed] + [""]
    if retried_failures:
        lines += ["### Failed attempts that were retried", ""] + ["- %s %s %s #%s attempt %s: %s" % (
            r.get("app"), r.get("strategy"), r.get("network"), dig(r, "experiment.rep"),
            dig(r, "experiment.attempt") or 1, _failure(r)) for r in retried_failures] + [""]
    m3 = an.m3_rows(records)
    if m3:
        lines += ["## m3: checkpoints, their delta, the relocation on the source", "",
                  "Median (min-max) over the ok m3 runs. The seed: every app at least %.0f MB of checkpoint data, "
                  "A3 about %.0f MB; rsync sent on average %.1f MB of it, %.2fx less (Figure 8.9); m3 the slowest on "
                  "the source during relocation (Figure 8.8). *ratio* = checkpoint_final / checkpoint_delta (the "
                  "bytes of the final checkpoint really sent)." % (an.SEED_CHECKPOINT_MB + (an.SEED_DELTA_MB,
                                                                                            an.SEED_DELTA_RATIO)), "",
                  "| app | network | runs | checkpoint full (MB) | final (MB) | delta sent (MB) | ratio (seed %.2fx) "
                  "| stream (MB) | CRIU dump (s) | relocation, source: m3 / m2 / m1 (s) |" % an.SEED_DELTA_RATIO,
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for row in m3:
            n = max((row[k] or {}).get("n", 0) for k in ("checkpoint_full", "downtime_wall", "reloc_source_m3"))
            lines.append("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s / %s / %s |" % (
                row["app"], row["network"], n, _fmt_spread(row["checkpoint_full"], 1e-6, 2),
                _fmt_spread(row["checkpoint_final"], 1e-6, 2), _fmt_spread(row["checkpoint_delta"], 1e-6, 2),
                _fmt_spread(row["delta_ratio"], 1, 2), _fmt_spread(row["stream"], 1e-6, 2),
                _fmt_spread(row["criu_dump"]), _fmt_spread(row["reloc_source_m3"]), _fmt_spread(row["reloc_source_m2"]),
                _fmt_spread(row["reloc_source_m1"])))
        lines.append("")
    # figures
    lines += ["## Figures (every point is a run; boxes show the spread)", ""]
    for fname, seed_fig, title, metric, group_by, hue, where, scale, unit in FIGURES:
        n = plot_metric(records, out / fname, title, metric, group_by, hue, where, scale, unit)
        lines += ["### Figure %s: %s" % (seed_fig, title), "", "![%s](%s)" % (title, fname), "",
                  "%d runs with this value." % n, ""]
    # Table 8.1
    t81 = an.table_81(records)
    lines += ["## Table 8.1: viability (did the app run correctly on the target with its state)", "",
              "Derived from each run's state check after the move (A2: counter not restarted; A3: every zone key "
              "on the target; A1: its requests resumed through the target's gateway). n/m = runs that passed / runs.",
              ""]
    apps = an.ordered({a for a, _ in t81}, an.APPS)
    strategies = an.ordered({s for _, s in t81}, an.STRATEGIES)
    lines += ["| app | " + " | ".join(strategies) + " |", "| --- |" + " --- |" * len(strategies)]
    for a in apps:
        lines.append("| %s | " % a + " | ".join(
            ("%s (seed: %s)" % (t81[(a, s)]["text"], t81[(a, s)]["seed"])) if (a, s) in t81 else "-"
            for s in strategies) + " |")
    causes = ["- %s %s: %s" % (a, s, v["cause"].replace("\n", " ")) for (a, s), v in t81.items() if v["cause"]]
    if causes:
        lines += ["", "Why not:", ""] + causes
    per_cell = an.table_81_cells(records)
    if per_cell:
        nets = an.ordered({n for _, _, n in per_cell}, an.NETWORKS)
        lines += ["", "Per cell (runs that passed the state check / runs; *lost*: migrated without the state, "
                  "*failed*: the migration failed):", "",
                  "| app | network | " + " | ".join(strategies) + " |", "| --- | --- |" + " --- |" * len(strategies)]
        for a in apps:
            for n in nets:
                cells_txt = []
                for s in strategies:
                    c = per_cell.get((a, s, n))
                    if not c:
                        cells_txt.append("-")
                        continue
                    extra = ", ".join("%d %s" % (c[k], k) for k in ("lost", "failed") if c[k])
                    cells_txt.append("%d/%d%s" % (c["passed"], c["runs"], (" (%s)" % extra) if extra else ""))
                lines.append("| %s | %s | %s |" % (a, n, " | ".join(cells_txt)))
    lines.append("")
    # Table 8.2
    lines += ["## Table 8.2: time available for migration, and the measured migration time", ""]
    if stays is None:
        lines += ["(left out: --no-stays)", ""]
    else:
        try:
            stays_by = _stays(stays)
        except Exception as exc:  # noqa: BLE001 - the report renders what it can
            stays_by = None
            lines += ["The MEC sandbox's time-available analysis failed: %s" % exc, ""]
        if stays_by is not None:
            lines += ["Stays of the scenario's moving UEs with one MEC host (local MEC sandbox, Monaco "
                      "4g-5g-wifi-macro, %.0f simulated s in %.1f s steps; seed: 12.301 s / 1.037 s per POA, "
                      "53.151 s / 1.854 s per zone):" % stays, "",
                      "| placement | stays | average (s) | shortest (s) |", "| --- | ---: | ---: | ---: |"]
            for p, st in stays_by.items():
                lines.append("| %s | %d | %s | %s |" % (p, len(st), _fmt(sum(st) / len(st) if st else None),
                                                        _fmt(min(st) if st else None)))
            lines += ["", "Migration time = pre-relocation (source + transfer + target) + downtime (seed's), "
                      "median over the ok runs of all apps. *fits* = not longer than the average stay; "
                      "the share is the stays at least that long.", ""]
            rows = an.table_82(records, stays_by)
            placements = list(stays_by)
            lines += ["| strategy | network | migration time (s) | downtime (s) | " + " | ".join(placements) + " |",
                      "| --- | --- | ---: | ---: |" + " --- |" * len(placements)]
            for row in rows:
                cells_txt = []
                for p in placements:
                    f = row["placements"][p]
                    verdict = "fits" if f["fits_average"] else "does NOT fit the average"
                    if not f["fits_shortest"]:
                        verdict += ", not the shortest"
                    cells_txt.append("%s (%s of stays)" % (verdict, "-" if f["fraction"] is None
                                                           else "%.0f%%" % (100 * f["fraction"])))
                lines.append("| %s | %s | %s | %s | %s |" % (row["strategy"], row["network"],
                                                             _fmt(row["migration_time"], 2), _fmt(row["downtime"]),
                                                             " | ".join(cells_txt)))
            if not rows:
                lines.append("(no successful run: no migration time to compare)")
            lines.append("")
    # comparison
    lines += ["## Compared with the seed's findings", "", "| seed's finding | here | numbers |", "| --- | --- | --- |"]
    for finding, verdict, numbers in an.compare_with_seed(records):
        lines.append("| %s | **%s** | %s |" % (finding, verdict, numbers.replace("|", "/")))
    lines.append("")
    return "\n".join(lines) + "\n"
