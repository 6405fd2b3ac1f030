#!/usr/bin/env python3
"""Benchmark: where migrate.yml's time goes besides its operations, on the local lab (not a test; prints figures).

Runs N m2 migrations of an app (default A2) back and forth between the lab's two hosts (the first run moves it
away from the host it runs on now; each next one brings it back, with migration_cleanup=true so that it can
come back) and prints per run: the wall time of ansible-playbook, the play's span in the record (started_at ->
finished_at), the sum of the record's operations (pre-relocation: commit, save, copy, load, create...;
relocation: the downtime's operations_sum) and the overhead (wall - operations), then their medians, min and
max, and the load average before and after; also, counted by callback_plugins/mec_task_count.py, the tasks the
play evaluated (skipped ones included) and its remote round trips (tasks that ran a module on a lab host), and the
time from the command's start to the app running on the target (the record's target_running_at). --name writes the
raw runs and the summary to benchmarks/results/<name>.json (tests/benchmarks/results_file.py).

    .venv/bin/python tests/benchmarks/migrate_overhead.py --runs 4
    .venv/bin/python tests/benchmarks/migrate_overhead.py --runs 4 --profile   # + per-task times, per phase
    .venv/bin/python tests/benchmarks/migrate_overhead.py --runs 4 --env ANSIBLE_MODULE_COMPRESSION=ZIP_STORED
    .venv/bin/python tests/benchmarks/migrate_overhead.py --runs 4 --config /tmp/variant.cfg
    .venv/bin/python tests/benchmarks/migrate_overhead.py --runs 4 --follow --profile

--follow runs playbooks/follow.yml (one reactive hop by hand, -e follow_zone) instead, on a copy of the lab's
inventory in which each host serves one zone (zone-<host>), and prints also the time follow.yml spends deciding
(its start -> migrate.yml's run id) and recording (the record -> the end).

--profile enables ansible-core's own junit callback (ansible.posix.profile_tasks is not installed) and prints,
per phase of migrate.yml (the line ranges of its blocks), how many tasks ran or were skipped, their summed and
median time, the time between tasks (the strategy's own work), and the slowest tasks. --env sets an
environment variable of ansible-playbook (a setting to try without changing ansible.cfg); --config runs with
another configuration file (ANSIBLE_CONFIG; settings such as internal_poll_interval have no variable).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import results_file  # noqa: E402
from labtools import ANSIBLE_PLAYBOOK, INVENTORY, ROOT, Host, lab_hosts  # noqa: E402

PLAYBOOK = os.path.join(ROOT, "playbooks", "migrate.yml")
COUNT_CALLBACK_DIR = os.path.join(HERE, "callback_plugins")
FOLLOW = os.path.join(ROOT, "playbooks", "follow.yml")
CPROFILE = os.path.join(HERE, "ansible_cprofile.py")


def zones_inventory(inventory, path):
    """A copy of the lab's inventory at ``path`` in which each host serves the zone zone-<host> (follow.yml finds
    the hop's target by it); the key and known_hosts paths are made absolute so that they hold there."""
    with open(inventory) as fh:
        data = yaml.safe_load(fh)
    lab = data["all"]["children"]["mec_hosts"]
    for group in lab["children"].values():
        for name, host in (group.get("hosts") or {}).items():
            host["mec_zones"] = ["zone-" + name]
    here = os.path.dirname(os.path.abspath(inventory))
    for key in ("ansible_ssh_private_key_file", "ansible_ssh_common_args"):
        if key in lab.get("vars", {}):
            lab["vars"][key] = lab["vars"][key].replace("{{ inventory_dir }}", here)
    with open(path, "w") as fh:
        fh.write("# the lab's inventory with one zone per host (tests/benchmarks/migrate_overhead.py --follow)\n")
        yaml.safe_dump(data, fh, default_flow_style=False, sort_keys=False)
    return path


def phase_bounds():
    """[(first line, phase)] of migrate.yml, found in order by the lines that open its parts (so that the phases
    follow the file when it is edited); a part whose line is not found is left out."""
    markers = [("validate", lambda t: t.startswith("- name: Migrate a container")),
               ("preflight", lambda t: t.startswith("    - name: Preflight")),
               ("pre-relocation", lambda t: t == "    - name: Migrate"),
               ("relocation", lambda t: t.startswith("        - name: Journal the relocation")),
               ("rescue", lambda t: t == "      rescue:"),
               ("after", lambda t: t.startswith("    # ---") and "after success" in t)]
    bounds = [(1, "hop check")]
    with open(PLAYBOOK) as fh:
        for number, line in enumerate(fh, 1):
            if markers and markers[0][1](line.rstrip("\n")):
                bounds.append((number, markers.pop(0)[0]))
    return bounds


