"""The drive's pure parts: served-locally time, the UE-visible outages, one record per hop, the figures' medians.

Inputs are plain data, all times Unix seconds (wall clock of the controller):
- samples: the probe's timeline, [{"t", "zone", "up": [hosts whose A2 answered], "counter": {host: n}}, ...]
  in time order (zone = the UE's zone at t, from the MEC platform);
- zone_host: {zone: the inventory host that serves it};
- handovers: the UE's zone changes, [{"at", "from_zone", "to_zone"}, ...] in time order ("at": the wall time the
  sandbox reached it, wall_time_of; "event_at", when given: the platform's own time stamp of it);
- follow_lines: follow.yml's log lines (one per rulebook run: seq, zone, source, target, moved, coalesced,
  event_at, event_received_at, playbook_started_at, finished_at);
- records: migrate.yml's records (schema mec.migration/record/v1: status, run_id, source.host, target.host,
  timestamps.started_at / source_stopped_at / target_running_at / finished_at, downtime.wall).
"""

from __future__ import annotations

import statistics

# a follow line belongs to the handover whose instant is this close to the event's (the event carries the
# platform's timestamp of the change, the handover list the same instant from the same clock)
EVENT_MATCH_S = 0.5
# the probe stamps a sample when it starts asking, so an answer can be stamped up to its timeout (0.8 s) before
# the record's target_running_at (another clock reading of the same machine)
RUNNING_SLACK_S = 1.0


def sample_state(sample: dict, zone_host: dict) -> str:
    """local (the UE's zone's host answers), remote (another host answers), down (no host answers)."""
    up = sample.get("up") or []
    if not up:
        return "down"
    return "local" if zone_host.get(sample.get("zone")) in up else "remote"


def wall_time_of(samples: list[dict], sim_t: float, epoch: float) -> float:
    """The wall time at which the sandbox's simulated clock reached ``sim_t``: interpolated between the two probe
    samples ({"t": wall, "sim": simulated}) around it; ``epoch + sim_t`` before the first sample with a clock, after
    the last, or without samples. The sandbox's clock runs on the monotonic clock, which stands still while the
    whole machine is held (a shared VM's pauses): afterwards its simulated time lags the wall clock, and a handover
    happens for the UE, the platform's notification and the probe when the sandbox reaches it, not at epoch + t."""
    prev = None
    for s in samples:
        sim = s.get("sim")
        if sim is None:
            continue
        if sim >= sim_t:
            if prev is None:  # reached before the first sample: back from it at the clock's own pace
                return s["t"] - (sim - sim_t)
            return prev["t"] + (sim_t - prev["sim"]) / (sim - prev["sim"]) * (s["t"] - prev["t"])
        prev = s
    return epoch + sim_t if prev is None else prev["t"] + (sim_t - prev["sim"])


def served_locally(samples: list[dict], zone_host: dict, start: float, end: float) -> dict:
    """Seconds of [start, end) in each state and the served-locally ratio (local seconds / the window).

    Each sample stands for the time until the next one (the last one until ``end``); time before the first
    sample counts as down (nothing was seen serving)."""
    total = max(0.0, end - start)
    spent = {"local": 0.0, "remote": 0.0, "down": 0.0}
    inside = [s for s in samples if s["t"] < end]
    if not inside or inside[0]["t"] > start:
        spent["down"] += (min(inside[0]["t"], end) if inside else end) - start
    for i, s in enumerate(inside):
        a = max(s["t"], start)
        b = min(inside[i + 1]["t"] if i + 1 < len(inside) else end, end)
        if b > a:
            spent[sample_state(s, zone_host)] += b - a
    return {"seconds": {k: round(v, 3) for k, v in spent.items()}, "window_s": round(total, 3),
            "ratio": (spent["local"] / total) if total > 0 else None}


def outages(samples: list[dict]) -> list[dict]:
    """Runs of samples in which no host answered: from the last answer before to the first answer after.

    With samples every 0.2 s a measured outage is at most one interval longer than the real one. A run that
    the timeline's start or end cuts is left out (its length is unknown)."""
    out, last_ok, gap_from = [], None, None
    for s in samples:
        if s.get("up"):
            if gap_from is not None and last_ok is not None:
                out.append({"from": last_ok, "to": s["t"], "seconds": round(s["t"] - last_ok, 3),
                            "first_missed": gap_from})
            gap_from, last_ok = None, s["t"]
        elif gap_from is None:
            gap_from = s["t"]
    return out


