# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Action plugin of mec.migration.follow_hop (documentation: plugins/modules/follow_hop.py).

follow.yml's deciding and recording, on the controller, in Python: the event that ansible-rulebook passes as the
extra var ``ansible_eda`` is read here RAW from ``task_vars`` and never rendered. Ansible renders extra vars as
templates wherever a task refers to them, and a forged MEC callback could put ``{{ lookup('pipe', ...) }}`` in a
zone id; the event sources and the rulebook drop such ids, and this plugin is the structural layer behind them:

* ``task_vars['ansible_eda']`` is a plain dict whose strings carry Ansible's TrustedAsTemplate tag (they came from
  an extra-vars file); reading them is only a dict lookup (ansible-core 2.19: the executor hands an action plugin
  ``variables.copy()``, no lazy templating container), so nothing is rendered here. Every field used is checked
  (type, identifier pattern) before use; an event with a field that fails is refused, nothing is changed.
* What is returned is rebuilt from JSON (``_plain``): fresh, untagged strings (and passed through wrap_var, which
  marks them unsafe on ansible-core 2.16-2.18 and only removes trust tags on 2.19). In ansible-core 2.19 a string keeps
  its trust tag through an action plugin's result (a returned tagged string IS rendered by a later template), so
  this is required, not cosmetic. The registered result can therefore be used in templates (follow.yml passes the
  hop's hosts, zone and gate to migrate.yml) without ever being rendered.
* The state files (written by the event sources), the migration's record (a module result from a MEC host) and
  the follow log are read and written here, never through a template or lookup; the state folder is checked with
  fsutil.private_dir on every use.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible.utils.unsafe_proxy import wrap_var

from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, private_dir

display = Display()

# the event sources' identifier (extensions/eda/plugins/event_source/_mec013.py ID_PATTERN) and the rulebook's
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}"
_ID = re.compile(ID_PATTERN)
# a container name as follow.yml took it before (docker allows [a-zA-Z0-9][a-zA-Z0-9_.-]+)
_APP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
KINDS = ("zone_change", "approaching", "initial")
STRATEGIES = ("m1", "m2", "m3")
MAX_STATE_FILE = 64 * 1024


class _Refused(Exception):
    """Bad input: the message says which field, what it holds and what was expected. Nothing was changed."""


def _plain(value):
    """A copy made of fresh builtin objects (JSON round trip): no Ansible tag, above all no TrustedAsTemplate."""
    return json.loads(json.dumps(value))


def _shown(value) -> str:
    text = repr(str(value) if isinstance(value, str) else value)
    return text if len(text) <= 80 else text[:77] + "..."


