"""One run of the experiment matrix: reset the apps, probe, migrate, check state, write the record.

    PYTHONPATH=apps python -m mec_experiment run-one --inventory INV --results DIR \
        --app a2 --strategy m1 --network n1 --rep 1

Prints one JSON line (``{"line": "...", "status": ...}``) for the progress output. A run whose record
already exists is skipped (resumable). Any failure is written as a failed record with its cause. With
``--retry-failed`` a run whose attempts all failed is run again as a new attempt (runs/<name>.attempt<N>.json),
beside the failed ones: the report counts first attempts and retries apart.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import time
import traceback
import uuid
from pathlib import Path

from . import probe as probe_mod
from .lab import ROOT, ansible_cause, ansible_playbook, cli, lab_hosts, ssh  # noqa: F401 (lab_hosts, ansible_cause: API)
from .reset import ResetError, reset
from .state_watch import LogFollow, VolumeFileWatch
from .records import EXPERIMENT_SCHEMA, SCHEMA, attempts, dig, phase_total, record_path, write_atomic, write_csv

APPS = ("a1", "a2", "a3")
A3_KEYS = ["zone%02d" % i for i in range(1, 10)]

# How each app is migrated and probed. m1 loses the image's CMD and USER: start_command is the seed's
# "manual input" (memcached refuses to run as root without -u).
APP_SPECS = {
    "a1": {"start_command": ["python3", "/app/app.py"], "probe": "gateway-log"},
    "a2": {"start_command": ["python3", "/app/app.py"], "probe": "http", "port": 3000,
           "app_phase_url": "http://127.0.0.1:3000/changePhase?inMigration=1"},
    "a3": {"start_command": ["memcached", "-u", "memcache", "-l", "0.0.0.0", "-p", "11211", "-U", "0", "-m", "64",
                             "-c", "1024", "-v"], "probe": "memcached", "port": 11211},
}


# ------------------------------------------------------------------------------------------------ app state
# A mark the experiment writes into A2's volume before the move: a volume made again (empty) lacks it.
A2_MARK = "/data/.mec-experiment-mark"
# A1's log lines: "<date>T<time>.<ms> a1 <LEVEL> <message>" (apps/a1_rab_logger/app.py)
A1_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}) a1 \S+ (.*)$")


def a2_state(address):
    ok, value = probe_mod.http_state(address, 3000, timeout=2)
    return value if ok else None


def a3_values(address):
    ok, value = probe_mod.MemcachedGetter(address, 11211, A3_KEYS, timeout=2).get()
    return value if ok else None


def gateway_log(host):
    proc = ssh(host, "{0} exec mec-gateway cat /var/log/mec-gateway/access.log 2>/dev/null || "
                     "{0} logs mec-gateway 2>/dev/null".format(cli(host)))
    return proc.stdout


def a1_lines(lines):
    """[(time, message)] of A1's own log lines (other lines left out); time as seconds since the epoch (UTC)."""
    out = []
    for line in lines:
        m = A1_LINE.match(line.strip())
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=datetime.timezone.utc)
            out.append((t.timestamp(), m.group(2)))
    return out


def check_a1(strategy, source_lines, target_lines):
    """A1 keeps no state but its own log: the target's log goes on after the source's last line (no overlap: one
    A1 at a time), with answered requests; an m3 target goes on with the restored process (no new start)."""
    src, tgt = a1_lines(source_lines), a1_lines(target_lines)
    if not src:
        return {"passed": False, "detail": "no A1 log line from the source up to its stop"}
    last = src[-1][0]
    answered = [t for t, msg in tgt if msg.startswith("erabInfo ")]
    started = [t for t, msg in tgt if msg.startswith("Started app")]
    problems = []
    if not answered:
        problems.append("no answered request in the target's log")
    if tgt and tgt[0][0] < last:
        problems.append("the target logged at %.3f, before the source's last line at %.3f" % (tgt[0][0], last))
    if strategy == "m3" and started:
        problems.append("m3: A1 started again on the target instead of going on")
    gap = round(answered[0] - last, 3) if answered else None
    return {"passed": not problems, "gap": gap,
            "detail": "A1's log: %d lines on the source up to its stop, then %d answered requests on the target "
                      "(first %s s after the source's last line)%s" % (
                          len(src), len(answered), gap, (": " + "; ".join(problems)) if problems else "")}


