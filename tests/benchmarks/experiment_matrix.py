"""Benchmark: the seed's whole matrix (3 apps x m1 m2 m3 x n1 n2 = 18 cells) on a lab, through
playbooks/experiment.yml. Prints every run's progress line, the total duration (target for 18 cells x 1
repetition: at most 15 minutes, met only when every cell migrated at its first attempt), what the resets
cost, the medians per cell with their min-max (for --reps 3: the 3-repetition matrix), that the congestion
is cleared on both hosts, and writes the report. Asserts nothing; the exit status is ansible-playbook's.
Writes benchmarks/results/experiment-matrix-r<reps>.json (every attempt's raw row, the total, first-attempt
and final success, whether the target was met).

    .venv/bin/python tests/benchmarks/experiment_matrix.py                 # 18 cells x 1: the duration
    .venv/bin/python tests/benchmarks/experiment_matrix.py --reps 3        # 18 cells x 3: medians per cell
    .venv/bin/python tests/benchmarks/experiment_matrix.py --summary DIR   # the tables of a finished run only
      [--inventory inventories/local/hosts.yml] [--results DIR] [--reset app|full] [--transfer stream]
      [--apps-vars '{"mec_gateway_upstream_url": ...}'] [--wait-others 1800] [--retry-failed]

Another matrix, tests/benchmarks/m3_a2_downtime.py (it moves a2) or a migration of a1-a3 would disturb the
runs: the benchmark waits until none runs (--wait-others seconds, then it stops without running).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "apps"))

from mec_experiment.lab import lab_hosts, ssh  # noqa: E402
from mec_experiment.records import dig, load_records  # noqa: E402
from mec_report import analysis  # noqa: E402
from results_file import write_results  # noqa: E402  (tests/benchmarks/, this script's folder)

# what must not run beside the matrix (command lines, as pgrep -af shows them)
OTHERS = ("m3_a2_downtime", "playbooks/experiment.yml", '"app": "a1"', '"app": "a2"', '"app": "a3"')


def others_running():
    proc = subprocess.run(["pgrep", "-af", "m3_a2_downtime|experiment.yml|migrate.yml"], capture_output=True, text=True)
    mine = {str(os.getpid())}
    return [line for line in proc.stdout.splitlines()
            if line.split(" ", 1)[0] not in mine and any(o in line for o in OTHERS)]


def wait_for_others(limit):
    deadline = time.monotonic() + limit
    while True:
        busy = others_running()
        if not busy:
            return True
        if time.monotonic() >= deadline:
            print("still running after %.0f s, matrix not started:\n  %s" % (limit, "\n  ".join(busy)))
            return False
        print("waiting for: %s" % busy[0][:160], flush=True)
        time.sleep(15)


def spread_text(s, digits=3):
    if not s:
        return "-"
    fmt = "%%.%df" % digits
    if s["n"] == 1:
        return fmt % s["median"]
    return (fmt + " (" + fmt + "-" + fmt + ")") % (s["median"], s["min"], s["max"])


CELLS = len(analysis.APPS) * len(analysis.STRATEGIES) * len(analysis.NETWORKS)
TARGET_S = 900  # 18 cells x 1 repetition in at most 15 minutes


def time_target(records, total, reps):
    """(met, why) of the time target: only a matrix whose every cell migrated at its first attempt, all in this
    one invocation, within TARGET_S. A failed cell (a preflight refusal of 11 s, say) makes a matrix short, not
    fast; a retried one spent time in another invocation."""
    runs = analysis.final_attempts(records)
    first_ok = [r for r in records if r.get("status") == "ok" and (dig(r, "experiment.attempt") or 1) == 1]
    want = CELLS * reps
    why = []
    if len(runs) < want:
        why.append("%d of %d runs recorded" % (len(runs), want))
    if len(first_ok) < want:
        why.append("%d of %d runs migrated at their first attempt" % (len(first_ok), want))
    if total > TARGET_S:
        why.append("%.1f min > %.0f min" % (total / 60, TARGET_S / 60))
    return not why, "; ".join(why)


def summary(results, total=None, rc=None, reps=None):
    records, skipped = load_records(results)
    all_records = records
    summary_of_attempts = analysis.attempt_summary(records)
    met = None
    if total is not None:
        print("matrix: %d runs, %d ok at their first attempt, %d ok in the end, in %.1f s = %.1f min, "
              "ansible-playbook rc=%s" % (summary_of_attempts["runs"], summary_of_attempts["first_ok"],
                                          summary_of_attempts["final_ok"], total, total / 60, rc))
        if reps == 1:
            met, why = time_target(records, total, reps)
            print("target (%d cells x 1, every cell migrated, <= %.0f min): %s" % (
                CELLS, TARGET_S / 60, "reached" if met else "MISSED (%s)" % why))
    records = analysis.final_attempts(records)
    resets = [dig(r, "experiment.reset") for r in records if isinstance(dig(r, "experiment.reset"), dict)]
    secs = analysis.spread([x.get("seconds") for x in resets])
    runs = analysis.spread([dig(r, "experiment.run_seconds") for r in records])
    fallbacks = [x for x in resets if x.get("playbook_seconds")]
    print("run: %s s; reset: %s s (median (min-max)) over %d runs, %d with playbooks/apps.yml%s" % (
        spread_text(runs, 1), spread_text(secs, 2), len(resets), len(fallbacks),
        "" if not fallbacks else " (%s)" % "; ".join(
            "%.1f s: %s" % (x["playbook_seconds"], "; ".join(x.get("playbook_because") or [x["method"]]))[:200]
            for x in fallbacks)))
    print("| app | strategy | network | ok/runs | state kept | downtime seed (s) | downtime user (s) "
          "| relocation source (s) | migration time (s) |")
    print("| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: |")
    cells = analysis.cell_medians(records)
    t81 = analysis.table_81_cells(records)
    order = (analysis.APPS, analysis.STRATEGIES, analysis.NETWORKS)
    for (a, s, n), c in sorted(cells.items(), key=lambda kv: tuple(
            (list(o).index(v) if v in o else 99, str(v)) for o, v in zip(order, kv[0]))):
        st = t81.get((a, s, n), {})
        print("| %s | %s | %s | %d/%d | %s | %s | %s | %s | %s |" % (
            a, s, n, c["ok"], c["runs"], "%d/%d" % (st.get("passed", 0), st.get("runs", 0)) if st else "-",
            spread_text(c["downtime_wall_spread"]), spread_text(c["downtime_user_spread"]),
            spread_text(c["reloc_source_spread"]),
            "-" if c["migration_time"] is None else "%.2f" % c["migration_time"]))
    for r in records:
        if r["status"] != "ok":
            print("failed: %s %s %s #%s: %s%s" % (r["app"], r["strategy"], r["network"], dig(r, "experiment.rep"),
                                                  str(r.get("error"))[:300], "; CRIU: " + " / ".join(
                                                      map(str, dig(r, "criu.errors") or []))[:300]
                                                  if dig(r, "criu.errors") else ""))
    for row in analysis.m3_rows(records):
        print("m3 %s %s: checkpoint full %s MB, final %s MB, delta %s MB, ratio %s (seed %.2fx), relocation on the "
              "source m3 %s / m2 %s / m1 %s s" % (
                  row["app"], row["network"], *(spread_text(_scaled(row[k], 1e-6), 2) for k in
                                                ("checkpoint_full", "checkpoint_final", "checkpoint_delta")),
                  spread_text(row["delta_ratio"], 2), analysis.SEED_DELTA_RATIO,
                  *(spread_text(row["reloc_source_" + s]) for s in ("m3", "m2", "m1"))))
    for finding, verdict, numbers in analysis.compare_with_seed(records):
        print("seed: %s: %s (%s)" % (finding, verdict.upper(), numbers[:400]))
    if skipped:
        print("skipped files: %s" % skipped)
    if total is not None:
        path = write_results(
            "experiment-matrix-r%d" % reps,
            [{"app": r.get("app"), "strategy": r.get("strategy"), "network": r.get("network"),
              "rep": dig(r, "experiment.rep"), "attempt": dig(r, "experiment.attempt") or 1, "status": r.get("status"),
              "run_seconds": dig(r, "experiment.run_seconds"), "downtime_wall": dig(r, "downtime.wall"),
              "downtime_user": dig(r, "downtime.user"), "state_passed": dig(r, "experiment.state_after.passed"),
              "error": (str(r.get("error"))[:300] if r.get("error") else None)} for r in all_records],
            {"total_s": round(total, 1), "ansible_rc": rc, "runs": summary_of_attempts["runs"],
             "first_attempt_ok": summary_of_attempts["first_ok"], "final_ok": summary_of_attempts["final_ok"],
             "target_s": TARGET_S if reps == 1 else None, "target_met": met},
            extra={"results_folder": str(results), "reps": reps})
        print("results file: %s" % path)


def _scaled(s, k):
    return None if not s else {key: (v * k if key != "n" else v) for key, v in s.items()}


def congestion_cleared(inventory):
    """Both hosts' root qdiscs after the matrix: HTB left behind would shape everyone's later traffic."""
    hosts = lab_hosts(inventory)
    for role in ("source", "target"):
        proc = ssh(hosts[role], "tc qdisc show | grep -E ' htb | netem ' || echo none")
        print("congestion on the %s after the matrix: %s" % (role, proc.stdout.strip() or proc.stderr.strip()))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inventory", default=os.environ.get("MEC_EXPERIMENT_INVENTORY",
                                                          str(ROOT / "inventories" / "local" / "hosts.yml")))
    ap.add_argument("--results", default=None, help="results folder (default results/benchmark-matrix-<time>-r<reps>)")
    ap.add_argument("--reps", type=int, default=1, help="repetitions per cell (1: the duration; 3: the medians)")
    ap.add_argument("--reset", default="app", choices=["app", "full"], help="experiment_reset")
    ap.add_argument("--transfer", default="stream", help="experiment_transfer")
    ap.add_argument("--apps-vars", default=os.environ.get("MEC_EXPERIMENT_APPS_VARS", ""))
    ap.add_argument("--wait-others", type=float, default=1800, help="seconds to wait for other lab users to finish")
    ap.add_argument("--summary", metavar="DIR", help="only print the tables of a finished results folder")
    ap.add_argument("--retry-failed", action="store_true",
                    help="into an existing --results folder: run the failed runs again (the others are skipped)")
    args = ap.parse_args()
    if args.summary:
        summary(args.summary)
        return 0
    results = args.results or str(ROOT / "results" / ("benchmark-matrix-%s-r%d" % (time.strftime("%Y%m%dT%H%M%S"),
                                                                                   args.reps)))
    if not wait_for_others(args.wait_others):
        return 3
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", args.inventory, "playbooks/experiment.yml",
            "-e", "experiment_repetitions=%d" % args.reps, "-e", "experiment_results_dir=%s" % results,
            "-e", "experiment_reset=%s" % args.reset, "-e", "experiment_transfer=%s" % args.transfer,
            "-e", "experiment_retry_failed=%s" % str(args.retry_failed).lower()]
    if args.apps_vars:
        argv += ["-e", json.dumps({"experiment_apps_extra_vars": json.loads(args.apps_vars)})]
    print("results: %s\n$ %s" % (results, " ".join(argv)), flush=True)
    Path(results).mkdir(parents=True, exist_ok=True)
    log = Path(results) / "experiment.log"
    start = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
        for line in proc.stdout:
            out.write(line)
            if '"msg": "a' in line and " #" in line:
                print("  %s" % line.strip().split('"msg": ', 1)[1].strip('"'), flush=True)
        rc = proc.wait()
    total = time.monotonic() - start
    summary(results, total, rc, args.reps)
    congestion_cleared(args.inventory)
    rep = subprocess.run([sys.executable, "-m", "mec_report", results], cwd=ROOT, text=True, capture_output=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT / "apps")))
    print(rep.stdout.strip() or rep.stderr.strip())
    return rc


if __name__ == "__main__":
    sys.exit(main())