def first_serving(samples: list[dict], host: str, start: float, end: float) -> float | None:
    """When ``host`` began the run of answers that holds at ``start`` or that begins in (start, end), else None.

    A host that already served at ``start`` (the app went there before the handover) gives the instant its
    run of answers began, which is then before ``start``."""
    run_from = None
    for s in samples:
        if s["t"] >= end:
            break
        if host in (s.get("up") or []):
            if run_from is None:
                run_from = s["t"]
            if s["t"] >= start:
                return run_from
        else:
            run_from = None
    return None


def _record_times(record: dict) -> tuple[float | None, float | None]:
    ts = record.get("timestamps") or {}
    return _num(ts.get("started_at")), _num(ts.get("finished_at"))


def _num(value):
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _record_summary(record: dict) -> dict:
    ts = record.get("timestamps") or {}
    gate = record.get("gate") or {}
    pre = ((record.get("durations") or {}).get("pre_relocation")) or {}
    ops = [_num(v) for part in pre.values() if isinstance(part, dict) for v in part.values()]
    return {"run_id": record.get("run_id"), "status": record.get("status"), "outcome": record.get("outcome"),
            "error": record.get("error"), "source": (record.get("source") or {}).get("host"),
            "target": (record.get("target") or {}).get("host"),
            "started_at": _num(ts.get("started_at")), "source_stopped_at": _num(ts.get("source_stopped_at")),
            "target_running_at": _num(ts.get("target_running_at")), "finished_at": _num(ts.get("finished_at")),
            "downtime_s": _num((record.get("downtime") or {}).get("wall")),
            "pre_relocation_operations_s": round(sum(x for x in ops if x is not None), 3),
            "gate": {"outcome": gate.get("outcome"), "waited_s": _num(gate.get("waited")),
                     "opened_at": _num(gate.get("opened_at"))} if gate else None}


def staging_given_up(record: dict) -> bool:
    """An ahead-of-time staging rolled back because the UE went elsewhere or did not come (its gate was abandoned
    or timed out): the app kept serving where it was, as designed; not a failed hop."""
    return (record.get("gate") or {}).get("outcome") in ("abandoned", "timeout")


def hop_failed(record: dict) -> bool:
    return record.get("status") != "ok" and not staging_given_up(record)


def match_records(follow_lines: list[dict], records: list[dict]) -> tuple[dict, list[dict]]:
    """Pair each moving follow run with the migrate.yml record it made (same hosts, started within the run).

    Returns ({index of the follow line: record}, records no follow line made: a failed hop writes no follow
    line, because follow.yml stops with migrate.yml)."""
    used, paired = set(), {}
    for i, line in enumerate(follow_lines):
        if not _truthy(line.get("moved")):
            continue
        p0, p1 = _num(line.get("playbook_started_at")), _num(line.get("finished_at"))
        for j, rec in enumerate(records):
            r0, _r1 = _record_times(rec)
            if j in used or r0 is None or p0 is None or p1 is None:
                continue
            if (p0 <= r0 <= p1 and (rec.get("source") or {}).get("host") == line.get("source")
                    and (rec.get("target") or {}).get("host") == line.get("target")):
                paired[i] = rec
                used.add(j)
                break
    return paired, [r for j, r in enumerate(records) if j not in used]


def _truthy(value) -> bool:
    return value is True or str(value).lower() in ("true", "1", "yes")