def check_a2(strategy, at_stop, after, mark_ok, probe_result):
    """A2's volume counter goes on from its value at the source's stop, in the volume the source had (its
    mark); m3 also keeps the in-memory requestsOk (the probe's last source answer against the target's first)."""
    if after is None:
        return {"passed": False, "detail": "A2 does not answer /state on the target"}
    problems = []
    if at_stop is None:
        problems.append("the counter at the source's stop was not read")
    elif int(after.get("counter") or 0) < at_stop:
        problems.append("the counter went back")
    if not mark_ok:
        problems.append("the target's volume lacks the source volume's mark (made again empty)")
    detail = "counter %s on the target, %s at the source's stop" % (after.get("counter"), at_stop)
    if strategy == "m3":
        src_ok = ((probe_result.get("source") or {}).get("last_value") or {}).get("requestsOk")
        tgt_ok = ((probe_result.get("target") or {}).get("first_value") or {}).get("requestsOk")
        detail += "; requestsOk %s on the target's first answer, %s on the source's last" % (tgt_ok, src_ok)
        if src_ok is None or tgt_ok is None or tgt_ok < src_ok:
            problems.append("m3: the in-memory requestsOk did not go on")
    return {"passed": not problems, "detail": detail + ((": " + "; ".join(problems)) if problems else "")}


def check_state(app, before, hosts, probe_result, strategy=None, watch=None):
    """Did the app run correctly on the target with its state? {passed, detail}. ``watch``: what was read on the
    source during the move (A1: its log up to its stop; A2: state.json up to its stop, and the mark)."""
    tgt = hosts["target"]["address"]
    watch = watch or {}
    if app == "a2":
        at_stop = None
        if watch.get("a2_state"):
            try:
                at_stop = int(json.loads(watch["a2_state"]).get("counter"))
            except (ValueError, TypeError, AttributeError):
                at_stop = None
        mark = ssh(hosts["target"], "%s exec a2 cat %s" % (cli(hosts["target"]), A2_MARK)).stdout.strip()
        return check_a2(strategy, at_stop, a2_state(tgt), bool(watch.get("a2_mark")) and mark == watch["a2_mark"],
                        probe_result)
    if app == "a3":
        after = a3_values(tgt)
        if after is None:
            return {"passed": False, "detail": "memcached does not answer on the target"}
        want = before or {}
        missing = sorted(k for k, v in want.items() if after.get(k) != v)
        if not want:
            return {"passed": False, "detail": "no keys on the source before the move"}
        return {"passed": not missing, "detail": "%d of %d keys on the target%s" % (
            len(want) - len(missing), len(want), (", missing " + " ".join(missing)) if missing else "")}
    target_log = ssh(hosts["target"], "%s logs a1 2>&1" % cli(hosts["target"])).stdout.splitlines()
    return check_a1(strategy, watch.get("a1_log") or [], target_log)


def state_before(app, hosts):
    src = hosts["source"]["address"]
    if app == "a2":
        return a2_state(src)
    if app == "a3":
        return a3_values(src)
    return None


def start_watch(app, hosts):
    """What is read on the source while the app moves (see check_state); stop it with stop_watch."""
    if app == "a2":
        mark = uuid.uuid4().hex
        put = ssh(hosts["source"], "%s exec -u 0 a2 sh -c 'echo %s > %s'"
                  % (cli(hosts["source"]), mark, A2_MARK))
        if put.returncode != 0:
            raise RuntimeError("could not mark A2's volume on the source: %s" % put.stderr.strip())
        return {"a2_mark": mark, "_watch": VolumeFileWatch(hosts["source"], "a2", "/data", "state.json")}
    if app == "a1":
        return {"_follow": LogFollow(hosts["source"], "a1")}
    return {}


