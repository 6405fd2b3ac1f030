# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The run's results record, schema ``mec.migration/record/v1`` (docs/migration.md), in one place: its
fields and their types (``FIELDS``), the record built from the run's raw task results (``build_record``),
its check (``problems``) and its file (``record_name``, ``write_record``).

Plain Python without Ansible: the module ``mec.migration.migration_record`` writes records with it and the
readers (``apps/mec_experiment/records.py``, the report) check them with it."""

from __future__ import annotations

import json
import os
import tempfile
import time

SCHEMA = "mec.migration/record/v1"

STATUSES = ("ok", "failed")
OUTCOMES = ("migrated", "rolled_back", "unchanged", "source_not_running", "undecided")

# The relocation's steps that move data between the hosts (their durations are the relocation's transfer).
TRANSFER_STEPS = ("transfer", "checkpoint_transfer", "volume_transfer", "signal")

# The downtime (source stopped -> target running) stage by stage, in their order (docs/migration.md, "The results
# record"): the source's stop, or its final checkpoint split into the pause, CRIU's own dump and the runtime around
# it; the transfer (the target's receive and patch of the checkpoint run within it, target_receive); the target's
# placing of the checkpoint for the engine, its start split by CRIU's restore log into the engine before CRIU,
# CRIU's own restore, the runtime's hooks CRIU waited for (Docker's network set-up) and the engine after CRIU, and
# the check that it runs; unaccounted is the wall downtime minus every stage outside target_receive (clocks of two
# hosts, the gaps between the steps).
DOWNTIME_STAGES = ("source_stop", "source_pause", "source_criu_dump", "source_runtime", "transfer", "target_receive",
                   "target_place", "engine_before_criu", "criu_restore", "criu_hooks", "engine_after_criu",
                   "running_check", "target_other", "unaccounted")

# Every field of the record and its type: "num" (int or float), "str", "bool", "list", "dict" (free form),
# "nums" (a dict of step name -> num), or a dict of sub-fields. Every value may be null (a figure the run
# did not measure) except those in REQUIRED.
FIELDS = {
    "schema": "str", "status": "str", "outcome": "str", "phase": "str", "error": "str", "recovered_by": "str",
    "unreachable": "list", "run_id": "str", "app": "str", "strategy": "str", "strategy_title": "str",
    "transfer": "str",
    "criu": {"tcp_policy": "str", "checkpoint_via": "str", "dump_duration": "num", "dump_attempts": "num",
             "dump_retried_after": "str", "errors": "list", "log": "str",
             # the target's restore (m3), from CRIU's restore log: its own work, the runtime's hooks it waited for
             "restore_duration": "num", "restore_hooks": "nums", "restore_log": "str",
             "restore_attempts": "num", "restore_retried_after": "str",
             # the engine's own figures where it gives them (Podman's --print-stats, microseconds): runtime_us (the
             # runtime's checkpoint or restore), CRIU's freezing/frozen/memdump/memwrite or forking/restore times
             "engine_dump_stats": "nums", "engine_restore_stats": "nums"},
    "network": "str",
    "source": {"host": "str", "address": "str", "engine": "str"},
    "target": {"host": "str", "address": "str", "engine": "str"},
    "timestamps": {"started_at": "num", "source_stopped_at": "num", "target_running_at": "num",
                   "finished_at": "num"},
    "sizes": {"source_image": "num", "image": "num", "container_rw": "num", "tarball": "num",
              "checkpoint_full": "num", "checkpoint_final": "num", "checkpoint_delta": "num",
              "rsync_transferred_bytes": "num", "checkpoint_pre_transferred_bytes": "num", "volume": "num",
              "volume_tarball": "num", "stream": "num", "image_bytes_skipped": "num", "image_layers_sent": "num",
              "image_layers_skipped": "num", "checkpoint_linked": "num", "checkpoint_copied": "num"},
    "durations": {
        "pre_relocation": {
            "source": {"export": "num", "commit": "num", "save": "num", "checkpoint": "num"},
            "transfer": {"image": "num", "checkpoint": "num"},
            "target": {"import": "num", "load": "num", "create": "num"},
        },
        "relocation": {"source": "nums", "transfer": "nums", "target": "nums", "source_total": "num",
                       "transfer_total": "num", "target_total": "num"},
    },
    "commit_freeze": "num", "commit_freeze_source": "str",
    "downtime": {"wall": "num", "operations_sum": "num", "stages": {k: "num" for k in DOWNTIME_STAGES},
                 "serving_after_running": "num"},
    "lost_config": "list", "start_command": "list",
    "state_check": {"command_rc": "num", "command_stdout": "str", "url_status": "num", "passed": "bool"},
    "rollback": {"method": "str", "running": "bool", "msg": "str"},
    "cleanup": {"source": "dict", "target": "dict"},
    # the relocation gate (migration_relocation_gate), null without one
    "gate": {"outcome": "str", "waited": "num", "opened_at": "num", "decided_by": "str"},
}
REQUIRED = ("schema", "status", "run_id", "app", "strategy", "network")

_TYPES = {"str": (str,), "bool": (bool,), "list": (list,), "dict": (dict,)}


def _is_num(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _leaf_ok(kind, value):
    if value is None:
        return True
    if kind == "num":
        return _is_num(value)
    if kind == "nums":
        return isinstance(value, dict) and all(v is None or _is_num(v) for v in value.values())
    return isinstance(value, _TYPES[kind])


def _check(spec, value, path, complete, out):
    for key, kind in spec.items():
        where = path + key
        if key not in value:
            if complete:
                out.append("%s: missing" % where)
            continue
        sub = value[key]
        if isinstance(kind, dict):
            if sub is None:
                continue
            if not isinstance(sub, dict):
                out.append("%s: %r is not an object" % (where, sub))
                continue
            _check(kind, sub, where + ".", complete, out)
        elif not _leaf_ok(kind, sub):
            out.append("%s: %r is not %s" % (where, sub, {"num": "a number", "nums": "an object of numbers"}
                                             .get(kind, "a " + kind)))


def problems(record, complete=True):
    """What is wrong with a record: a list of "field: why" (empty when it is a valid v1 record).

    complete=False checks only the fields present (a reader's partial record), complete=True wants all."""
    if not isinstance(record, dict):
        return ["the record is not an object"]
    out = []
    if record.get("schema") != SCHEMA:
        out.append("schema: %r is not %s" % (record.get("schema"), SCHEMA))
    out.extend("%s: required" % key for key in REQUIRED if not record.get(key))
    if record.get("status") not in STATUSES:
        out.append("status: %r is not one of %s" % (record.get("status"), ", ".join(STATUSES)))
    _check(FIELDS, record, "", complete, out)
    return out


def number(value):
    """A figure as the record keeps it: int or float, or None when it was not measured. Modules report
    numbers; a numeric string (a value that went through a template) becomes its number."""
    if value is None or isinstance(value, bool):
        return None
    if _is_num(value):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _text(value):
    """A text field: a number given for it (a label such as 1) becomes its text; any other non-text is kept
    as it is, so that the schema check names it."""
    if value is None or value == "":
        return None
    return str(value) if _is_num(value) else value


def _ran(result):
    """The result of a task that ran (not skipped, not missing), else {}."""
    if not isinstance(result, dict) or result.get("skipped"):
        return {}
    return result


def _first(*values):
    for value in values:
        if value is not None:
            return value
    return None


def _nums(steps):
    return {str(k): number(v) for k, v in (steps or {}).items()}


def _unreachable(host, results):
    return [host] if any(isinstance(r, dict) and r.get("unreachable") for r in results or []) else []


def _criu_failure(results):
    """CRIU's errors and log from the first result that carries them."""
    for result in results:
        if isinstance(result, dict) and "criu_errors" in result:
            return result.get("criu_errors") or [], _text(result.get("criu_log"))
    return [], None


def _state_check(command, url):
    rc, status = number(command.get("rc")), number(url.get("status"))
    passed = None
    if rc is not None or status is not None:
        passed = (rc if rc is not None else 0) == 0 and (status if status is not None else 200) == 200
    stdout = command.get("stdout")
    return {"command_rc": rc, "command_stdout": stdout if isinstance(stdout, str) else None,
            "url_status": status, "passed": passed}


def _gate(result):
    """The relocation gate's outcome (open, abandoned, timeout), the seconds it waited, when it opened and the
    file whose content opened or abandoned it (null after a timeout)."""
    if not result:
        return None
    return {"outcome": _text(result.get("outcome")), "waited": number(result.get("waited")),
            "opened_at": number(result.get("opened_at")), "decided_by": _text(result.get("decided_by"))}


def _sum(*values):
    return round(sum(values), 6) if all(v is not None for v in values) else None


def _round(value):
    return round(value, 6) if value is not None else None


def downtime_stages(rs, rt, wall):
    """The downtime's stages (DOWNTIME_STAGES) from the relocation's results on the source (``rs``) and the target
    (``rt``); a stage the run did not measure is null."""
    src, tgt = _nums(rs.get("durations")), _nums(rt.get("durations"))
    ck = rs.get("checkpoint_stages") or {}
    restore = rt.get("restore_stages") or {}
    transfer = number(rs.get("transfer_duration"))
    stages = {
        "source_stop": src.get("stop"),
        "source_pause": number(ck.get("pause")), "source_criu_dump": number(ck.get("criu_dump")),
        "source_runtime": number(ck.get("runtime")),
        "transfer": transfer, "target_receive": tgt.get("receive"), "target_place": tgt.get("place"),
        "engine_before_criu": number(restore.get("engine_before_criu")),
        "criu_restore": number(restore.get("criu_restore")), "criu_hooks": number(restore.get("criu_hooks")),
        "engine_after_criu": number(restore.get("engine_after_criu")),
        "running_check": number(restore.get("running_check")),
    }
    parts = [stages[k] for k in ("engine_before_criu", "criu_restore", "criu_hooks", "engine_after_criu",
                                 "running_check")]
    # every measured step of the downtime: the source's steps, the transfer's, the target's after the transfer
    # (its receive runs within the transfer; its wait is before)
    after = [v for k, v in tgt.items() if k not in ("wait", "receive") and v is not None]
    source_steps = [v for k, v in src.items() if k not in TRANSFER_STEPS and v is not None]
    # the target's steps after the transfer that no stage above splits (a plain start, a start whose restore log
    # was not found, the volumes' extraction of transfer=ssh)
    stages["target_other"] = (_round(max(sum(after) - (stages["target_place"] or 0.0)
                                         - (sum(parts) if None not in parts else 0.0), 0.0)) if after else None)
    if wall is not None and rs and rt:
        stages["unaccounted"] = _round(wall - sum(source_steps) - (transfer or 0.0) - sum(after))
    else:
        stages["unaccounted"] = None
    return stages


def build_record(inputs, finished_at=None):
    """The record of one run, from the run's facts and its tasks' raw results.

    ``inputs`` has the options of the module migration_record (its argument spec documents each):
    status, outcome, phase, error, recovered_by, run_id, app, strategy, strategy_title, transfer, network,
    tcp_policy, source / target ({host, address}), started_at, source_container, steps (the pre-relocation
    results by step), relocation ({source, target}: migration_relocate's results), rollback, cleanup
    ({source, target}), state_check ({command, url}), gate (relocation_gate's result), lost_config, start_command
    and host_results
    ({source, target}: every result of the run's tasks on that host, to name the hosts that did not answer).
    """
    steps = {k: _ran(v) for k, v in (inputs.get("steps") or {}).items()}
    reloc = inputs.get("relocation") or {}
    rs, rt = _ran(reloc.get("source")), _ran(reloc.get("target"))
    rs_sizes = rs.get("sizes") or {}
    container = inputs.get("source_container") or {}
    rollback = _ran(inputs.get("rollback"))
    cleanup = inputs.get("cleanup") or {}
    check = inputs.get("state_check") or {}
    host_results = inputs.get("host_results") or {}
    source, target = inputs.get("source") or {}, inputs.get("target") or {}
    pre_ck, commit, imported = steps.get("checkpoint", {}), steps.get("commit", {}), steps.get("import", {})
    errors, log = _criu_failure([pre_ck, rs, rt, rollback])
    source_durations = _nums(rs.get("durations"))
    status = inputs["status"]
    stopped, running = number(rs.get("stopped_at")), number(rt.get("running_at"))
    source_total, target_total = number(rs.get("source_duration")), number(rt.get("target_duration"))
    transfer_total = number(rs.get("transfer_duration"))
    start_command = inputs.get("start_command")
    lost_config = inputs.get("lost_config")
    wall = round(running - stopped, 6) if running is not None and stopped is not None else None
    restore = rt.get("restore_stages") or {}
    placed = rt.get("checkpoint_placed") or {}
    serving = rt.get("serving") or {}
    return {
        "schema": SCHEMA,
        "status": status,
        "outcome": _text(inputs.get("outcome")),
        "phase": _text(inputs.get("phase")) or ("done" if status == "ok" else None),
        "error": _text(inputs.get("error")),
        "recovered_by": _text(inputs.get("recovered_by")),
        "unreachable": (_unreachable(source.get("host"), host_results.get("source"))
                        + _unreachable(target.get("host"), host_results.get("target"))),
        "run_id": inputs["run_id"],
        "app": inputs["app"],
        "strategy": inputs["strategy"],
        "strategy_title": _text(inputs.get("strategy_title")),
        "transfer": _text(inputs.get("transfer")),
        "criu": {"tcp_policy": _text(inputs.get("tcp_policy")), "checkpoint_via": _text(rs.get("checkpoint_via")),
                 "dump_duration": number(rs.get("criu_dump_duration")),
                 # the final dump's tries (2: the first failed on a race with the app's processes, and why)
                 "dump_attempts": number(rs.get("criu_dump_attempts")),
                 "dump_retried_after": _text(rs.get("criu_dump_retried_after")), "errors": errors, "log": log,
                 "restore_duration": number(restore.get("criu_restore")),
                 "restore_hooks": _nums(restore.get("criu_hooks_by_name")) if restore else None,
                 "restore_log": _text(restore.get("criu_log")),
                 # the target's starts from the checkpoint (2: CRIU gave up on the first after the restore had begun)
                 "restore_attempts": number(rt.get("restore_attempts")),
                 "restore_retried_after": _text(rt.get("restore_retried_after")),
                 "engine_dump_stats": _nums(rs.get("engine_dump_stats")) if rs.get("engine_dump_stats") else None,
                 "engine_restore_stats": (_nums(rt.get("engine_restore_stats")) if rt.get("engine_restore_stats")
                                          else None)},
        "network": inputs["network"],
        "source": {"host": _text(source.get("host")), "address": _text(source.get("address")),
                   "engine": _text(source.get("engine"))},
        "target": {"host": _text(target.get("host")), "address": _text(target.get("address")),
                   "engine": _text(target.get("engine"))},
        "timestamps": {"started_at": number(inputs.get("started_at")), "source_stopped_at": stopped,
                       "target_running_at": running,
                       "finished_at": number(finished_at) if finished_at is not None else time.time()},
        "sizes": {
            "source_image": number(container.get("image_size")),
            "image": _first(number(commit.get("size")), number(imported.get("size"))),
            "container_rw": number(container.get("size_rw")),
            "tarball": _first(number(steps.get("export", {}).get("size")), number(steps.get("save", {}).get("size"))),
            "checkpoint_full": number(pre_ck.get("size")),
            "checkpoint_final": number(rs_sizes.get("checkpoint_final")),
            "checkpoint_delta": number(rs_sizes.get("checkpoint_delta")),
            "rsync_transferred_bytes": number(rs_sizes.get("checkpoint_transferred")),
            "checkpoint_pre_transferred_bytes": number(steps.get("checkpoint_copy", {}).get("transferred_bytes")),
            "volume": number(rs_sizes.get("volume")),
            "volume_tarball": number(rs_sizes.get("volume_tarball")),
            "stream": number(rs_sizes.get("stream")),
            # m2/m3: the image's layers that the target held already stay out of the tarball (image_save)
            "image_bytes_skipped": number(steps.get("save", {}).get("bytes_skipped")),
            "image_layers_sent": number(steps.get("save", {}).get("layers_sent")),
            "image_layers_skipped": number(steps.get("save", {}).get("layers_skipped")),
            # m3: the checkpoint's bytes the target linked into the engine's checkpoint folder (page images, kept
            # out of the engine's round trip) and those it copied there
            "checkpoint_linked": number(placed.get("linked_bytes")),
            "checkpoint_copied": number(placed.get("copied_bytes")),
        },
        "durations": {
            "pre_relocation": {
                "source": {k: number(steps.get(k, {}).get("duration")) for k in ("export", "commit", "save",
                                                                                 "checkpoint")},
                "transfer": {"image": number(steps.get("image_copy", {}).get("duration")),
                             "checkpoint": number(steps.get("checkpoint_copy", {}).get("duration"))},
                "target": {k: number(steps.get(k, {}).get("duration")) for k in ("import", "load", "create")},
            },
            "relocation": {
                "source": {k: v for k, v in source_durations.items() if k not in TRANSFER_STEPS},
                "transfer": {k: v for k, v in source_durations.items() if k in TRANSFER_STEPS},
                "target": _nums(rt.get("durations")),
                "source_total": source_total, "transfer_total": transfer_total, "target_total": target_total,
            },
        },
        "commit_freeze": number(commit.get("freeze_duration")),
        "commit_freeze_source": _text(commit.get("freeze_source")),
        "downtime": {"wall": wall, "operations_sum": _sum(source_total, transfer_total, target_total),
                     "stages": downtime_stages(rs, rt, wall),
                     # after the wall downtime: the first TCP connection the app accepted on the target
                     "serving_after_running": number(serving.get("seconds"))},
        "lost_config": list(lost_config if lost_config is not None else imported.get("lost_config") or []),
        "start_command": list(start_command) if start_command else None,
        "state_check": _state_check(_ran(check.get("command")), _ran(check.get("url"))),
        "rollback": ({"method": _text(rollback.get("method")), "running": bool(rollback.get("running")),
                      "msg": _text(rollback.get("msg"))} if rollback else None),
        "cleanup": {side: (_ran(cleanup.get(side)).get("removed") if _ran(cleanup.get(side)) else None)
                    for side in ("source", "target")},
        "gate": _gate(_ran(inputs.get("gate"))),
    }


def record_name(record):
    """The record's file name: <run_id>-<app>-<strategy>-<network>.json."""
    return "%s-%s-%s-%s.json" % (record["run_id"], record["app"], record["strategy"], record["network"])


def write_record(results_dir, record):
    """Write the record into results_dir (made if missing) atomically, mode 0644; returns its path."""
    os.makedirs(results_dir, mode=0o755, exist_ok=True)
    path = os.path.join(results_dir, record_name(record))
    fd, tmp = tempfile.mkstemp(prefix="." + record_name(record) + ".", suffix=".tmp", dir=results_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
