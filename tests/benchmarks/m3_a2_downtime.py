#!/usr/bin/env python3
"""Benchmark: m3 of the real app A2 on the local lab, back and forth, with clients attached (prints figures).

Each run migrates A2 (the zone counter) with strategy m3 from the host where it runs to the other one
(playbooks/migrate.yml, migration_cleanup=true so that it can come back), while
  * the UE-side probe (apps/mec_experiment/probe.py) asks both hosts for A2's state every 20 ms, and
  * a client holds an established TCP connection to A2 on the source (a request in flight), the case that
    made every m3 dump fail before the TCP policy (migration_criu_tcp=close);
after the run the client reconnects to the target and must read a state at least as far as the source's
at its stop (the probe's last answer from the source: the volume counter and the in-memory requestsOk).
The held connection's fate is counted per run (reset, closed, answered, or left open), and every run's raw
row goes to benchmarks/results/m3-a2-downtime.json.

Prints the success count, the wall downtime (source stopped -> target running, from the record) and the
user-seen downtime (the probe's gap) as median and p90, the median of every relocation step, the downtime stage
by stage (the record's downtime.stages: the source's pause, CRIU's dump and the runtime around it, the transfer,
the target's placing of the checkpoint, the engine before CRIU, CRIU's own restore, the runtime's hooks CRIU waited
for, the engine after CRIU, the running check), CRIU's own dump time, and the floor on the same lab host: CRIU dump
and restore of the same A2 process without the engine.

    .venv/bin/python tests/benchmarks/m3_a2_downtime.py --runs 10 [--name m3-a2-downtime-after]
Needs the lab and its apps (scripts/demo.sh, or playbooks/lab.yml and playbooks/apps.yml). Target (issue 20):
median wall downtime <= 0.4 s.
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "apps"))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from labtools import ANSIBLE_PLAYBOOK, INVENTORY, Host, http_json, reverse_inventory  # noqa: E402
from mec_experiment.probe import Probe  # noqa: E402
from results_file import summarize, write_results  # noqa: E402  (tests/benchmarks/, this script's folder)

A2_APP = os.path.join(ROOT, "apps", "a2_zone_counter", "app.py")


def addresses():
    """The lab's source and target addresses, and the inventory with them swapped (written beside it)."""
    with open(INVENTORY) as fh:
        inv = yaml.safe_load(fh)
    groups = inv["all"]["children"]["mec_hosts"]["children"]
    out = {}
    for role in ("source", "target"):
        (_name, hvars), = groups[role]["hosts"].items()
        out[role] = hvars["ansible_host"]
    return out, reverse_inventory()


def p90(values):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.9 * (len(values) - 1))))] if values else float("nan")


def hold_connection(address, port=3000):
    """An established connection with a request in flight (the server thread waits for its end)."""
    s = socket.create_connection((address, port), timeout=5)
    s.sendall(b"GET /state HTTP/1.1\r\nHost: a2\r\n")
    return s


def held_outcome(sock):
    """What the migration did to the held connection: "reset" (the reader sees a reset), "closed" (EOF),
    "answered" (the request in flight was answered: the connection survived), "open" (no answer, no close in
    5 s: a client left hanging)."""
    sock.settimeout(5)
    try:
        data = sock.recv(1)
        return "closed" if data == b"" else "answered"
    except socket.timeout:
        return "open"
    except OSError:
        return "reset"
    finally:
        sock.close()


def one_run(src_addr, dst_addr, inventory, results):
    before = http_json(src_addr)
    held = hold_connection(src_addr)
    probe = Probe("http", src_addr, dst_addr).start()
    time.sleep(0.5)
    p = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(ROOT, "playbooks", "migrate.yml"), "-e",
                        json.dumps(dict(app="a2", strategy="m3", network_label="bench", migration_cleanup=True,
                                        results_dir=results, state_check_url="http://127.0.0.1:3000/state"))],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    probe.wait_target_good(hold=0.5, limit=10)
    seen = probe.stop()
    reset = held_outcome(held)
    records = sorted(f for f in os.listdir(results) if f.endswith(".json"))
    record = json.load(open(os.path.join(results, records[-1]))) if records else None
    after = http_json(dst_addr) if p.returncode == 0 else None
    return p, record, seen, before, after, reset


