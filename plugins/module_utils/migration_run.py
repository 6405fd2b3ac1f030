# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The migration's decisions, written once, in Python, run on the controller (no module process):

- input_problems(): the checks of the role's inputs (roles/migration/meta/argument_specs.yml), every problem in
  one clear sentence, before anything changes (the action plugin mec.migration.migration_input);
- end_action(): finish, roll back or leave undecided a run that stopped after its preflight, from what the hosts
  say now; used by the role's rescue and by recover.yml (the action plugin mec.migration.migration_decide).
"""
from __future__ import annotations

import re

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
BOOLS = ("true", "false", "yes", "no", "1", "0", "on", "off")
CHANGES_RE = re.compile(r"^(CMD|ENTRYPOINT|ENV|EXPOSE|LABEL|USER|VOLUME|WORKDIR|ONBUILD|STOPSIGNAL)\s+\S")
URL_RE = re.compile(r"^https?://[^/ ]+")
GATE_KEYS = ("path", "open", "abandon", "timeout", "watch")
WATCH_KEYS = ("path", "open", "abandon")


def _text(value):
    """The value as the playbook's messages printed it (Jinja's ~): None is 'None', True is 'True'."""
    return "%s" % (value,)


def _json(value):
    import json
    try:
        return json.dumps(value, sort_keys=False)
    except (TypeError, ValueError):
        return repr(value)


def _is_bool(value):
    return isinstance(value, bool) or str(value).lower() in BOOLS


def _is_str_list(value):
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def as_bool(value):
    """The playbook's `| bool` of a value _is_bool() accepted."""
    return value if isinstance(value, bool) else str(value).lower() in ("true", "yes", "1", "on")