def phase_of(path, bounds):
    """The phase of a task from its path (file:line) as the junit callback reports it: the role's task file
    (roles/migration/tasks/<phase>.yml), else the part of migrate.yml it lies in."""
    file_name, _, line = path.rpartition(":")
    if os.sep + os.path.join("migration", "tasks") + os.sep in file_name:
        return os.path.splitext(os.path.basename(file_name))[0]
    if not file_name.endswith("migrate.yml"):
        return "record" if "migration_record" in file_name else os.path.basename(file_name)
    phase = bounds[0][1]
    for first, name in bounds:
        if int(line) >= first:
            phase = name
    return phase


def read_junit(directory):
    """[(path, task name, seconds, skipped)] of the one junit file in ``directory``, one entry per task in the order
    they ran: the callback writes one case per host and task, timed from the task's start to that host's result,
    so a task's time is its slowest host's (the hosts run it at once) and it is skipped when every host skipped."""
    files = [f for f in os.listdir(directory) if f.endswith(".xml")]
    if len(files) != 1:
        return []
    tasks = []
    for case in ET.parse(os.path.join(directory, files[0])).getroot().iter("testcase"):
        host, _, name = case.get("name").partition("] ")  # "[host] play name: task name"
        name = name.split(": ", 1)[-1]
        seconds, skipped = float(case.get("time") or 0), case.find("skipped") is not None
        last = tasks[-1] if tasks else None
        if last and last[:2] == [case.get("classname"), name] and host not in last[4]:
            last[2], last[3] = max(last[2], seconds), last[3] and skipped
            last[4].add(host)
        else:
            tasks.append([case.get("classname"), name, seconds, skipped, {host}])
    return [tuple(t[:4]) for t in tasks]


def operations(record):
    """The record's operations: every measured pre-relocation step plus the relocation's operations_sum."""
    pre = 0.0
    for part in record["durations"]["pre_relocation"].values():
        pre += sum(v for v in part.values() if isinstance(v, (int, float)))
    return pre, record["downtime"]["operations_sum"] or 0.0