def stop_watch(watch):
    """The readings of start_watch's watchers (plain data)."""
    out = {k: v for k, v in watch.items() if not k.startswith("_")}
    if "_watch" in watch:
        out["a2_state"] = watch["_watch"].stop() and watch["_watch"].last()
        out["a2_state_readings"] = len(watch["_watch"].readings)
    if "_follow" in watch:
        out["a1_log"] = watch["_follow"].stop()
    return out


# ------------------------------------------------------------------------------------------------ the run
def migrate_extra(app, strategy, network, run_id, migrate_dir, transfer, port=None):
    spec = APP_SPECS[app]
    extra = [{"app": app, "strategy": strategy, "network_label": network, "run_id": run_id,
              "results_dir": str(migrate_dir), "transfer": transfer, "migration_cleanup": True}]
    if port:
        extra[0]["migration_port"] = int(port)
    if strategy == "m1":
        extra.append({"start_command": spec["start_command"]})
    if spec.get("app_phase_url"):
        extra.append({"app_phase_url": spec["app_phase_url"]})
    return extra


def run_one(args) -> dict:
    cell = "%s %s %s #%d" % (args.app, args.strategy, args.network, args.rep)
    done = []
    for n, old_path in attempts(args.results, args.app, args.strategy, args.network, args.rep):
        try:
            done.append((n, json.loads(old_path.read_text()).get("status")))
        except ValueError:
            done.append((n, "corrupt"))  # kept beside the new attempt, named by the report's loader
    if any(status == "ok" for _n, status in done):
        return {"line": "%s: already recorded (ok, attempt %d), skipped" % (
            cell, max(n for n, st in done if st == "ok")), "status": "skipped"}
    if done and args.retry_failed != "yes":
        return {"line": "%s: already recorded (%s, attempt %d), skipped" % (cell, done[-1][1], done[-1][0]),
                "status": "skipped"}
    # a retry is a new attempt beside the failed ones: the first attempt's failure stays in the results
    attempt = done[-1][0] + 1 if done else 1
    path = record_path(args.results, args.app, args.strategy, args.network, args.rep, attempt)
    if attempt > 1:
        cell += " attempt %d" % attempt
    t0 = time.monotonic()
    run_id = "%s-%s" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), path.stem)
    migrate_dir = Path(args.results) / "migrate"
    record, stage, failed_at = None, "start", None
    probe_result, state_after, before = {}, None, None
    apps_extra = json.loads(args.apps_extra_vars) if args.apps_extra_vars else []
    if isinstance(apps_extra, dict):
        apps_extra = [apps_extra]
    ansible_rc, cause, reset_done = None, None, None
    watch, watched = {}, None
    try:
        hosts = lab_hosts(args.inventory)
        stage = "reset"
        reset_done = reset(args.inventory, hosts, args.app, args.reset, apps_extra, args.timeout,
                           apps_dir=args.apps_dir)
        stage = "state before"
        before = state_before(args.app, hosts)
        spec = APP_SPECS[args.app]
        stage = "probe"
        since = time.time()
        kind = spec["probe"] if spec["probe"] != "gateway-log" else "none"
        probe = probe_mod.Probe(kind, hosts["source"]["address"], hosts["target"]["address"],
                                port=spec.get("port"), keys=sorted(before) if isinstance(before, dict) and
                                args.app == "a3" and before else ["zone01"],
                                deadline=args.timeout).start()
        stage = "state watch"
        watch = start_watch(args.app, hosts)
        stage = "migrate"
        proc = ansible_playbook(args.inventory, ROOT / "playbooks" / "migrate.yml",
                                migrate_extra(args.app, args.strategy, args.network, run_id, migrate_dir,
                                              args.transfer, args.migration_port), args.timeout)
        ansible_rc = proc.returncode
        if proc.returncode != 0:
            cause, failed_at = ansible_cause(proc.stdout), "migrate"
        stage = "probe stop"
        if kind != "none":
            if proc.returncode == 0:
                probe.wait_target_good(hold=0.5, limit=10)
            probe_result = probe.stop()
        else:
            probe.stop()
            if proc.returncode == 0:
                time.sleep(1.5)  # let A1 send a few requests through the target's gateway
            probe_result = probe_mod.gateway_gap(probe_mod.parse_gateway_log(gateway_log(hosts["source"])),
                                                 probe_mod.parse_gateway_log(gateway_log(hosts["target"])), since)
        watched = stop_watch(watch)
        if proc.returncode == 0:
            stage = "state after"
            state_after = check_state(args.app, before, hosts, probe_result, args.strategy, watched)
        found = sorted(migrate_dir.glob("%s-*.json" % run_id))
        if found:
            record = json.loads(found[-1].read_text())
    except ResetError as exc:
        cause = "reset: %s" % exc
    except Exception as exc:  # noqa: BLE001 - a run's failure is recorded, the matrix goes on
        cause = "%s: %s" % (stage, exc)
        if args.debug:
            traceback.print_exc()
    if watch and watched is None:
        watched = stop_watch(watch)
    if record is None:
        record = {"schema": SCHEMA, "status": "failed", "error": cause or "no record from migrate.yml",
                  "run_id": run_id, "app": args.app, "strategy": args.strategy, "network": args.network,
                  "sizes": {}, "durations": {}, "downtime": {"wall": None, "operations_sum": None}}
    if cause and record.get("status") == "ok":
        record["status"], record["error"] = "failed", cause
    if cause and not record.get("error"):
        record["error"] = cause
    # a migration that ran but lost state stays "ok" as a migration: Table 8.1 reads state_after
    network = None
    net_file = Path(args.results) / ("network-%s.json" % args.network)
    if net_file.exists():
        try:
            network = json.loads(net_file.read_text())
        except ValueError:
            network = None
    record.setdefault("downtime", {})
    record["downtime"]["user"] = probe_result.get("downtime")
    # the app frozen while it still served on the source (the commit's pause, the pre-relocation dump)
    record["downtime"]["user_pre_relocation_freeze"] = (probe_result.get("freeze") or {}).get("longest")
    record["experiment"] = {
        "schema": EXPERIMENT_SCHEMA, "rep": args.rep, "attempt": attempt, "cell": cell,
        "stage_failed": (failed_at or stage) if cause else None,
        "ansible_rc": ansible_rc, "run_seconds": round(time.monotonic() - t0, 3), "reset": reset_done,
        "start_command": APP_SPECS[args.app]["start_command"] if args.strategy == "m1" else None,
        "network_measured": network, "probe": probe_result, "state_before": before,
        "state_watch": ({k: (v[-5:] if isinstance(v, list) else v) for k, v in watched.items()}
                        if watched else None),
        "state_after": (state_after if state_after is not None
                        else {"passed": None, "detail": "not checked: " + (cause or "")}),
        "totals": {"pre_source": phase_total(record, "pre_relocation", "source"),
                   "pre_transfer": phase_total(record, "pre_relocation", "transfer"),
                   "pre_target": phase_total(record, "pre_relocation", "target")},
    }
    write_atomic(path, json.dumps(record, indent=2, default=str) + "\n")
    write_csv(args.results)
    wall, user = dig(record, "downtime.wall"), record["downtime"].get("user")
    line = "%s: %s in %.1f s" % (cell, record["status"], record["experiment"]["run_seconds"])
    if record["status"] == "ok":
        line += " (downtime: seed %s s, user %s s; state %s)" % (
            wall, user, {True: "kept", False: "LOST", None: "?"}[record["experiment"]["state_after"].get("passed")])
    else:
        line += " - " + str(record.get("error"))[:300]
    return {"line": line, "status": record["status"], "record": str(path)}


def quote_list(items):
    return " ".join(shlex.quote(i) for i in items)