FLOOR_SCRIPT = r'''
set -e
d=/root/mec-floor; rm -rf $d; mkdir -p $d/data
cat > $d/app.py
cd $d
for i in $(seq 1 %(n)d); do
  rm -rf img; mkdir img
  A2_PORT=3911 A2_DATA_DIR=$d/data MEC_GATEWAY_URL=http://127.0.0.1:9 setsid python3 app.py > out.log 2>&1 < /dev/null &
  pid=$!; sleep 1.5
  s=$(date +%%s.%%N); criu dump -t $pid -D img --tcp-close -o dump.log -v4; e=$(date +%%s.%%N)
  rm -f $d/pid
  r0=$(date +%%s.%%N); criu restore -D img -d --tcp-close -o restore.log -v4 --pidfile $d/pid; r1=$(date +%%s.%%N)
  python3 -c "import os; print('%%.4f %%.4f %%d' %% ($e-$s, $r1-$r0, \
sum(os.path.getsize('img/'+f) for f in os.listdir('img'))))"
  kill -9 $(cat $d/pid) 2>/dev/null || true; sleep 0.2
done
rm -rf $d
'''


def floor(host, n=5):
    """CRIU dump and restore of the same A2 process without the engine, on ``host`` (seconds, bytes)."""
    with open(A2_APP, "rb") as fh:
        p = host.run(FLOOR_SCRIPT % dict(n=n), check=False, stdin=fh, timeout=300)
    out = p.stdout.decode() if isinstance(p.stdout, bytes) else p.stdout
    rows = [tuple(float(x) for x in line.split()) for line in out.splitlines() if len(line.split()) == 3]
    if not rows:
        err = p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr
        print("floor: no figures (%s)" % err.strip()[-400:], file=sys.stderr)
    return rows