def one_run(args, source, target, env, workdir, run_number=0, variant=None):
    """One migration source -> target; ``variant`` (--variant): (label, checkout, extra variables) to run another
    checkout's migrate.yml (from its folder, with its ansible.cfg) and/or with other variables."""
    root = variant[1] if variant else ROOT
    results = os.path.join(workdir, "results")
    junit = os.path.join(workdir, "junit")
    os.makedirs(junit)
    if args.follow:
        playbook, inventory = FOLLOW, zones_inventory(args.inventory, os.path.join(workdir, "hosts.yml"))
        extra = {"follow_app": args.app, "follow_strategy": args.strategy, "follow_zone": "zone-" + target,
                 "follow_migration_port": args.port, "follow_results_dir": results}
    else:
        playbook, inventory = os.path.join(root, "playbooks", "migrate.yml"), args.inventory
        extra = {"app": args.app, "strategy": args.strategy, "results_dir": results, "migration_port": args.port,
                 "migration_cleanup": True, "network_label": "overhead",
                 "migration_source_host": source, "migration_target_host": target}
    extra.update(json.loads(args.extra))
    if variant:
        extra.update(variant[2])
    env = dict(env)
    counts_file = os.path.join(workdir, "task_count.json")
    # the tasks evaluated and the remote round trips, counted by callback_plugins/mec_task_count.py
    callbacks = ["mec_task_count"] + (["ansible.builtin.junit"] if args.profile else [])
    plugin_dirs = [COUNT_CALLBACK_DIR] + [d for d in env.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if d]
    env.update(ANSIBLE_CALLBACKS_ENABLED=",".join(callbacks), ANSIBLE_CALLBACK_PLUGINS=os.pathsep.join(plugin_dirs),
               MEC_TASK_COUNT_FILE=counts_file)
    if args.profile:
        env.update(JUNIT_OUTPUT_DIR=junit, JUNIT_HIDE_TASK_ARGUMENTS="true")
    started, cpu_before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started_at = time.time()
    command = [ANSIBLE_PLAYBOOK, "-i", inventory, playbook, "-e", json.dumps(extra)]
    if args.cprofile:
        # the same ansible-playbook under cProfile, its main process and each worker (ansible_cprofile.py)
        command = [sys.executable, CPROFILE] + (["--cpu-only"] if args.cpu_only else []) \
            + [os.path.join(os.path.abspath(args.cprofile), "run%d" % run_number)] + command[1:]
    p = subprocess.run(command, cwd=root, env=env,
                       capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    wall, cpu_after, ended_at = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN), time.time()
    # the controller's CPU: ansible-playbook, its workers and their ssh clients (less noisy than the wall time)
    cpu = cpu_after.ru_utime + cpu_after.ru_stime - cpu_before.ru_utime - cpu_before.ru_stime
    records = sorted(f for f in os.listdir(results) if f.endswith(".json")) if os.path.isdir(results) else []
    record, hop = None, {}
    if records:
        with open(os.path.join(results, records[-1])) as fh:
            record = json.load(fh)
    if args.follow and os.path.exists(os.path.join(results, args.app + ".jsonl")):
        with open(os.path.join(results, args.app + ".jsonl")) as fh:
            hop = json.loads(fh.read().splitlines()[-1])
    if p.returncode != 0 or not record or record["status"] != "ok":
        sys.exit("migration %s -> %s failed (rc %s): %s\n%s\nIf it left the run's journal open (a later run is "
                 "refused), finish or undo it: ansible-playbook -i %s playbooks/recover.yml -e app=%s"
                 % (source, target, p.returncode, (record or {}).get("error"), p.stdout[-3000:], args.inventory,
                    args.app))
    pre, relocation = operations(record)
    span = record["timestamps"]["finished_at"] - record["timestamps"]["started_at"]
    with open(counts_file) as fh:
        counts = json.load(fh)
    # command start -> the app running on the target (the target's relocation half reports when its container
    # runs; the lab's hosts share the controller's clock)
    running_at = record["timestamps"].get("target_running_at")
    run = {"wall": wall, "cpu": cpu, "span": span, "pre_ops": pre, "relocation_ops": relocation,
           "ops": pre + relocation, "overhead": wall - pre - relocation,
           "to_serving": (running_at - started_at) if running_at else None,
           "tasks_evaluated": counts["tasks"], "tasks_skipped": counts["skipped"],
           "remote_round_trips": counts["remote_round_trips"], "source": source, "target": target,
           "run_id": record.get("run_id"), "record_timestamps": record["timestamps"],
           "per_task": [[t["name"], t["action"], t["remote"], sorted(set(t["hosts"].values()))]
                        for t in counts["per_task"]],
           "tasks": read_junit(junit) if args.profile else [], "variant": variant[0] if variant else None}
    if hop:
        # follow.yml's own plays around migrate.yml: its start -> the run's id, the record -> the end
        run["deciding"] = record["timestamps"]["started_at"] - float(hop["playbook_started_at"])
        run["recording"] = ended_at - record["timestamps"]["finished_at"]
    return run


def stats(values):
    return "median %7.2f  min %7.2f  max %7.2f" % (statistics.median(values), min(values), max(values))