def input_problems(values, strategies, transfers, aliases):
    """Every problem of the migration's inputs, each one sentence naming the input, what it got and what it takes.

    ``values`` maps the inputs' names (migration_app, ...; the short forms already applied) to their values;
    ``strategies`` is migration_strategies (roles/migration/vars/main/strategies.yml), ``transfers`` and
    ``aliases`` migration_transfers and migration_transfer_aliases. An empty list: the input is good."""
    v = values
    problems = []
    app = v.get("migration_app")
    if not (isinstance(app, str) and NAME_RE.match(app)):
        problems.append("app=%s: app is required, the name of the container on the source (letters, digits, _ . -, "
                        "at most 128, as Docker names containers)." % (app if app not in (None, "") else "(unset)"))
    strategy = v.get("migration_strategy")
    if not (isinstance(strategy, str) and strategy in strategies):
        problems.append("strategy=%s is unknown: strategy in %s." % (_text(strategy), ", ".join(strategies)))
    transfer = v.get("migration_transfer")
    if not (isinstance(transfer, str) and (transfer in transfers or transfer in aliases)):
        problems.append("transfer=%s is unknown: transfer in %s (%s: deprecated alias of stream)."
                        % (_text(transfer), ", ".join(transfers), ", ".join(aliases)))
    tcp = v.get("migration_criu_tcp")
    if tcp not in ("close", "established", "refuse"):
        problems.append("migration_criu_tcp=%s: the TCP policy for CRIU is one of close (established connections are "
                        "restored closed, clients reconnect; the default), established (kept; only for a restore at "
                        "the same address), refuse (a dump with an established connection fails)." % _text(tcp))
    label = v.get("migration_network_label")
    if not (isinstance(label, str) and NAME_RE.match(label)):
        problems.append("network_label=%s: free text of letters, digits, _ . - such as n1 or n2 (it names the "
                        "record)." % _text(label))
    for name in ("migration_cleanup", "migration_recover", "migration_state_check_required"):
        if not _is_bool(v.get(name)):
            problems.append("%s=%s: true or false." % (name, _text(v.get(name))))
    port = v.get("migration_port")
    if not (not isinstance(port, bool) and re.match(r"^[0-9]{4,5}$", str(port)) and 1024 <= int(port) <= 65535):
        problems.append("migration_port=%s: a TCP port from 1024 to 65535." % _text(port))
    stop = v.get("migration_stop_timeout")
    if isinstance(stop, bool) or not re.match(r"^[0-9]{1,4}$", str(stop)):
        problems.append("migration_stop_timeout=%s: whole seconds, 0 or more." % _text(stop))
    wait = v.get("migration_wait_timeout")
    if isinstance(wait, bool) or not (re.match(r"^[0-9]{1,5}$", str(wait)) and int(wait) >= 1):
        problems.append("migration_wait_timeout=%s: whole seconds, 1 or more." % _text(wait))
    run_id = v.get("migration_run_id")
    if run_id is not None and not NAME_RE.match(str(run_id)):
        problems.append("run_id=%s: letters, digits, _ . - (at most 128, no /), or leave it unset for a fresh unique "
                        "one." % _text(run_id))
    is_m1 = (strategies.get(strategy) or {}).get("image_method") == "export" if isinstance(strategy, str) else False
    start = v.get("migration_start_command")
    if start is None:
        start = ""
    if not (isinstance(start, str) or _is_str_list(start)):
        problems.append("start_command: a string or a list of strings (the argv).")
    elif not is_m1 and len(start) > 0:
        problems.append("start_command is for strategy m1 only (m2 and m3 keep the image's command); leave it unset "
                        "with strategy=%s." % _text(strategy))
    changes = v.get("migration_import_changes")
    if changes is None:
        changes = []
    if not (_is_str_list(changes) and all(CHANGES_RE.match(c) for c in changes)):
        problems.append("import_changes: a list of Dockerfile instructions, each one of CMD, ENTRYPOINT, ENV, EXPOSE, "
                        "LABEL, USER, VOLUME, WORKDIR, ONBUILD, STOPSIGNAL with its argument (got %s)."
                        % _json(changes))
    elif not is_m1 and changes:
        problems.append("import_changes is for strategy m1 only (docker import); leave it unset with strategy=%s."
                        % _text(strategy))
    check = v.get("migration_state_check_command")
    if not (check is None or isinstance(check, str) or (isinstance(check, (list, tuple)))):
        problems.append("state_check_command: a string or a list of strings.")
    elif isinstance(check, (list, tuple)) and not _is_str_list(check):
        problems.append("state_check_command: a string or a list of strings.")
    for name, short in (("migration_app_phase_url", "app_phase_url"), ("migration_state_check_url", "state_check_url")):
        url = v.get(name)
        if url is None:
            url = ""
        if not (isinstance(url, str) and (url == "" or URL_RE.match(url))):
            problems.append("%s=%s: an http:// or https:// URL or empty." % (short, _text(url)))
    results = v.get("migration_results_dir")
    if not (isinstance(results, str) and results):
        problems.append("results_dir: a directory on the controller.")
    problems.extend(gate_problems(v.get("migration_relocation_gate")))
    return problems


def gate_problems(gate):
    """The shape of migration_relocation_gate (its regular expressions and paths: mec.migration.relocation_gate)."""
    if gate is None:
        gate = {}
    if not (isinstance(gate, dict) and (not gate or (
            isinstance(gate.get("path", ""), str) and gate.get("path") and isinstance(gate.get("open", ""), str)
            and gate.get("open") and not set(gate) - set(GATE_KEYS)))):
        return ["migration_relocation_gate: a mapping with path (a file on the controller) and open (a regular "
                "expression), optionally abandon (a regular expression), timeout (seconds) and watch (further files), "
                "or empty (got %s)." % _json(gate)]
    if "watch" not in gate:
        return []
    watch = gate["watch"]
    good = isinstance(watch, list) and all(
        isinstance(w, dict) and "path" in w and not set(w) - set(WATCH_KEYS) and ("open" in w or "abandon" in w)
        and all(isinstance(x, str) for x in w.values()) for w in watch)
    if good:
        return []
    return ["migration_relocation_gate.watch: a list of mappings, each with path (an absolute path of a file on the "
            "controller) and open, abandon or both (regular expressions searched in that file only), no other keys "
            "(got %s)." % _json(watch)]