def assemble_hops(handovers: list[dict], follow_lines: list[dict], records: list[dict], samples: list[dict],
                  zone_host: dict, end: float) -> list[dict]:
    """One entry per handover of the drive: what the event, the rulebook's run and the migration did, and
    what the UE saw until the next handover (or ``end``).

    outcome: moved (a migration brought the app to this zone's host), failed (a migration for it failed),
    superseded (its run moved the app straight to a later zone's host, the UE's latest when the run began),
    coalesced (its run found an earlier hop covering it: the app went straight to a later zone),
    already_there (the app was on this zone's host when its run decided), given_up (its hop was rolled back by
    design before the relocation: the UE had already left the zone), no_event (no rulebook run for it)."""
    paired, _orphans = match_records(follow_lines, records)
    # a handover's own event is a zone change: ahead-of-time runs (mode ahead) answer predictions
    by_event = [(_num(line.get("event_at")), i, line) for i, line in enumerate(follow_lines)
                if line.get("mode") != "ahead"]
    lines_of, taken = [], set()
    for h in handovers:  # each handover's own event: the closest one within EVENT_MATCH_S
        # the event's time stamp is the platform's (its simulated clock), as the handover's event_at
        h_at = h.get("event_at", h["at"])
        near = [(abs(ev_at - h_at), i) for ev_at, i, _ln in by_event
                if ev_at is not None and abs(ev_at - h_at) <= EVENT_MATCH_S and i not in taken]
        line_i = min(near)[1] if near else None
        taken.add(line_i)
        lines_of.append(line_i)
    used = {id(paired[i]) for i in lines_of if i in paired}
    hops = []
    for k, h in enumerate(handovers):
        at = h["at"]
        until = handovers[k + 1]["at"] if k + 1 < len(handovers) else end
        prev_at = handovers[k - 1]["at"] if k else float("-inf")
        host = zone_host.get(h["to_zone"])
        line_i = lines_of[k]
        line = follow_lines[line_i] if line_i is not None else None
        rec = paired.get(line_i) if line_i is not None else None
        superseded = rec is not None and rec.get("status") == "ok" and (rec.get("target") or {}).get("host") != host
        if superseded:  # the run went straight to a later zone's host: that hop takes the record
            used.discard(id(rec))
            rec = None
        elif rec is None:
            # a migration no handover's own run made: ahead of time (started during the previous stay, for an
            # approaching event), or a failed hop (follow.yml writes no line when migrate.yml fails)
            free = [r for r in records if id(r) not in used]
            ahead = [r for r in free if r.get("status") == "ok" and (r.get("target") or {}).get("host") == host
                     and _in_window(r, prev_at, until)]
            failed = [r for r in free if hop_failed(r) and _in_window(r, at, until)]
            rec = (ahead or failed or [None])[0]
            if rec is not None:
                used.add(id(rec))
        if rec is not None:
            outcome = "moved" if rec.get("status") == "ok" else "failed"
        elif superseded:
            outcome = "superseded"
        elif line is None:
            # follow.yml writes no line when its migrate.yml fails: a hop given up by design (follow_confirm_zone:
            # the UE had left the zone before the relocation) has only its record
            # (its queued run may start only after the stay: the record starts before the next stay ends)
            after_next = handovers[k + 2]["at"] if k + 2 < len(handovers) else end
            gave_up = [r for r in records if id(r) not in used and staging_given_up(r)
                       and (r.get("target") or {}).get("host") == host and _in_window(r, at, after_next)]
            outcome = "given_up" if gave_up else "no_event"
        elif _truthy(line.get("coalesced")):
            outcome = "coalesced"
        else:
            outcome = "already_there"
        received = _num(line.get("event_received_at")) if line else None
        # the run that moved the app for this hop (ahead: the prediction's, started before the handover), else the
        # hop's own run
        mover = _line_of(follow_lines, rec) if rec is not None else None
        started = _num((mover or line or {}).get("playbook_started_at"))
        serving = None
        if host and rec is not None and outcome == "moved":
            # the move's own start of service: the first answers of the host from its record's target_running_at
            # on (a late move serves after the stay ended; an app still on that host from before does not count)
            running = _num(((rec.get("timestamps") or {}).get("target_running_at")))
            if running is not None:
                serving = first_serving(samples, host, max(at, running - RUNNING_SLACK_S), float("inf"))
        elif host:
            serving = first_serving(samples, host, at, until)
        # another run was in progress when the event came (a follow line's span; a record's too: a run whose
        # migration failed or whose staging was given up writes no follow line)
        busy = [(_num(o.get("playbook_started_at")), _num(o.get("finished_at"))) for o in follow_lines
                if o is not line] + [_record_times(r) for r in records]
        queued = line is not None and received is not None and any(
            a is not None and b is not None and a <= received <= b for a, b in busy)
        window = served_locally(samples, zone_host, at, until)
        # the outage the UE saw for this hop: around its move when it moved (a late move's is after the stay);
        # else whatever no move claims within the stay (second pass below)
        outage_window = (at, until, False)
        if serving is not None and rec is not None:
            stopped = _num((rec.get("timestamps") or {}).get("source_stopped_at"))
            outage_window = (min(at, stopped - RUNNING_SLACK_S) if stopped is not None else at, serving + 0.001, True)
        hops.append({
            "index": k + 1, "at": at, "from_zone": h["from_zone"], "to_zone": h["to_zone"], "zone_host": host,
            "stay_s": round(until - at, 3), "stay_cut_by_end": k + 1 == len(handovers), "outcome": outcome,
            "event_received_at": received, "playbook_started_at": started,
            "event_delay_s": _diff(received, at), "event_to_playbook_s": _diff(started, received),
            "queued": queued,
            "serving_at": serving, "handover_to_serving_s": _diff(serving, at),
            # ahead: when the staged hop's gate opened, from the handover (negative: before it, relocate_lead)
            "handover_to_gate_open_s": _diff(((rec.get("gate") or {}).get("opened_at") if rec else None), at)
            if outcome == "moved" else None,
            "event_to_serving_s": _diff(serving, received),
            "ue_downtime_s": 0.0, "ue_outages": 0, "_outage_window": outage_window,
            "served_locally_s": window["seconds"]["local"], "served_locally_ratio": window["ratio"],
            "follow": line, "moving_run": mover if mover is not line else None,
            "migration": _record_summary(rec) if rec is not None else None,
            "breakdown": _breakdown(rec, started, serving) if rec is not None and outcome == "moved" else None,
        })
    _attribute_outages(hops, outages(samples))
    return hops