def _ident(value, what: str, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise _Refused("%s %s is no identifier (%s)" % (what, _shown(value), ID_PATTERN))
    return str(value)


def _number(value, what: str, optional=True):
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Refused("%s %s is no number" % (what, _shown(value)))
    return float(value)


def _seq(value, what: str):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Refused("%s %s is no sequence number (a whole number from 0)" % (what, _shown(value)))
    return int(value)


def check_event(raw) -> dict:
    """The rulebook's event (``ansible_eda.event``) checked field by field; a plain dict of what follow.yml uses.
    Fields it does not use (at, platform, speed...) are not copied, so they go nowhere."""
    if not isinstance(raw, dict):
        raise _Refused("ansible_eda.event is no mapping (%s)" % type(raw).__name__)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise _Refused("the event's kind %s is none of %s" % (_shown(kind), ", ".join(KINDS)))
    event = {"kind": str(kind),
             "ue": _ident(raw.get("ue"), "the event's ue"),
             "from_zone": _ident(raw.get("from_zone"), "the event's from_zone", optional=True),
             "to_zone": _ident(raw.get("to_zone"), "the event's to_zone"),
             "access_point": _ident(raw.get("access_point"), "the event's access_point", optional=True),
             "previous_access_point": _ident(raw.get("previous_access_point"), "the event's previous_access_point",
                                             optional=True),
             "seq": _seq(raw.get("seq"), "the event's seq")}
    for key in ("received_at", "at_epoch", "eta", "timeout", "confidence"):
        event[key] = _number(raw.get(key), "the event's " + key)
    if kind == "approaching":
        if event["from_zone"] is None:
            raise _Refused("an approaching event needs from_zone (the zone the prediction was made in)")
        for key in ("eta", "timeout"):
            if event[key] is None:
                raise _Refused("an approaching event needs %s" % key)
    return event


def read_state(state_dir: str, name: str, fields: dict) -> dict:
    """<state_dir>/<name>.json as written by an event source or by this plugin, {} when missing; only ``fields``
    ({key: 'id' | 'seq' | 'number'}) are taken, each checked. A link, a non-file, a file too big or not JSON is
    refused with a message naming it."""
    path = os.path.join(state_dir, name + ".json")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise _Refused("cannot read the state file %s: %s (a link or no regular file? the folder is the event "
                       "source's state_dir)" % (path, exc.strerror)) from None
    try:
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise _Refused("the state file %s is no regular file" % path)
            data = fh.read(MAX_STATE_FILE + 1)
    except OSError as exc:
        raise _Refused("cannot read the state file %s: %s" % (path, exc.strerror)) from None
    if len(data) > MAX_STATE_FILE:
        raise _Refused("the state file %s is bigger than %d bytes" % (path, MAX_STATE_FILE))
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise _Refused("the state file %s is no JSON" % path) from None
    if not isinstance(doc, dict):
        raise _Refused("the state file %s holds no JSON object" % path)
    out = {}
    for key, kind in fields.items():
        if key not in doc:
            continue
        what = "%s in %s" % (key, path)
        if kind == "id":
            out[key] = _ident(doc[key], what, optional=True)
        elif kind == "seq":
            out[key] = _seq(doc[key], what)
        else:
            out[key] = _number(doc[key], what)
    return out


def write_state(state_dir: str, name: str, data: dict) -> None:
    """Atomically replace <state_dir>/<name>.json (the folder checked private again first)."""
    state_dir = private_dir(state_dir, create=False)
    final = os.path.join(state_dir, name + ".json")
    tmp = os.path.join(state_dir, ".tmp-%s-%d.json" % (name, os.getpid()))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(data) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def append_line(folder: str, name: str, line: dict) -> str:
    """Append one JSON line to <folder>/<name>.jsonl (made 0644 if missing; a link is refused)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name + ".jsonl")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "a") as fh:
        fh.write(json.dumps(line) + "\n")
    return path


def _hostvar(hostvars, host, name, default=None):
    """hostvars[host][name] (inventory data and registered module results: templated by Ansible as usual)."""
    if host not in hostvars:
        return default
    hv = hostvars[host]
    return hv[name] if name in hv else default


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _VALID_ARGS = frozenset(("step", "app", "zone", "ue", "strategy", "hosts_group", "state_dir", "ahead",
                             "confirm_zone", "results_dir", "decision"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        step = args.get("step", "event")
        try:
            if step == "event":
                decision = self.decide_event(args, task_vars)
            elif step in ("hop", "record"):
                name = args.get("decision") or "follow_decision"
                before = task_vars.get(name)
                if not isinstance(before, dict) or "target_zone" not in before:
                    raise _Refused("step=%s needs the result of step=event registered as %s" % (step, name))
                before = _plain(before)
                if step == "hop":
                    decision = self.decide_hop(before, task_vars)
                else:
                    decision = self.record(before, args, task_vars)
            else:
                raise _Refused("step=%s: event, hop or record" % _shown(step))
        except _Refused as exc:
            raise AnsibleActionFail("follow_hop (%s): %s. Nothing was changed." % (step, exc)) from None
        except PrivateDirError as exc:
            raise AnsibleActionFail("follow_hop (%s): %s" % (step, exc)) from None
        if decision.get("say"):
            display.display("follow_hop: " + decision["say"])
        # fresh untagged values; wrap_var also marks them unsafe on ansible-core < 2.19 (2.19: untags them)
        result.update(wrap_var(_plain(decision)))
        result["changed"] = step == "record" and bool(decision.get("recorded"))
        return result

    # ------------------------------------------------------------------ step event
    def decide_event(self, args, task_vars) -> dict:
        started = time.time()
        app = args.get("app")
        if not isinstance(app, str) or _APP.fullmatch(app) is None:
            raise _Refused("follow_app %s must be the app's container name ([A-Za-z0-9][A-Za-z0-9_.-]{0,127})"
                           % _shown(app))
        strategy = args.get("strategy") or "m2"
        if strategy not in STRATEGIES:
            raise _Refused("follow_strategy %s: m1, m2 or m3" % _shown(strategy))
        group = args.get("hosts_group") or "mec_hosts"
        hosts = list((task_vars.get("groups") or {}).get(group) or [])
        if not hosts:
            raise _Refused("no host in group %s (follow_hosts_group) of the inventory" % _shown(group))
        ahead = self._bool(args.get("ahead", False), "follow_ahead")
        confirm_zone = self._bool(args.get("confirm_zone", False), "follow_confirm_zone")
        state_dir = args.get("state_dir") or ""
        if state_dir:
            state_dir = private_dir(str(state_dir), create=False)

        eda = task_vars.get("ansible_eda")  # RAW: a dict lookup, nothing rendered
        raw = eda.get("event") if isinstance(eda, dict) else None
        event = check_event(raw) if raw is not None else {}
        zone = _ident(args.get("zone"), "follow_zone", optional=True) if args.get("zone") else None
        ue = _ident(args.get("ue"), "follow_ue") if args.get("ue") else event.get("ue", "")
        if not event and not zone:
            raise _Refused("no zone to follow: run by the rulebook (ansible_eda.event) or give follow_zone")
        if ahead and (not state_dir or event.get("kind") != "approaching"):
            raise _Refused("follow_ahead=true needs follow_state_dir (the gate watches <ue>.json there) and an "
                           "approaching event with from_zone and to_zone (got %s)"
                           % ("no event" if not event else "a %s event" % event["kind"]))

        latest = handled = prediction = {}
        if state_dir and ue:
            latest = read_state(state_dir, ue, {"zone": "id", "seq": "seq", "received_at": "number"})
            handled = read_state(state_dir, "%s.%s.handled" % (ue, app), {"seq": "seq", "zone": "id"})
            if ahead:
                prediction = read_state(state_dir, ue + ".approach", {"seq": "seq", "to_zone": "id"})

        seq = event["seq"] if "seq" in event else -1
        latest_seq = latest["seq"] if "seq" in latest else seq
        if ahead:
            target_zone = event["to_zone"]
        else:
            target_zone = zone or (latest["zone"] if "zone" in latest else event.get("to_zone"))
        decision = {
            "app": app, "strategy": strategy, "hosts_group": group, "ue": ue, "seq": seq, "latest_seq": latest_seq,
            "target_zone": target_zone, "mode": "ahead" if ahead else "reactive", "ahead": ahead,
            "confirm_zone": confirm_zone, "state_dir": state_dir, "event": event, "started_at": started,
            "event_received_at": event.get("received_at"), "event_at": event.get("at_epoch"),
            "coalesced": False, "hop": False, "source": "", "target": "", "gate": {}, "zone_hosts": [],
        }
        if ahead:
            replaced = prediction.get("seq", -1) > seq
            where = latest["zone"] if "zone" in latest else event["from_zone"]
            if replaced or where != event["from_zone"]:
                decision["coalesced"] = True
                decision["say"] = "Prediction %d (%s %s -> %s) is stale: %s. Nothing to do." % (
                    seq, ue, event["from_zone"], target_zone,
                    "prediction %d (to %s) replaced it" % (prediction["seq"], prediction.get("to_zone"))
                    if replaced else "the UE is in %s now; the zone change moves the app" % where)
                return decision
        elif event and handled.get("seq", -1) >= seq:
            decision["coalesced"] = True
            decision["say"] = ("Event %d (%s to %s) is covered by the hop made for event %d (to %s): coalesced, "
                               "nothing to do." % (seq, ue, event["to_zone"], handled["seq"], handled.get("zone")))
            return decision
        if target_zone is None:
            decision["coalesced"] = True
            decision["say"] = ("%s is out of coverage now (%s holds no zone): nothing to follow."
                               % (ue, os.path.join(state_dir, ue + ".json")))
            return decision

        hostvars = task_vars.get("hostvars") or {}
        zone_hosts, served = [], []
        for host in hosts:
            zones = _hostvar(hostvars, host, "mec_zones")
            if zones is None:
                single = _hostvar(hostvars, host, "mec_zone")
                zones = [single] if single is not None else []
            zones = [zones] if isinstance(zones, str) else list(zones)
            served.append("%s=%s" % (host, "+".join(str(z) for z in zones) or "-"))
            if target_zone in zones:
                zone_hosts.append(host)
        if len(zone_hosts) != 1:
            raise _Refused("zone %s has %s in group %s (zones served: %s): set mec_zones (or mec_zone) on one host; "
                           "%s stays where it is" % (target_zone, "no host" if not zone_hosts else
                                                     "more than one host (%s)" % ", ".join(zone_hosts),
                                                     group, " ".join(served), app))
        decision.update(target=zone_hosts[0], zone_hosts=zone_hosts)
        return decision

    @staticmethod
    def _bool(value, what):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1", "on"):
            return True
        if str(value).lower() in ("false", "no", "0", "off", ""):
            return False
        raise _Refused("%s %s: true or false" % (what, _shown(value)))

    # ------------------------------------------------------------------ step hop
    def decide_hop(self, decision, task_vars) -> dict:
        """Where the app runs (follow.yml's container_info on every host, registered as follow_app_info), the hop
        and, ahead or with confirm_zone, the relocation gate on the event source's state files."""
        if decision["coalesced"]:
            return decision
        hostvars = task_vars.get("hostvars") or {}
        running, unreadable = [], []
        for host in (task_vars.get("groups") or {}).get(decision["hosts_group"]) or []:
            info = _hostvar(hostvars, host, "follow_app_info")
            if not isinstance(info, dict):
                continue
            if info.get("unreachable"):
                unreadable.append(host)
            container = info.get("container")
            if isinstance(container, dict) and container.get("running") is True:
                running.append(host)
        app, group = decision["app"], decision["hosts_group"]
        if len(running) != 1:
            raise _Refused("%s runs on %s of group %s%s: it must run on exactly one to be moved" % (
                app, ", ".join(running) if running else "no host", group,
                " (unreachable: %s)" % ", ".join(unreadable) if unreadable else ""))
        source, target, zone = running[0], decision["target"], decision["target_zone"]
        state_dir, ue, event = decision["state_dir"], decision["ue"], decision["event"]
        gate = {}
        esc = re.escape
        if decision["ahead"]:
            timeout = event["timeout"] if event.get("timeout") is not None else 2 * (event.get("eta") or 30) + 10
            gate = {"path": os.path.join(state_dir, ue + ".json"),
                    "open": '"zone": "%s"' % esc(zone),
                    # any zone but the two of the prediction (null, out of coverage, keeps waiting)
                    "abandon": '"zone": "(?!%s"|%s")' % (esc(event["from_zone"]), esc(zone)),
                    "timeout": float(timeout),
                    # mec_approach's mark (relocate_lead) opens it; a newer prediction elsewhere abandons it
                    "watch": [{"path": os.path.join(state_dir, ue + ".approach.json"),
                               "open": '"relocate_to": "%s"' % esc(zone),
                               "abandon": '"to_zone": "(?!%s")' % esc(zone)}]}
        elif decision["confirm_zone"] and state_dir and ue:
            gate = {"path": os.path.join(state_dir, ue + ".json"), "open": '"zone": "%s"' % esc(zone),
                    "abandon": '"zone": "(?!%s")' % esc(zone), "timeout": 60.0}
        hop = source != target
        decision.update(source=source, hop=hop, gate=gate)
        if hop:
            how = ""
            if decision["ahead"]:
                how = ", staged now, relocated when the UE enters %s (at most %g s)" % (zone, gate["timeout"])
            elif gate:
                how = ", relocated only while the UE is still in %s" % zone
            decision["say"] = "%s is in %s (event %d, latest %d): moving %s from %s to %s with %s%s." % (
                ue or "UE", zone, decision["seq"], decision["latest_seq"], app, source, target, decision["strategy"],
                how)
        else:
            decision["say"] = "%s is in %s (event %d, latest %d): %s already runs on %s, nothing to do." % (
                ue or "UE", zone, decision["seq"], decision["latest_seq"], app, target)
        return decision

    # ------------------------------------------------------------------ step record
    def record(self, decision, args, task_vars) -> dict:
        """The handled file (the latest event this hop covered: later queued events for older zones end at once)
        and one line in <results_dir>/<app>.jsonl, both written here."""
        hostvars = task_vars.get("hostvars") or {}
        source, target = decision["source"], decision["target"]
        record = {}
        if decision["hop"] and source in hostvars and target in hostvars:
            # migrate.yml registers mec.migration.migration_record's result (run_once: on both hosts of the hop)
            registered = _hostvar(hostvars, source, "migration_record")
            if not isinstance(registered, dict):
                registered = _hostvar(hostvars, target, "migration_record")
            record = (registered or {}).get("record") if isinstance(registered, dict) else None
            record = _plain(record) if isinstance(record, dict) else {}
        state_dir, ue, zone = decision["state_dir"], decision["ue"], decision["target_zone"]
        after = {}
        if decision["ahead"] and state_dir and ue:
            after = read_state(private_dir(state_dir, create=False), ue,
                               {"zone": "id", "seq": "seq", "received_at": "number"})
        if decision["ahead"]:
            entered = (not decision["coalesced"] and after.get("zone") == zone
                       and (record.get("status") or "ok") == "ok")
            covered = after.get("seq", -1) if entered else -1
            handover_received_at = after.get("received_at") if entered else None
        else:
            covered = decision["latest_seq"]
            handover_received_at = decision["event_received_at"]
        recorded = []
        check_mode = bool(self._task.check_mode)
        if state_dir and ue and not decision["coalesced"] and covered >= 0 and not check_mode:
            write_state(state_dir, "%s.%s.handled" % (ue, decision["app"]),
                        {"seq": covered, "zone": zone, "host": target})
            recorded.append("handled")
        event = decision["event"]
        timestamps = record.get("timestamps") if isinstance(record.get("timestamps"), dict) else {}
        line = {
            "app": decision["app"], "ue": ue, "seq": decision["seq"], "latest_seq": decision["latest_seq"],
            "zone": zone, "source": source, "target": target, "moved": decision["hop"],
            "coalesced": decision["coalesced"], "strategy": decision["strategy"], "mode": decision["mode"],
            "event_received_at": decision["event_received_at"], "event_at": decision["event_at"],
            "playbook_started_at": decision["started_at"],
            # the handover (zone change) this run moved the app for, as the event source received it; ahead: the
            # one that opened the gate (null when the gate did not open)
            "handover_seq": covered if covered >= 0 else None, "handover_received_at": handover_received_at,
            # ahead: the prediction (eta and timeout in s)
            "prediction": {"eta": event.get("eta"), "timeout": event.get("timeout"),
                           "confidence": event.get("confidence"), "from_zone": event.get("from_zone")}
            if decision["ahead"] else None,
            "run_id": record.get("run_id"), "status": record.get("status"),
            "migration_started_at": timestamps.get("started_at"),
            # the gate: outcome, seconds waited, when it opened (the relocation started right after)
            "gate": record.get("gate"),
            "target_running_at": timestamps.get("target_running_at"),
            "finished_at": time.time(),
        }
        results_dir = args.get("results_dir")
        if results_dir and not check_mode:
            decision["log"] = append_line(str(results_dir), decision["app"], line)
            recorded.append("log")
        decision.update(recorded=recorded, line=line, say="")
        return decision
