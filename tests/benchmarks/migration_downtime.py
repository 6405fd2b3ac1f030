#!/usr/bin/env python3
"""Benchmark: downtime of playbooks/migrate.yml on the local lab (not a test; prints figures).

N migrations per strategy of a small stateless container and of a small volume-backed one (the counter
app of tests/integration/files/counter_app), each with a fresh container. Prints, per strategy and app,
the medians of the wall-clock downtime (source stop -> target running), of the sum of the relocation's
operations, their ratio, and the median of every relocation step, which shows what bounds the downtime.
Every run (failed ones too) and its whole record go to benchmarks/results/migration-downtime-<transfer>.json
(tests/benchmarks/results_file.py: commit, cores, load average), the medians with min/max as its summary.

    .venv/bin/python tests/benchmarks/migration_downtime.py --runs 3
(m3 of the real A2 with clients: m3_a2_downtime.py)
Targets on the local lab: m1/m2 < 0.5 s, m3 < 0.8 s, wall <= 1.3 x operations.

    .venv/bin/python tests/benchmarks/migration_downtime.py --a2 --runs 10
runs m3 of the real app A2 back and forth with the UE probe and a held connection attached, and the floor
without the engine (tests/benchmarks/m3_a2_downtime.py).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from labtools import INVENTORY, WORK_ROOT, Host, lab_hosts, load_image, migrate  # noqa: E402
from results_file import start, summarize, write_results  # noqa: E402  (tests/benchmarks/, this script's folder)

IMAGE = "mec-test/counter:1"
TARGETS = {"m1": 0.5, "m2": 0.5, "m3": 0.8}


def ensure_image(src):
    """The counter image built here from counter_app, on the source host (loaded when its id differs)."""
    base = next((b for b in ("mec-lab/base:bookworm", "mec-test/base:bookworm")
                 if subprocess.run(["docker", "image", "inspect", b], capture_output=True).returncode == 0), None)
    if base is None:
        sys.exit("no local base image to build %s from" % IMAGE)
    subprocess.run(["docker", "build", "-q", "--build-arg", "BASE=" + base, "--label", "mec.migration.test=1",
                    "-t", IMAGE, os.path.join(HERE, "..", "integration", "files", "counter_app")], check=True,
                   capture_output=True)
    want = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE], capture_output=True,
                          text=True).stdout.strip()
    if src.run(["docker", "image", "inspect", "-f", "{{.Id}}", IMAGE], check=False).stdout.strip() != want:
        load_image(IMAGE, src)


def one_run(src, dst, strategy, kind, transfer, results):
    name = "mb" + uuid.uuid4().hex[:8]
    run_id = "b" + uuid.uuid4().hex[:10]
    argv = ["docker", "run", "-d", "--name", name, "--label", "mec.migration.test=1"]
    if kind == "volume":
        argv += ["-v", name + "-data:/data"]
    if strategy == "m3":
        argv += ["--user", "0"]  # CRIU here cannot dump another user's process (no CAP_SYS_RESOURCE)
    src.out(argv + [IMAGE])
    try:
        src.wait_int(name, "/tmp/mem.value", minimum=5)
        rc, out, record = migrate(results, app=name, strategy=strategy, transfer=transfer, network_label="bench",
                                  run_id=run_id, migration_cleanup=True)
        if rc != 0 or not record or record["status"] != "ok":
            print("  run failed: %s" % (record or {}).get("error") or out[-1500:], file=sys.stderr)
        return rc, record, out
    finally:
        for h in (src, dst):
            h.run("docker rm -f %s; docker volume rm -f %s-data; docker images -q 'mec-migration/%s' | "
                  "xargs -r docker rmi -f; rm -rf %s/%s" % (name, name, name, WORK_ROOT, run_id), check=False)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- m3 on both engines, side by side
#
#     .venv/bin/python tests/benchmarks/migration_downtime.py --engines --runs 10
# m3 of the counter (volume, root) N times on the Podman lab (mec-pod-source -> mec-pod-target) and N times on the
# local Docker lab, one series right after the other;
# with --restart POLICY the app has that restart policy (on Podman the final checkpoint is then Podman's own: see
# podman_checkpoint.runtime_dump_safe); each run checks that the restored process kept its state (the difference of
# its in-memory and volume counts, which a fresh start would not keep). Writes
# benchmarks/results/m3-engines-<engine>.json per engine with the medians (min, max) of the wall downtime and of
# every downtime stage, and Podman's own --print-stats figures. The counter has no network service: no UE probe here
# (m3_a2_downtime.py has it, for A2 on the Docker lab).

STAGES = ("source_pause", "source_criu_dump", "source_runtime", "transfer", "target_receive", "target_place",
          "engine_before_criu", "criu_hooks", "criu_restore", "engine_after_criu", "running_check", "target_other",
          "unaccounted")


def _counts(host, name):
    out = host.out([host.cli, "exec", name, "sh", "-c", "cat /tmp/mem.value; cat /data/count"]).split()
    return int(out[0]), int(out[1])


def engine_run(src, dst, inventory, results, engine, restart=None):
    name = "me" + uuid.uuid4().hex[:8]
    run_id = "e" + uuid.uuid4().hex[:10]
    policy = ["--restart", restart] if restart else []
    src.out([src.cli, "run", "-d", "--name", name, "--user", "0"] + policy + ["-v", name + "-data:/data", IMAGE])
    try:
        src.wait_int(name, "/tmp/mem.value", minimum=5)
        before = _counts(src, name)
        rc, out, record = migrate(results, inventory=inventory, app=name, strategy="m3", network_label="bench",
                                  run_id=run_id, migration_cleanup=True)
        ok = rc == 0 and bool(record) and record["status"] == "ok"
        kept = None
        if ok:
            mem, vol = _counts(dst, name)
            kept = mem > before[0] and abs((vol - mem) - (before[1] - before[0])) <= 1
        if not ok:
            print("  run failed: %s" % ((record or {}).get("error") or out[-1500:]), file=sys.stderr)
        return dict(engine=engine, ok=ok, state_kept=kept, before=before, run_id=run_id, restart=restart,
                    checkpoint_via=(record or {}).get("criu", {}).get("checkpoint_via") if ok else None,
                    wall=(record or {}).get("downtime", {}).get("wall") if ok else None,
                    stages=(record or {}).get("downtime", {}).get("stages") if ok else None,
                    engine_dump_stats=(record or {}).get("criu", {}).get("engine_dump_stats") if ok else None,
                    engine_restore_stats=(record or {}).get("criu", {}).get("engine_restore_stats") if ok else None,
                    error=None if ok else ((record or {}).get("error") or out[-500:]))
    finally:
        for h in (src, dst):
            h.run("%s rm -f %s; %s volume rm -f %s-data; %s images -q 'mec-migration/%s' | xargs -r %s rmi -f; "
                  "rm -rf %s/%s" % (h.cli, name, h.cli, name, h.cli, name, h.cli, WORK_ROOT, run_id), check=False)


def engine_series(engine, runs, restart=None):
    """N m3 runs on one engine's lab (the app with the ``restart`` policy, if any); writes and returns its results
    file's summary."""
    if engine == "podman":
        from podman_labtools import INVENTORY as POD_INVENTORY, podman_pair
        src, dst = podman_pair()
        inventory = str(POD_INVENTORY)
    else:
        hosts = lab_hosts()
        src, dst = Host(hosts["source"]), Host(hosts["target"])
        inventory = INVENTORY
        ensure_image(src)
    start()
    rows = []
    with tempfile.TemporaryDirectory(prefix="mec-bench-") as results:
        for i in range(runs):
            row = engine_run(src, dst, inventory, os.path.join(results, str(i)), engine, restart)
            rows.append(row)
            if row["ok"]:
                print("  %s run %d: wall %.3f s, state kept %s" % (engine, i + 1, row["wall"], row["state_kept"]),
                      flush=True)
    good = [r for r in rows if r["ok"]]
    summary = {"runs": len(rows), "ok": len(good), "ok_state_kept": len([r for r in good if r["state_kept"]]),
               "wall_s": summarize([r["wall"] for r in good]),
               "stages_s": dict((k, summarize([r["stages"][k] for r in good if r["stages"].get(k) is not None]))
                                for k in STAGES if any(r["stages"].get(k) is not None for r in good))}
    for key in ("engine_dump_stats", "engine_restore_stats"):
        stats = [r[key] for r in good if r[key]]
        if stats:
            summary[key + "_us"] = dict((k, summarize([s[k] for s in stats if s.get(k) is not None]))
                                        for k in sorted(stats[0]))
    summary["checkpoint_via"] = sorted(set(r["checkpoint_via"] for r in good))
    path = write_results("m3-engines-%s%s" % (engine, "-restart-policy" if restart else ""), rows, summary,
                         extra={"app": "counter (volume, root)", "strategy": "m3", "inventory": inventory,
                                "restart": restart})
    print("%s: %d of %d ok, %d with the state kept; wall median %.3f s (min %.3f, max %.3f); results file %s" % (
        engine, summary["ok"], summary["runs"], summary["ok_state_kept"], summary["wall_s"]["median"],
        summary["wall_s"]["min"], summary["wall_s"]["max"], path))
    for k, v in summary["stages_s"].items():
        print("  %-20s median %.3f  min %.3f  max %.3f" % (k, v["median"], v["min"], v["max"]))
    return summary