def end_action(source, target, relocated=False, target_half_unknown=False, target_journaled=True):
    """What to do with a run that stopped after its preflight: 'finish', 'rollback' or 'undecided'.

    ``source`` / ``target``: what container_info said now on each host ({"running": bool, ...}; None or
    {"unreachable": True} / {"failed": True} when the host could not be asked). ``relocated``: the source's half of
    the relocation went through (it stopped the app). ``target_half_unknown``: the target's half never reported
    (unreachable, or the controller died), so it may have started the app. ``target_journaled``: the target has
    the run's journal (recover.yml: a run whose target never began cannot be finished there).

    finish: the target runs the app and the source does not (the relocation went through, a later step failed);
    undecided: the source's half went through but the target cannot be asked, so the app may run there (recover.yml
    decides once it answers); rollback otherwise."""
    source, target = source or {}, target or {}
    target_asked = not (target.get("unreachable") or target.get("failed") or target.get("answered") is False)
    if target_journaled and target.get("running") and not source.get("running"):
        return "finish"
    if not target_asked and relocated and target_half_unknown:
        return "undecided"
    return "rollback"


def _failed(result):
    return not isinstance(result, dict) or bool(result.get("failed")) or bool(result.get("unreachable"))


def host_problems(results):
    """One line per host whose registered result failed or was unreachable: '<host>: [unreachable: ]<msg>'.
    ``results``: [(host, result)] in the order source, target."""
    lines = []
    for host, result in results:
        if _failed(result):
            result = result if isinstance(result, dict) else {"unreachable": True, "msg": "no result"}
            lines.append("%s: %s%s" % (host, "unreachable: " if result.get("unreachable") else "",
                                       result.get("msg") or "failed"))
    return lines


def unfinished_runs(reads):
    """The run ids that hold the app's lock or left a journal unfinished, on either host (container_info with
    journal_root, or migration_journal action=read), in order, once each."""
    ids = []
    for _host, result in reads:
        ids += [j.get("run_id") for j in result.get("unfinished") or []]
    for _host, result in reads:
        if result.get("lock"):
            ids.append(result["lock"].get("run_id"))
    out = []
    for run_id in ids:
        if run_id is not None and run_id not in out:
            out.append(run_id)
    return out


def refusal(app, unfinished, reads, state_root):
    """Why a migration of ``app`` is refused while another run holds it or left it unfinished, and what to do."""
    where = "".join("%s: lock %s, journal phase %s; " % (
        host, (result.get("lock") or {}).get("run_id") or "free",
        ((result.get("unfinished") or [{}])[-1]).get("phase") or "-") for host, result in reads)
    return ("%s is being migrated by run %s, or that run did not finish (%sjournals in %s/runs/). If that run is no "
            "longer running (its controller died or was stopped), finish or undo it with: ansible-playbook -i "
            "<inventory> playbooks/recover.yml -e app=%s (or run migrate.yml again with -e migration_recover=true). "
            "Nothing was changed." % (app, ", ".join(unfinished), where, state_root, app))


def already_migrated(source_read, target_read):
    """The app runs on the target and not on the source: the migration has nothing to do."""
    return bool((target_read.get("container") or {}).get("running")) and not (
        (source_read.get("container") or {}).get("running"))


def preflight_problems(source, target):
    """What stops the migration after both hosts' preflight (``source`` / ``target``: (host, result))."""
    lines = host_problems([source, target])
    if lines:
        return lines
    engines = [(r.get("engine") or {}).get("engine_id") for _h, r in (source, target)]
    if engines[0] and engines[0] == engines[1]:
        return ["Source and target are the same Docker engine; they must be two different hosts."]
    return []