def _attribute_outages(hops: list[dict], gaps: list[dict]) -> None:
    """Each UE-visible outage counts once: for the move whose window holds it, else for the stay it began in."""
    claimed = set()
    for moves in (True, False):
        for h in hops:
            g0, g1, is_move = h["_outage_window"]
            if is_move != moves:
                continue
            mine = [i for i, g in enumerate(gaps) if i not in claimed and g0 <= g["first_missed"] < g1]
            claimed.update(mine)
            h["ue_downtime_s"] = round(sum(gaps[i]["seconds"] for i in mine), 3)
            h["ue_outages"] = len(mine)
    for h in hops:
        del h["_outage_window"]


def _line_of(follow_lines: list[dict], record: dict) -> dict | None:
    """The follow run that made ``record``: the one that names its run id, else the one it started within."""
    for ln in follow_lines:
        if ln.get("run_id") and ln.get("run_id") == record.get("run_id"):
            return ln
    r0, _ = _record_times(record)
    for ln in follow_lines:
        p0, p1 = _num(ln.get("playbook_started_at")), _num(ln.get("finished_at"))
        if _truthy(ln.get("moved")) and r0 is not None and p0 is not None and p1 is not None and p0 <= r0 <= p1:
            return ln
    return None


def _breakdown(record: dict, playbook_started: float | None, serving: float | None) -> dict:
    """Where a moving run's time went: follow.yml deciding, migrate.yml before the source stopped (the
    pre-relocation: its operations and the rest, Ansible; ahead, the gate's wait too), the relocation (the
    record's downtime), the app answering its first probe on the target."""
    m = _record_summary(record)
    gate_wait = (m["gate"] or {}).get("waited_s") or 0.0
    pre = _diff(m["source_stopped_at"], m["started_at"])
    return {"follow_decide_s": _diff(m["started_at"], playbook_started),
            "pre_relocation_s": pre, "gate_wait_s": gate_wait or None,
            "pre_relocation_operations_s": m["pre_relocation_operations_s"],
            "pre_relocation_ansible_s": (round(pre - gate_wait - m["pre_relocation_operations_s"], 3)
                                         if pre is not None else None),
            "relocation_s": _diff(m["target_running_at"], m["source_stopped_at"]),
            "running_to_answering_s": _diff(serving, m["target_running_at"])}


def _in_window(record: dict, start: float, end: float) -> bool:
    r0, _ = _record_times(record)
    return r0 is not None and start <= r0 < end


def _diff(a, b):
    return None if a is None or b is None else round(a - b, 3)


def stats(values: list) -> dict:
    """count, median, max and min of the numbers given (None left out)."""
    v = sorted(x for x in values if x is not None)
    if not v:
        return {"count": 0, "median": None, "max": None, "min": None}
    return {"count": len(v), "median": round(statistics.median(v), 3), "max": round(v[-1], 3),
            "min": round(v[0], 3)}


def zones_entered(start_zone: str | None, handovers: list[dict]) -> int:
    """Zones the UE entered during the drive, the start zone included (A2 counts the first zone it sees)."""
    return (1 if start_zone else 0) + len(handovers)
