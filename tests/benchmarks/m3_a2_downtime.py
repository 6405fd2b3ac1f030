#!/usr/bin/env python3
"""Benchmark: m3 of the real app A2 between a lab's two hosts, back and forth, with clients attached (prints figures).

Each run migrates A2 (the zone counter) with strategy m3 from the host where it runs to the other one
(playbooks/migrate.yml, migration_cleanup=true so that it can come back), while
  * the UE-side probe (apps/mec_experiment/probe.py) asks both hosts for A2's state every 20 ms, and
  * a client holds an established TCP connection to A2 on the source (a request in flight), the case that
    made every m3 dump fail before the TCP policy (migration_criu_tcp=close);
after the run the target's first answer must show a state at least as far as the source's at its stop (the
probe's last answer from the source): the volume's counter and the in-memory requestsOk (a fresh start, which
loses the memory, starts requestsOk from 0 and fails this check; `--strategy m2` shows it). The held connection's
fate is counted per run (reset, closed, answered, or left open).

Prints the success count, the wall downtime (source stopped -> target running, from the record) and the
user-seen downtime (the probe's gap) as median, min, max and p90, the median of every relocation step, the downtime
stage by stage (the record's downtime.stages: the source's pause, CRIU's dump and the runtime around it, the
transfer, the target's placing of the checkpoint, the engine before CRIU, CRIU's own restore, the runtime's hooks
CRIU waited for, the engine after CRIU, the running check), and the floor on the same lab host: `criu dump` and
`criu restore` of the same A2 program without any engine; then each stage's gap to that floor (CRIU's dump against
the floor's dump, CRIU's restore against the floor's restore, every other stage against nothing).

--engine docker: the local lab (inventories/local/hosts.yml, two Docker hosts), A2 as playbooks/apps.yml deploys it:
    .venv/bin/python tests/benchmarks/m3_a2_downtime.py --engine docker --runs 10
--engine podman: the Podman lab's two Podman hosts (inventories/podman/hosts.yml, its groups source and target:
mec-pod-source, mec-pod-target), A2 as playbooks/apps.yml deploys it there
(`ansible-playbook -i inventories/podman/hosts.yml playbooks/apps.yml`):
    .venv/bin/python tests/benchmarks/m3_a2_downtime.py --engine podman --runs 10
The script deploys nothing: it stops before the first run when A2 does not run on exactly one of the two hosts,
or does not reach its upstream (its requestsOk must go on, else the state check would compare counters that never
move). Results: benchmarks/results/<name>.json (default m3-a2-downtime-<engine>) via results_file.py; the exit
status is 1 when a run failed or lost the state. Target (issue 20): median wall downtime <= 0.4 s.
"""
import argparse
import importlib.util
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
from results_file import RESULTS_DIR, start, summarize, write_results  # noqa: E402  (this script's folder)

A2_APP = os.path.join(ROOT, "apps", "a2_zone_counter", "app.py")
# the record's stages in their order (plugins/module_utils/records.py: standard library only, loaded from its file)
_spec = importlib.util.spec_from_file_location("mec_records", os.path.join(ROOT, "plugins", "module_utils",
                                                                           "records.py"))
_records = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_records)
DOWNTIME_STAGES = _records.DOWNTIME_STAGES
TARGET_S = 0.4
# the floor's counterpart of each stage: CRIU's own dump and restore; the floor has no engine, runtime or transfer
FLOOR_OF = {"source_criu_dump": "dump", "criu_restore": "restore"}


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


def state_kept(at_stop, first):
    """The target's first answer is at least as far as the source's last one: the volume's counter and the
    in-memory requestsOk (which a fresh start sets back to 0)."""
    return bool(at_stop and first and first.get("counter", -1) >= at_stop.get("counter", 0)
                and first.get("requestsOk", -1) >= at_stop.get("requestsOk", 0))