def print_profile(runs):
    bounds = phase_bounds()
    per_phase, per_task = {}, {}
    for run in runs:
        seen = {}
        for path, name, seconds, skipped in run["tasks"]:
            phase = phase_of(path, bounds)
            entry = seen.setdefault(phase, {"ran": 0, "skipped": 0, "seconds": 0.0, "times": []})
            entry["skipped" if skipped else "ran"] += 1
            entry["seconds"] += seconds
            entry["times"].append(seconds)
            per_task.setdefault((phase, name), []).append(seconds)
        for phase, entry in seen.items():
            per_phase.setdefault(phase, []).append(entry)
    order = [name for _, name in bounds] + sorted(set(per_phase) - set(name for _, name in bounds))
    print("\nper phase (medians over %d runs; a task's time is its slowest host's)" % len(runs))
    print("%-15s %6s %8s %10s %14s" % ("phase", "ran", "skipped", "sum[s]", "median/task[s]"))
    for phase in order:
        if phase not in per_phase:
            continue
        entries = per_phase[phase]
        print("%-15s %6d %8d %10.2f %14.3f" % (
            phase, statistics.median(e["ran"] for e in entries), statistics.median(e["skipped"] for e in entries),
            statistics.median(e["seconds"] for e in entries),
            statistics.median(t for e in entries for t in e["times"])))
    task_sum = [sum(t[2] for t in run["tasks"]) for run in runs]
    print("tasks' summed time per run: %s; wall - that sum (start-up, the strategy between tasks): %s" % (
        stats(task_sum), stats([run["wall"] - s for run, s in zip(runs, task_sum)])))
    print("\nslowest tasks (mean per run, seconds; a task run more than once in a run is summed)")
    totals = {}
    for key, times in per_task.items():
        totals[key] = sum(times) / len(runs)
    for (phase, name), seconds in sorted(totals.items(), key=lambda kv: -kv[1])[:15]:
        print("  %6.2f  %-14s %s" % (seconds, phase, name[:100]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=4, help="migrations, alternately away and back (default 4)")
    ap.add_argument("--app", default="a2", help="the app's container (default a2, started by scripts/demo.sh)")
    ap.add_argument("--strategy", default="m2")
    ap.add_argument("--port", type=int, default=47795, help="the relocation stream's port (default 47795)")
    ap.add_argument("--profile", action="store_true", help="per-task times through the junit callback")
    ap.add_argument("--cprofile", metavar="DIR",
                    help="run ansible-playbook under cProfile (ansible_cprofile.py: the main process and each worker), "
                         "profiles to DIR/run<N>/ and a report printed after the runs; its figures are slower")
    ap.add_argument("--cpu-only", action="store_true",
                    help="with --cprofile: only each process's CPU time (main process, each worker), no profiler")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="an environment variable for ansible-playbook (repeatable)")
    ap.add_argument("--extra", default="{}", metavar="JSON",
                    help="more extra variables for migrate.yml, e.g. "
                         "'{\"ansible_python_interpreter\": \"auto_silent\"}'")
    ap.add_argument("--follow", action="store_true", help="run follow.yml (one reactive hop) instead of migrate.yml")
    ap.add_argument("--inventory", default=INVENTORY, help="another inventory of the same two lab hosts (default: "
                    "the lab's own); its key and known_hosts paths must hold where it lies")
    ap.add_argument("--config", help="run with this ansible.cfg instead of the checkout's (ANSIBLE_CONFIG)")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=CHECKOUT[:JSON]",
                    help="alternate the runs, one by one, between variants (repeatable; each runs --runs times): "
                         "LABEL=. is this checkout, else another checkout's folder (e.g. a git worktree of an older "
                         "commit; its playbook runs from there, with its ansible.cfg), optionally with more extra "
                         "variables, e.g. 'linear=.:{\"migration_play_strategy\": \"linear\"}'; --name NAME then "
                         "writes NAME_<LABEL>.json per variant")
    ap.add_argument("--json", help="also write the runs' figures to this file")
    ap.add_argument("--name", help="write the raw runs and the summary to benchmarks/results/<NAME>.json "
                                   "(tests/benchmarks/results_file.py)")
    ap.add_argument("--note", default="", help="a note kept with the results (what was measured)")
    args = ap.parse_args()
    if not os.path.exists(INVENTORY):
        sys.exit("the local lab is not up (%s missing): run playbooks/lab.yml first" % INVENTORY)
    env = dict(os.environ)
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep:
            sys.exit("--env %s: NAME=VALUE" % item)
        env[name] = value
    if args.config:
        env["ANSIBLE_CONFIG"] = os.path.abspath(args.config)
    variants = []
    for item in args.variant:
        label, sep, rest = item.partition("=")
        root, _, extra = rest.partition(":")
        if not sep or not root or not results_file.NAME_RE.match(label):
            sys.exit("--variant %s: LABEL=CHECKOUT[:JSON] (LABEL: lower-case letters, digits, . _ -)" % item)
        root = ROOT if root == "." else os.path.abspath(root)
        if not os.path.exists(os.path.join(root, "playbooks", "migrate.yml")):
            sys.exit("--variant %s: %s has no playbooks/migrate.yml" % (item, root))
        variants.append((label, root, json.loads(extra) if extra else {}))
    commits = {}
    for label, root, _extra in variants:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain"], capture_output=True, text=True)
        commits[label] = {"commit": head.stdout.strip() or None,
                          "dirty_paths": [line[3:] for line in dirty.stdout.splitlines()]}
    if variants and (args.follow or args.cprofile):
        sys.exit("--variant does not combine with --follow or --cprofile")
    hosts = lab_hosts(args.inventory)
    names = [hosts["source"].name, hosts["target"].name]
    where = [n for n, h in zip(names, (hosts["source"], hosts["target"])) if Host(h).running(args.app)]
    if len(where) != 1:
        sys.exit("%s must run on exactly one of %s (it runs on: %s); ./scripts/demo.sh starts A2"
                 % (args.app, ", ".join(names), ", ".join(where) or "none"))
    source = where[0]
    target = names[1 - names.index(source)]
    settings = args.env + (["ANSIBLE_CONFIG=" + args.config] if args.config else []) \
        + (["-e " + args.extra] if args.extra != "{}" else []) \
        + (["-i " + args.inventory] if args.inventory != INVENTORY else [])
    print("%s %s, %d runs%s from %s; settings: %s; load average %s" % (
        args.app, args.strategy, args.runs, " of each of %s, alternated" % ", ".join(v[0] for v in variants)
        if variants else "", source, " ".join(settings) or "ansible.cfg",
        open("/proc/loadavg").read().split(" ", 3)[:3]), flush=True)
    runs = []
    results_file.start()
    with tempfile.TemporaryDirectory(prefix="mec-overhead-") as tmp:
        # with --variant, the variants take turns run by run (A B B A A B ...: each variant runs --runs times, as
        # often in one direction as in the other), so that the machine's load (shared with others) weighs on each
        # alike
        for i in range(args.runs * max(1, len(variants))):
            turn = i // len(variants) if variants else 0
            variant = (variants if turn % 2 == 0 else variants[::-1])[i % len(variants)] if variants else None
            run = one_run(args, source, target, env, os.path.join(tmp, str(i)), i, variant)
            runs.append(run)
            print("run %d%s %s -> %s: wall %6.2f s  play %6.2f s  operations %5.2f s (pre %5.2f, relocation %4.2f)"
                  "  overhead %6.2f s  start->running on target %s s  tasks %d (%d skipped), remote round trips %d"
                  "  controller CPU %5.2f s%s" % (
                      i + 1, " [%s]" % variant[0] if variant else "", source, target, run["wall"], run["span"],
                      run["ops"], run["pre_ops"],
                      run["relocation_ops"], run["overhead"],
                      "%5.2f" % run["to_serving"] if run["to_serving"] is not None else "  ?",
                      run["tasks_evaluated"], run["tasks_skipped"], run["remote_round_trips"], run["cpu"],
                      "  follow.yml deciding %5.2f s, recording %5.2f s" % (run["deciding"], run["recording"])
                      if "deciding" in run else ""), flush=True)
            source, target = target, source
    print("\n%d runs, load average after %s" % (len(runs), open("/proc/loadavg").read().split(" ", 3)[:3]))
    if not variants:
        report(args, runs, args.name, settings, json.loads(args.extra))
        return
    for label, root, extra in variants:
        print("\nvariant %s (%s, -e %s)" % (label, root, json.dumps(extra)))
        report(args, [r for r in runs if r["variant"] == label], "%s_%s" % (args.name, label) if args.name else None,
               settings + ["variant %s: %s -e %s" % (label, root, json.dumps(extra))],
               dict(json.loads(args.extra), **extra),
               alternated=[v[0] for v in variants], checkout=commits[label])