def stage_values(rows):
    """{stage: [seconds of every good run that measured it]} in the record's order of the stages."""
    out = {}
    for r in rows:
        if not r["ok"]:
            continue
        for k, v in (r.get("stages") or {}).items():
            if v is not None:
                out.setdefault(k, []).append(v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--floor-runs", type=int, default=5)
    ap.add_argument("--json", help="also write the records and probe findings to this file")
    ap.add_argument("--name", default="m3-a2-downtime",
                    help="the results file's name: benchmarks/results/<name>.json (default %(default)s)")
    args = ap.parse_args()
    if not os.path.exists(INVENTORY):
        sys.exit("the local lab is not up (%s missing): run scripts/demo.sh first" % INVENTORY)
    addr, reverse = addresses()
    hosts = {"forward": (addr["source"], addr["target"], INVENTORY),
             "reverse": (addr["target"], addr["source"], reverse)}

    def direction():
        # from wherever A2 runs now (a failed run leaves it where it was)
        if Host(addr["source"]).running("a2"):
            return "forward"
        if Host(addr["target"]).running("a2"):
            return "reverse"
        sys.exit("a2 runs on neither lab host: run playbooks/apps.yml -e apps_reset=true")
    ok, walls, seen_gaps, steps, dumps, rows = 0, [], [], {}, [], []
    held_counts = {}
    with tempfile.TemporaryDirectory(prefix="mec-bench-a2-") as tmp:
        for i in range(args.runs):
            src, dst, inv = hosts[direction()]
            results = os.path.join(tmp, "run%d" % i)
            os.makedirs(results)
            p, record, seen, before, after, held = one_run(src, dst, inv, results)
            good = p.returncode == 0 and record and record["status"] == "ok"
            # the state at the source's stop: the probe's last good answer from the source (its in-memory
            # requestsOk and its volume counter), against the target's first good answer
            at_stop = (seen.get("source") or {}).get("last_value") or {}
            first = (seen.get("target") or {}).get("first_value") or {}
            state_kept = bool(at_stop and first and first.get("counter", -1) >= at_stop.get("counter", 0)
                              and first.get("requestsOk", -1) >= at_stop.get("requestsOk", 0))
            held_counts[held] = held_counts.get(held, 0) + 1
            rows.append(dict(run=i + 1, source=src, target=dst, ok=bool(good), state_kept=state_kept,
                             held_connection=held, wall=(record or {}).get("downtime", {}).get("wall"),
                             user=seen.get("downtime"), freeze=(seen.get("freeze") or {}).get("longest"),
                             resolution=seen.get("resolution"), at_stop=at_stop, target_first=first,
                             stages=(record or {}).get("downtime", {}).get("stages"),
                             serving_after_running=(record or {}).get("downtime", {}).get("serving_after_running"),
                             restore_hooks=(record or {}).get("criu", {}).get("restore_hooks"),
                             checkpoint_linked=(record or {}).get("sizes", {}).get("checkpoint_linked"),
                             before=before, after=after, error=None if good else (record or {}).get("error")))
            if not good:
                print("run %d %s -> %s FAILED: %s" % (i + 1, src, dst, (record or {}).get("error")
                                                      or p.stdout[-1500:]), flush=True)
                continue
            ok += 1 if state_kept else 0
            wall = record["downtime"]["wall"]
            walls.append(wall)
            if seen.get("downtime") is not None:
                seen_gaps.append(seen["downtime"])
            rel = record["durations"]["relocation"]
            for part in ("source", "transfer", "target"):
                for step, value in rel[part].items():
                    steps.setdefault("%s.%s" % (part, step), []).append(value)
            if record["criu"]["dump_duration"] is not None:
                dumps.append(record["criu"]["dump_duration"])
            print("run %2d %s -> %s: wall %.3f s, user-seen %s s, freeze before %s s, delta %s of %s bytes, "
                  "requestsOk %s at the stop -> %s on the target (%s), held connection %s" % (
                      i + 1, src, dst, wall, seen.get("downtime"), (seen.get("freeze") or {}).get("longest"),
                      record["sizes"]["checkpoint_delta"], record["sizes"]["checkpoint_final"],
                      at_stop.get("requestsOk"), first.get("requestsOk"), "kept" if state_kept else "LOST", held),
                  flush=True)
        last_host = Host(hosts[direction()][0])
        fl = floor(last_host, args.floor_runs)
    print("\nm3 of A2 on the local lab, probe and a held connection attached: %d of %d runs ok with the state kept"
          % (ok, args.runs))
    if walls:
        print("wall downtime      median %.3f s, p90 %.3f s (target <= 0.4 s: %s)" % (
            statistics.median(walls), p90(walls), "met" if statistics.median(walls) <= 0.4 else "MISSED"))
    if seen_gaps:
        print("user-seen downtime median %.3f s, p90 %.3f s (20 ms probe)" % (statistics.median(seen_gaps),
                                                                              p90(seen_gaps)))
    for k, v in sorted(steps.items()):
        print("  %-22s median %.3f s  p90 %.3f s" % (k, statistics.median(v), p90(v)))
    if dumps:
        print("  CRIU's own dump (log) median %.3f s" % statistics.median(dumps))
    stages = stage_values(rows)
    if stages:
        print("the downtime by stage (the record's downtime.stages; target_receive runs within transfer):")
        for k, v in stages.items():
            print("  %-22s median %.4f s  min %.4f  max %.4f  (%d runs)"
                  % (k, statistics.median(v), min(v), max(v), len(v)))
    if fl:
        print("floor on %s, the same A2 process without the engine (%d runs): criu dump median %.3f s, "
              "criu restore median %.3f s, images %.1f MB" % (last_host.address, len(fl),
                                                              statistics.median(r[0] for r in fl),
                                                              statistics.median(r[1] for r in fl),
                                                              statistics.median(r[2] for r in fl) / 1e6))
    # the held connection: with migration_criu_tcp=close the migration resets it and the client reconnects
    print("held connection: %s of %d runs" % (", ".join("%s %d" % kv for kv in sorted(held_counts.items())),
                                              args.runs))
    path = write_results(args.name, rows, {
        "runs": args.runs, "ok_state_kept": ok,
        "held_connection": held_counts,
        "wall_s": summarize(walls), "user_s": summarize(seen_gaps),
        "freeze_before_s": summarize([r["freeze"] for r in rows if r["ok"] and r["freeze"] is not None]),
        "criu_dump_s": summarize(dumps),
        "floor_dump_s": summarize([r[0] for r in fl]), "floor_restore_s": summarize([r[1] for r in fl]),
        "stages_s": {k: summarize(v) for k, v in stages.items()},
        "serving_after_running_s": summarize([r["serving_after_running"] for r in rows
                                              if r["ok"] and r["serving_after_running"] is not None])},
        extra={"steps_s": {k: summarize(v) for k, v in steps.items()}, "floor_runs": fl})
    print("results file: %s" % path)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