def one_run(src_addr, dst_addr, inventory, results, strategy, hop=None):
    """One migration of A2 from ``src_addr`` to ``dst_addr`` with the probe and a held connection; ``hop`` names
    the two hosts (migration_source_host/migration_target_host) where the inventory's groups do not."""
    before = http_json(src_addr)
    held = hold_connection(src_addr)
    probe = Probe("http", src_addr, dst_addr).start()
    time.sleep(0.5)
    extra = dict(app="a2", strategy=strategy, network_label="bench", migration_cleanup=True, results_dir=results,
                 state_check_url="http://127.0.0.1:3000/state")
    extra.update(hop or {})
    p = subprocess.run([ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(ROOT, "playbooks", "migrate.yml"), "-e",
                        json.dumps(extra)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    probe.wait_target_good(hold=0.5, limit=10)
    seen = probe.stop()
    reset = held_outcome(held)
    records = sorted(f for f in os.listdir(results) if f.endswith(".json"))
    record = None
    if records:
        with open(os.path.join(results, records[-1])) as fh:
            record = json.load(fh)
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
    """CRIU dump and restore of the same A2 program without the engine, on ``host`` (seconds, seconds, bytes)."""
    with open(A2_APP, "rb") as fh:
        p = host.run(FLOOR_SCRIPT % dict(n=n), check=False, stdin=fh, timeout=300)
    out = p.stdout.decode() if isinstance(p.stdout, bytes) else p.stdout
    rows = [tuple(float(x) for x in line.split()) for line in out.splitlines() if len(line.split()) == 3]
    if not rows:
        err = p.stderr.decode() if isinstance(p.stderr, bytes) else p.stderr
        print("floor: no figures on %s (%s)" % (host.address, err.strip()[-400:]), file=sys.stderr)
    return rows


def stage_values(rows):
    """{stage: [seconds of every good run that measured it]} in the record's order of the stages."""
    out = {}
    for r in rows:
        if not r["ok"]:
            continue
        stages = r.get("stages") or {}
        for k in list(DOWNTIME_STAGES) + sorted(set(stages) - set(DOWNTIME_STAGES)):
            if stages.get(k) is not None:
                out.setdefault(k, []).append(stages[k])
    return {k: out[k] for k in list(DOWNTIME_STAGES) + sorted(set(out) - set(DOWNTIME_STAGES)) if k in out}


def floor_gaps(stages, fl):
    """{stage: median of the stage minus the floor's counterpart (0 where the floor has none)}, and the floor's
    medians {dump, restore}; None where the floor was not measured."""
    if not fl:
        return None, None
    floor_med = {"dump": statistics.median(r[0] for r in fl), "restore": statistics.median(r[1] for r in fl)}
    gaps = {}
    for k, v in stages.items():
        if k == "target_receive":  # within transfer: counted there
            continue
        gaps[k] = statistics.median(v) - floor_med.get(FLOOR_OF.get(k), 0.0)
    return gaps, floor_med


# --------------------------------------------------------------------------- the labs


class DockerLab(object):
    """The local lab: two Docker hosts, A2 deployed by playbooks/apps.yml (scripts/demo.sh)."""

    engine, label = "docker", "the local lab (Docker)"
    version_cmd = "docker version --format '{{.Server.Version}}'"

    def __init__(self):
        if not os.path.exists(INVENTORY):
            sys.exit("the local lab is not up (%s missing): run scripts/demo.sh first" % INVENTORY)
        with open(INVENTORY) as fh:
            groups = yaml.safe_load(fh)["all"]["children"]["mec_hosts"]["children"]
        addr = {}
        for role in ("source", "target"):
            (name, hvars), = groups[role]["hosts"].items()
            addr[role] = hvars["ansible_host"]
        self.inventory = INVENTORY
        reverse = reverse_inventory()
        self.hosts = {"forward": (addr["source"], addr["target"], INVENTORY, None),
                      "reverse": (addr["target"], addr["source"], reverse, None)}
        self.source, self.target = Host(addr["source"]), Host(addr["target"])

    def direction(self):
        """From wherever A2 runs now (a failed run leaves it where it was); exactly one host must run it."""
        on = [h for h in (self.source, self.target) if h.running("a2")]
        if len(on) != 1:
            sys.exit("a2 runs on %s of %s's two hosts (%s, %s), not on exactly one: deploy it with "
                     "`ansible-playbook -i %s playbooks/apps.yml -e apps_reset=true`"
                     % ("neither" if not on else "both", self.label, self.source.address, self.target.address,
                        os.path.relpath(self.inventory, ROOT)))
        return "forward" if on[0] is self.source else "reverse"

    def host(self, address):
        return self.source if address == self.source.address else self.target

    def describe(self):
        """The engine, runtime and CRIU versions of both hosts and A2's container as deployed (for the file)."""
        out = {}
        for h in (self.source, self.target):
            p = h.run("%s; runc --version | head -1; criu --version | head -1" % self.version_cmd, check=False)
            out[h.address] = [line.strip() for line in (p.stdout or "").splitlines() if line.strip()]
        src = self.hosts[self.direction()][0]
        info = self.host(src).inspect("a2") or {}
        cfg = info.get("Config") or {}
        app = {"host": src, "image": cfg.get("Image"), "user": cfg.get("User"),
               "labels": {k: v for k, v in (cfg.get("Labels") or {}).items() if k.startswith("mec.")},
               "restart_policy": ((info.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name"),
               "gateway_url": next((e.split("=", 1)[1] for e in cfg.get("Env") or []
                                    if e.startswith("MEC_GATEWAY_URL=")), None)}
        return {"versions": out, "a2": app}

    def check_upstream(self):
        """A2 reaches its upstream before the runs: requestsOk goes on within 20 s."""
        where = self.hosts[self.direction()][0]
        first = http_json(where)
        deadline = time.monotonic() + 20
        while True:
            now = http_json(where)
            if now.get("requestsOk", 0) > first.get("requestsOk", 0):
                return now
            if time.monotonic() > deadline:
                sys.exit("a2 on %s does not reach its upstream (requestsOk stays at %s for 20 s; state %s): check "
                         "the gateway there (playbooks/apps.yml on %s)"
                         % (where, now.get("requestsOk"), now, os.path.relpath(self.inventory, ROOT)))
            time.sleep(0.5)


class PodmanLab(DockerLab):
    """The Podman lab's two Podman hosts (its groups source and target), A2 deployed there by playbooks/apps.yml."""

    engine, label = "podman", "the Podman lab (Podman)"
    version_cmd = "podman version --format '{{.Version}}'"

    def __init__(self):
        from podman_labtools import INVENTORY as POD_INVENTORY, podman_pair
        if not POD_INVENTORY.exists():
            sys.exit("the Podman lab is not up (%s missing): ansible-playbook playbooks/lab.yml "
                     "-e @playbooks/vars/lab_podman.yml" % POD_INVENTORY)
        self.source, self.target = podman_pair()
        self.inventory = str(POD_INVENTORY)
        s, t = self.source, self.target
        self.hosts = {
            "forward": (s.address, t.address, self.inventory,
                        dict(migration_source_host=s.name, migration_target_host=t.name)),
            "reverse": (t.address, s.address, self.inventory,
                        dict(migration_source_host=t.name, migration_target_host=s.name))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", choices=["docker", "podman"], default="docker",
                    help="docker: the local lab; podman: the Podman lab's two Podman hosts (default %(default)s)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--floor-runs", type=int, default=5)
    ap.add_argument("--strategy", default="m3", choices=["m2", "m3"],
                    help="m3 (default); m2 restarts the app from its image and volume, which loses the in-memory "
                         "requestsOk: a run that shows the state check failing")
    ap.add_argument("--json", help="also write the records and probe findings to this file")
    ap.add_argument("--name", help="the results file's name: <results-dir>/<name>.json (default "
                                   "m3-a2-downtime-<engine>)")
    ap.add_argument("--results-dir", default=str(RESULTS_DIR),
                    help="where the results file goes (default benchmarks/results/)")
    args = ap.parse_args(argv)
    name = args.name or "m3-a2-downtime-%s" % args.engine
    lab = DockerLab() if args.engine == "docker" else PodmanLab()
    lab.check_upstream()
    setting = lab.describe()
    start()
    rows, fl, last_host = measure(lab, args)
    return report(lab, args, name, rows, fl, last_host, setting)


def measure(lab, args):
    rows = []
    with tempfile.TemporaryDirectory(prefix="mec-bench-a2-") as tmp:
        for i in range(args.runs):
            src, dst, inv, hop = lab.hosts[lab.direction()]
            results = os.path.join(tmp, "run%d" % i)
            os.makedirs(results)
            load = [round(x, 2) for x in os.getloadavg()]
            p, record, seen, before, after, held = one_run(src, dst, inv, results, args.strategy, hop)
            good = bool(p.returncode == 0 and record and record["status"] == "ok")
            # the state at the source's stop: the probe's last good answer from the source (its in-memory
            # requestsOk and its volume counter), against the target's first good answer
            at_stop = (seen.get("source") or {}).get("last_value") or {}
            first = (seen.get("target") or {}).get("first_value") or {}
            kept = state_kept(at_stop, first)
            rec = record or {}
            rows.append(dict(run=i + 1, engine=lab.engine, strategy=args.strategy, source=src, target=dst, ok=good,
                             state_kept=kept, loadavg=load,
                             # the app still reaches its upstream on the target (requestsOk went on past the stop)
                             polling_after=bool(after and at_stop
                                                and after.get("requestsOk", -1) > at_stop.get("requestsOk", 0)),
                             engines=[(rec.get("source") or {}).get("engine"), (rec.get("target") or {}).get("engine")],
                             held_connection=held, wall=rec.get("downtime", {}).get("wall"),
                             user=seen.get("downtime"), freeze=(seen.get("freeze") or {}).get("longest"),
                             resolution=seen.get("resolution"), at_stop=at_stop, target_first=first,
                             stages=rec.get("downtime", {}).get("stages"),
                             serving_after_running=rec.get("downtime", {}).get("serving_after_running"),
                             restore_hooks=rec.get("criu", {}).get("restore_hooks"),
                             restore_attempts=rec.get("criu", {}).get("restore_attempts"),
                             checkpoint_via=rec.get("criu", {}).get("checkpoint_via"),
                             engine_dump_stats=rec.get("criu", {}).get("engine_dump_stats"),
                             engine_restore_stats=rec.get("criu", {}).get("engine_restore_stats"),
                             checkpoint_linked=rec.get("sizes", {}).get("checkpoint_linked"),
                             checkpoint_final=rec.get("sizes", {}).get("checkpoint_final"),
                             checkpoint_delta=rec.get("sizes", {}).get("checkpoint_delta"),
                             criu_dump=rec.get("criu", {}).get("dump_duration"),
                             steps=(rec.get("durations") or {}).get("relocation") if good else None,
                             before=before, after=after, error=None if good else rec.get("error")))
            if not good:
                print("run %d %s -> %s FAILED: %s" % (i + 1, src, dst, rec.get("error") or p.stdout[-1500:]),
                      flush=True)
                continue
            print("run %2d %s -> %s: wall %.3f s, user-seen %s s, freeze before %s s, delta %s of %s bytes, "
                  "requestsOk %s at the stop -> %s on the target (%s), held connection %s, load %s" % (
                      i + 1, src, dst, record["downtime"]["wall"], seen.get("downtime"),
                      (seen.get("freeze") or {}).get("longest"), record["sizes"]["checkpoint_delta"],
                      record["sizes"]["checkpoint_final"], at_stop.get("requestsOk"), first.get("requestsOk"),
                      "kept" if kept else "LOST", held, load[0]), flush=True)
        last_host = lab.host(lab.hosts[lab.direction()][0])
        fl = floor(last_host, args.floor_runs)
    return rows, fl, last_host


def report(lab, args, name, rows, fl, last_host, setting):
    good = [r for r in rows if r["ok"]]
    ok = len([r for r in good if r["state_kept"]])
    walls = [r["wall"] for r in good]
    seen_gaps = [r["user"] for r in good if r["user"] is not None]
    dumps = [r["criu_dump"] for r in good if r["criu_dump"] is not None]
    steps = {}
    for r in good:
        for part in ("source", "transfer", "target"):
            for step, value in (r["steps"] or {}).get(part, {}).items():
                steps.setdefault("%s.%s" % (part, step), []).append(value)
    held_counts = {}
    for r in rows:
        held_counts[r["held_connection"]] = held_counts.get(r["held_connection"], 0) + 1
    print("\n%s of A2 on %s, probe and a held connection attached: %d of %d runs ok with the state kept"
          % (args.strategy, lab.label, ok, args.runs))
    if walls:
        print("wall downtime      median %.3f s, min %.3f, max %.3f, p90 %.3f (target <= %.1f s: %s)" % (
            statistics.median(walls), min(walls), max(walls), p90(walls), TARGET_S,
            "met" if statistics.median(walls) <= TARGET_S else "MISSED"))
    if seen_gaps:
        print("user-seen downtime median %.3f s, min %.3f, max %.3f (20 ms probe)" % (
            statistics.median(seen_gaps), min(seen_gaps), max(seen_gaps)))
    for k, v in sorted(steps.items()):
        print("  %-22s median %.3f s  p90 %.3f s" % (k, statistics.median(v), p90(v)))
    stages = stage_values(rows)
    gaps, floor_med = floor_gaps(stages, fl)
    if stages:
        print("the downtime by stage (the record's downtime.stages; target_receive runs within transfer), "
              "and its gap to the floor:")
        for k, v in stages.items():
            gap = "" if gaps is None or k not in gaps else "  gap to the floor %+.4f s" % gaps[k]
            print("  %-22s median %.4f s  min %.4f  max %.4f  (%d runs)%s"
                  % (k, statistics.median(v), min(v), max(v), len(v), gap))
    if fl:
        print("floor on %s, the same A2 program without the engine (%d runs): criu dump median %.3f s, "
              "criu restore median %.3f s, images %.1f MB" % (last_host.address, len(fl), floor_med["dump"],
                                                              floor_med["restore"],
                                                              statistics.median(r[2] for r in fl) / 1e6))
        if walls:
            print("wall downtime over the floor (dump + restore): %.3f s - %.3f s = %.3f s (%.1fx)" % (
                statistics.median(walls), floor_med["dump"] + floor_med["restore"],
                statistics.median(walls) - floor_med["dump"] - floor_med["restore"],
                statistics.median(walls) / (floor_med["dump"] + floor_med["restore"])))
    # the held connection: with migration_criu_tcp=close the migration resets it and the client reconnects
    print("held connection: %s of %d runs" % (", ".join("%s %d" % kv for kv in sorted(held_counts.items())),
                                              args.runs))
    summary = {
        "engine": lab.engine, "strategy": args.strategy, "runs": args.runs, "ok": len(good), "ok_state_kept": ok,
        "polling_after": len([r for r in good if r["polling_after"]]),
        "held_connection": held_counts,
        "wall_s": summarize(walls), "user_s": summarize(seen_gaps),
        "freeze_before_s": summarize([r["freeze"] for r in good if r["freeze"] is not None]),
        "criu_dump_s": summarize(dumps),
        "floor_dump_s": summarize([r[0] for r in fl]), "floor_restore_s": summarize([r[1] for r in fl]),
        "stages_s": {k: summarize(v) for k, v in stages.items()},
        # each stage's median minus the floor's counterpart (CRIU's dump and restore; 0 for the other stages)
        "floor_gap_s": gaps,
        "wall_over_floor_s": (statistics.median(walls) - floor_med["dump"] - floor_med["restore"]
                              if walls and floor_med else None),
        "serving_after_running_s": summarize([r["serving_after_running"] for r in good
                                              if r["serving_after_running"] is not None]),
        "checkpoint_final_bytes": summarize([r["checkpoint_final"] for r in good if r["checkpoint_final"] is not None]),
        "checkpoint_via": sorted(set(r["checkpoint_via"] for r in good if r["checkpoint_via"]))}
    for key in ("engine_dump_stats", "engine_restore_stats"):
        stats = [r[key] for r in good if r[key]]
        if stats:
            summary[key + "_us"] = dict((k, summarize([s[k] for s in stats if isinstance(s.get(k), (int, float))]))
                                        for k in sorted(stats[0]) if isinstance(stats[0][k], (int, float)))
    extra = dict(setting, steps_s={k: summarize(v) for k, v in steps.items()}, floor_runs=fl,
                 floor_host=last_host.address, inventory=os.path.relpath(lab.inventory, ROOT),
                 target_s=TARGET_S)
    path = write_results(name, rows, summary, extra=extra, results_dir=args.results_dir)
    print("results file: %s" % path)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0 if ok == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