def engines_main(argv):
    ap = argparse.ArgumentParser(description="m3 of the counter on the Podman lab and the local Docker lab")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--engines", default="podman,docker")
    ap.add_argument("--restart", help="the app's restart policy (e.g. unless-stopped: on Podman the final checkpoint "
                                      "is then Podman's own, not runc's); file m3-engines-<engine>-restart-policy")
    args = ap.parse_args(argv)
    for engine in args.engines.split(","):
        engine_series(engine, args.runs, args.restart)


def main():
    if "--engines" in sys.argv:
        i = sys.argv.index("--engines")
        rest = sys.argv[1:i] + sys.argv[i + 1:]
        if rest[:1] and not rest[0].startswith("-"):
            rest = ["--engines"] + rest
        return engines_main(rest)
    if "--a2" in sys.argv:
        # m3 of the real app A2 with the UE probe and a held connection (issue #9's benchmark)
        sys.argv.remove("--a2")
        sys.path.insert(0, HERE)
        import m3_a2_downtime
        return m3_a2_downtime.main()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3, help="migrations per strategy and app (default 3)")
    ap.add_argument("--strategies", default="m1,m2,m3")
    ap.add_argument("--apps", default="stateless,volume")
    ap.add_argument("--transfer", default="stream", choices=["stream", "ssh"])
    ap.add_argument("--json", help="also write all records' figures to this file")
    args = ap.parse_args()
    if not os.path.exists(INVENTORY):
        sys.exit("the local lab is not up (%s missing): run playbooks/lab.yml first" % INVENTORY)
    hosts = lab_hosts()
    src, dst = Host(hosts["source"]), Host(hosts["target"])
    ensure_image(src)
    rows, raw = [], []
    start()
    with tempfile.TemporaryDirectory(prefix="mec-bench-") as results:  # migrate.yml's records, copied below
        for strategy in args.strategies.split(","):
            for kind in args.apps.split(","):
                records = []
                for i in range(args.runs):
                    rc, rec, out = one_run(src, dst, strategy, kind, args.transfer,
                                           os.path.join(results, "%s-%s-%d" % (strategy, kind, i)))
                    ok = rc == 0 and bool(rec) and rec["status"] == "ok"
                    raw.append({"strategy": strategy, "app": kind, "run": i + 1, "ok": ok,
                                "wall": (rec or {}).get("downtime", {}).get("wall") if ok else None,
                                "operations_sum": (rec or {}).get("downtime", {}).get("operations_sum") if ok else None,
                                "error": None if ok else ((rec or {}).get("error") or out[-500:]), "record": rec})
                    if ok:
                        records.append(rec)
                        print("  %s %-9s run %d: wall %.3f s, operations %.3f s" % (
                            strategy, kind, i + 1, rec["downtime"]["wall"], rec["downtime"]["operations_sum"]),
                            flush=True)
                if not records:
                    continue
                steps = {}
                for rec in records:
                    rel = rec["durations"]["relocation"]
                    for part in ("source", "transfer", "target"):
                        for step, value in rel[part].items():
                            if step != "wait":
                                steps.setdefault("%s.%s" % (part, step), []).append(value)
                wall = median([r["downtime"]["wall"] for r in records])
                ops = median([r["downtime"]["operations_sum"] for r in records])
                rows.append((strategy, kind, len(records), wall, ops, wall / ops if ops else float("nan"),
                             dict((k, median(v)) for k, v in sorted(steps.items()))))
    print("\nmedian downtime on the local lab (transfer=%s, %d runs each)" % (args.transfer, args.runs))
    print("%-3s %-9s %4s %9s %9s %6s %7s  %s" % ("str", "app", "n", "wall[s]", "ops[s]", "ratio", "target",
                                                 "relocation steps (median s)"))
    for strategy, kind, n, wall, ops, ratio, steps in rows:
        ok = "ok" if wall < TARGETS[strategy] and ratio <= 1.3 else "MISSED"
        print("%-3s %-9s %4d %9.3f %9.3f %6.2f %7s  %s" % (strategy, kind, n, wall, ops, ratio, ok,
                                                           ", ".join("%s %.3f" % kv for kv in steps.items())))
    summary = {}
    for strategy, kind, n, _wall, _ops, ratio, steps in rows:
        mine = [r for r in raw if r["strategy"] == strategy and r["app"] == kind]
        summary["%s-%s" % (strategy, kind)] = {
            "runs": len(mine), "ok": n, "wall_s": summarize([r["wall"] for r in mine if r["ok"]]),
            "operations_s": summarize([r["operations_sum"] for r in mine if r["ok"]]),
            "ratio_of_medians": round(ratio, 3), "target_wall_s": TARGETS[strategy], "steps_median_s": steps}
    path = write_results("migration-downtime-%s" % args.transfer, raw, summary,
                         extra={"runs_per_cell": args.runs, "strategies": args.strategies, "apps": args.apps})
    print("results file: %s" % path)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([r["record"] for r in raw if r["record"]], fh, indent=1)


if __name__ == "__main__":
    main()