def report(args, runs, name, settings, extra_vars, alternated=None, checkout=None):
    """Print the runs' figures (median, min, max) and write them to benchmarks/results/<name>.json."""
    summary = {}
    for key, label in (("wall", "wall"), ("span", "play (record)"), ("ops", "operations"),
                       ("overhead", "overhead"), ("to_serving", "start->running"),
                       ("tasks_evaluated", "tasks evaluated"), ("remote_round_trips", "remote trips"),
                       ("cpu", "controller CPU"), ("deciding", "follow deciding"),
                       ("recording", "follow recording")):
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            print("%-16s %s" % (label, stats(values)))
            summary[key] = results_file.summarize(values)
    if args.profile:
        print_profile(runs)
    if args.cprofile:
        subprocess.run([sys.executable, CPROFILE, "--report", os.path.join(os.path.abspath(args.cprofile), "run0")])
    if name:
        raw = [dict(r, tasks=[list(t) for t in r["tasks"]]) for r in runs]
        path = results_file.write_results(name, raw, summary,
                                          extra={"app": args.app, "strategy": args.strategy, "follow": args.follow,
                                                 # the play's strategy: -e migration_play_strategy, else the play's
                                                 # default (playbooks/migrate.yml of the checkout that ran)
                                                 "play_strategy": extra_vars.get("migration_play_strategy",
                                                                                 "default"),
                                                 # --variant: the runs alternated run by run with these variants'
                                                 "alternated_with": alternated,
                                                 # --variant: the checkout the variant ran (its commit, changes)
                                                 "variant_checkout": checkout,
                                                 "settings": settings, "note": args.note})
        print("raw results: %s" % path)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([dict(r, tasks=[list(t) for t in r["tasks"]]) for r in runs], fh, indent=1)


if __name__ == "__main__":
    main()
