#!/usr/bin/env python3
"""Benchmark: follow.yml's own deciding and recording around migrate.yml, on the local lab (prints figures, writes
benchmarks/results/<name>.json; not a test).

One reactive hop a run by hand (``-e follow_zone``), alternately away and back, with migrate_overhead.py's
``--follow`` run (its ``one_run``: a copy of the lab's inventory in which each host serves zone-<host>, m2, A2,
migration_cleanup) and its definitions:

- deciding: follow.yml's first task (the follow log's ``playbook_started_at``) -> migrate.yml's run start (the
  record's ``started_at``): the event and state files, the zone's host, the container read on every host, the hop;
- recording: the record's ``finished_at`` -> ansible-playbook's exit: the handled file and the follow log line.

``--no-hop`` asks for the zone of the host the app already runs on: follow.yml decides, finds nothing to move
(migrate.yml's plays get no host) and records; nothing changes on the lab (one container read per host). Per run:
``own`` = the follow log's ``finished_at - playbook_started_at`` (follow.yml's own work, start-up excluded) and
the wall time of ansible-playbook. A run takes a few seconds, so the pair is cheap to repeat.

``--controller-only`` (with ``--no-hop``) needs no lab: an inventory of two MEC hosts, z1 this machine (connection
local; ``--app`` must name a container running on its Docker engine) serving zone-z1 and z2 an address nobody
answers on, so that only follow.yml's own deciding and recording are timed (the container read is local).

``--compare OTHER`` alternates, run by run, playbooks/follow.yml with another follow playbook in playbooks/ (e.g.
the landed one saved as playbooks/follow_before.yml in a scratch clone): a before/after pair on the same lab, the
same migrate.yml and the same load; the summary has both, per playbook.

    .venv/bin/python tests/benchmarks/follow_overhead.py --runs 6 --compare follow_before.yml --name follow-overhead
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import migrate_overhead as mo  # noqa: E402
from results_file import start, summarize, write_results  # noqa: E402

UE = "10.100.0.1"


def key_of(playbook):
    """The summary's key of a playbook: its name without .yml (a dot would split the docs' figure paths)."""
    return playbook[:-4] if playbook.endswith(".yml") else playbook


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=6)
    ap.add_argument("--app", default="a2")
    ap.add_argument("--strategy", default="m2")
    ap.add_argument("--port", type=int, default=47795)
    ap.add_argument("--playbook", default="follow.yml", help="a follow playbook in playbooks/ (default follow.yml)")
    ap.add_argument("--compare", help="another follow playbook in playbooks/, run alternately with --playbook")
    ap.add_argument("--name", help="write benchmarks/results/<name>.json")
    ap.add_argument("--no-hop", action="store_true", help="follow the zone the app is in: decide and record only")
    ap.add_argument("--controller-only", action="store_true",
                    help="with --no-hop: no lab, the app is a container on this machine's engine")
    args = ap.parse_args()
    playbooks = [args.playbook] + ([args.compare] if args.compare else [])
    ns = argparse.Namespace(app=args.app, strategy=args.strategy, port=args.port, follow=True, profile=False,
                            inventory=mo.INVENTORY, extra="{}")
    if args.controller_only:
        return no_hop(args, playbooks, "z1", dict(os.environ, ANSIBLE_CONFIG=os.path.join(mo.ROOT, "ansible.cfg")))
    hosts = mo.lab_hosts(mo.INVENTORY)
    names = [hosts["source"].name, hosts["target"].name]
    where = [n for n, h in zip(names, (hosts["source"], hosts["target"])) if mo.Host(h).running(args.app)]
    if len(where) != 1:
        sys.exit("%s must run on exactly one of %s (it runs on: %s)" % (args.app, ", ".join(names),
                                                                        ", ".join(where) or "none"))
    source, target = where[0], names[1 - names.index(where[0])]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(mo.ROOT, "ansible.cfg"))
    if args.no_hop:
        return no_hop(args, playbooks, source, env)
    start()
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    print("%s with %s, %d runs each from %s; load average %s" % (" and ".join(playbooks), args.strategy, args.runs,
                                                                 source, load))
    runs = []
    with tempfile.TemporaryDirectory(prefix="mec-follow-overhead-") as tmp:
        for i in range(args.runs * len(playbooks)):
            playbook = playbooks[i % len(playbooks)]
            mo.FOLLOW = os.path.join(mo.ROOT, "playbooks", playbook)
            run = mo.one_run(ns, source, target, env, os.path.join(tmp, str(i)))
            runs.append(dict({k: run[k] for k in ("wall", "cpu", "span", "ops", "overhead", "deciding", "recording",
                                                  "tasks_evaluated", "remote_round_trips", "source", "target",
                                                  "run_id") if k in run},
                             playbook=playbook, loadavg_1min=os.getloadavg()[0]))
            print("run %d %-18s %s -> %s: wall %6.2f s  deciding %5.2f s  recording %5.2f s  (migrate.yml's play "
                  "%5.2f s)  load %.1f" % (i + 1, playbook, source, target, run["wall"], run["deciding"],
                                           run["recording"], run["span"], os.getloadavg()[0]), flush=True)
            source, target = target, source
    summary = {}
    for playbook in playbooks:
        mine = [r for r in runs if r["playbook"] == playbook]
        summary[key_of(playbook)] = {key: summarize(r[key] for r in mine)
                                     for key in ("deciding", "recording", "wall", "span", "cpu")}
        for key in ("deciding", "recording", "wall"):
            s = summary[key_of(playbook)][key]
            print("%-18s %-10s median %5.2f s  min %5.2f  max %5.2f" % (playbook, key, s["median"], s["min"], s["max"]))
        if all("tasks_evaluated" in r for r in mine):
            print("%-18s tasks evaluated (median) %g" % (playbook, statistics.median(r["tasks_evaluated"]
                                                                                     for r in mine)))
    if args.name:
        print("written:", write_results(args.name, runs, summary, extra={
            "playbooks": ["playbooks/" + p for p in playbooks], "app": args.app, "strategy": args.strategy,
            "definitions": {"deciding": "follow log playbook_started_at -> record started_at",
                            "recording": "record finished_at -> ansible-playbook exit"}}))


def no_hop(args, playbooks, host, env):
    runs = []
    with tempfile.TemporaryDirectory(prefix="mec-follow-nohop-") as tmp:
        if args.controller_only:
            inventory = os.path.join(tmp, "hosts.yml")
            with open(inventory, "w") as fh:
                fh.write("all:\n  children:\n    mec_hosts:\n      hosts:\n"
                         "        z1: {ansible_connection: local, ansible_python_interpreter: %s,\n"
                         "             mec_zones: [zone-z1]}\n"
                         "        z2: {ansible_host: 127.0.0.253, mec_zones: [zone-z2]}\n" % sys.executable)
        else:
            inventory = mo.zones_inventory(mo.INVENTORY, os.path.join(tmp, "hosts.yml"))
        start()
        print("%s, no hop (%s stays on %s), %d runs each; load average %s" % (
            " and ".join(playbooks), args.app, host, args.runs, " ".join(open("/proc/loadavg").read().split()[:3])))
        for i in range(args.runs * len(playbooks)):
            playbook = playbooks[i % len(playbooks)]
            results = os.path.join(tmp, "results%d" % i)
            # as a rulebook run: the event source's state folder with the UE's zone (read, and the handled file
            # written, by both versions)
            state = os.path.join(tmp, "state%d" % i)
            os.mkdir(state, 0o700)
            with open(os.path.join(state, UE + ".json"), "w") as fh:
                json.dump({"ue": UE, "zone": "zone-" + host, "seq": 1}, fh)
            extra = {"follow_app": args.app, "follow_strategy": args.strategy, "follow_zone": "zone-" + host,
                     "follow_results_dir": results, "follow_ue": UE, "follow_state_dir": state}
            t0 = time.monotonic()
            p = subprocess.run([mo.ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(mo.ROOT, "playbooks", playbook),
                                "-e", json.dumps(extra)], cwd=mo.ROOT, env=env, capture_output=True, text=True,
                               timeout=600, stdin=subprocess.DEVNULL)
            wall = time.monotonic() - t0
            if p.returncode != 0:
                sys.exit("%s failed (rc %d):\n%s" % (playbook, p.returncode, (p.stdout + p.stderr)[-3000:]))
            with open(os.path.join(results, args.app + ".jsonl")) as fh:
                line = json.loads(fh.read().splitlines()[-1])
            assert line["moved"] is False and line["target"] == host, line
            assert os.path.exists(os.path.join(state, "%s.%s.handled.json" % (UE, args.app)))
            own = float(line["finished_at"]) - float(line["playbook_started_at"])
            runs.append({"playbook": playbook, "wall": wall, "own": own, "loadavg_1min": os.getloadavg()[0]})
            print("run %2d %-18s wall %5.2f s  follow.yml's own work %5.2f s  load %.1f" % (
                i + 1, playbook, wall, own, os.getloadavg()[0]), flush=True)
    summary = {}
    for playbook in playbooks:
        mine = [r for r in runs if r["playbook"] == playbook]
        summary[key_of(playbook)] = {key: summarize(r[key] for r in mine) for key in ("own", "wall")}
        for key in ("own", "wall"):
            s = summary[key_of(playbook)][key]
            print("%-18s %-5s median %5.2f s  min %5.2f  max %5.2f" % (playbook, key, s["median"], s["min"], s["max"]))
    if args.name:
        print("written:", write_results(args.name, runs, summary, extra={
            "playbooks": ["playbooks/" + p for p in playbooks], "app": args.app, "mode": "no hop",
            "inventory": "controller only (z1 local, z2 unreachable)" if args.controller_only else "the local lab",
            "definitions": {"own": "follow log finished_at - playbook_started_at (no migration)",
                            "wall": "ansible-playbook start -> exit"}}))


if __name__ == "__main__":
    main()
