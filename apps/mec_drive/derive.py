"""What another placement would give, DERIVED (not measured): the rulebook's follower replayed against the UE's
stays under that placement, with the hop latencies measured on the drive.

The model is the rulebook's: one run at a time (sequential), a run starts ``to_playbook`` seconds after its
event (or after the previous run ended, when it waited), decides the UE's LATEST host at its start, and either
ends after ``noop_s`` (coalesced: an earlier run covered its event; or the app is already there) or moves the
app: the app stops answering ``downtime_s`` before it serves on the new host, ``move_s`` after the run's start,
and the run ends ``tail_s`` later. Replayed on the per-zone stays of the drive itself, the model must give back
the measured served-locally ratio (that is its check); replayed on the per-access-point stays it estimates what
one MEC host per access point would give.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FollowModel:
    event_delay_s: float  # handover -> the event source has the event
    to_playbook_s: float  # event (or the previous run's end) -> follow.yml starts
    move_s: float  # follow.yml's start -> the app serves on the new host
    downtime_s: float  # the app answers nowhere for this long, ending when it serves on the new host
    tail_s: float  # serving on the new host -> the run ends (record, log)
    noop_s: float  # a run that moves nothing (coalesced, already there), start to end

    def as_dict(self) -> dict:
        return {k: round(v, 3) for k, v in vars(self).items()}


def host_timeline(changes: list[tuple[float, str | None]], host_of) -> list[tuple[float, str | None]]:
    """[(t, host)] at t=0 and at every change of host, from [(t, poa or zone)] through ``host_of``."""
    out: list[tuple[float, str | None]] = []
    for t, where in changes:
        h = host_of(where)
        if not out or out[-1][1] != h:
            out.append((t, h))
    return out


def value_at(steps: list[tuple[float, str | None]], t: float):
    """The value of a step function [(from t, value), ...] (in time order) at ``t``; the first before it starts."""
    value = steps[0][1]
    for at, v in steps:
        if at > t:
            break
        value = v
    return value


def replay(timeline: list[tuple[float, str | None]], model: FollowModel, end: float) -> dict:
    """Served-locally seconds and ratio over [timeline[0].t, end) for an app that starts on the first host."""
    start = timeline[0][0]
    serving: list[tuple[float, str | None]] = [(start, timeline[0][1])]  # (from t, host; None = answering nowhere)
    handled_upto = 0  # index into timeline of the latest change a run covered
    free_at = start
    runs = moves = 0
    for i in range(1, len(timeline)):
        t_event = timeline[i][0] + model.event_delay_s
        if t_event >= end:
            break
        run_start = max(t_event, free_at) + model.to_playbook_s
        runs += 1
        if handled_upto >= i:  # an earlier run went to a later zone: coalesced
            free_at = run_start + model.noop_s
            continue
        latest = max(j for j in range(len(timeline)) if timeline[j][0] + model.event_delay_s <= run_start)
        target = timeline[latest][1]
        handled_upto = latest
        current = serving[-1][1] if serving[-1][1] is not None else serving[-2][1]
        if target == current or target is None:
            free_at = run_start + model.noop_s
            continue
        up_at = run_start + model.move_s
        serving.append((up_at - model.downtime_s, None))
        serving.append((up_at, target))
        free_at = up_at + model.tail_s
        moves += 1
    local = 0.0
    points = sorted({t for t, _ in timeline} | {t for t, _ in serving} | {end})
    for a, b in zip(points, points[1:]):
        if a >= end:
            break
        b = min(b, end)
        app_on = value_at(serving, a)
        if app_on is not None and app_on == value_at(timeline, a):
            local += b - a
    window = end - start
    return {"served_locally_s": round(local, 3), "window_s": round(window, 3),
            "ratio": local / window if window > 0 else None, "host_changes": len(timeline) - 1,
            "runs": runs, "moves": moves}


def ceiling(timeline: list[tuple[float, str | None]], lag_s: float, end: float) -> dict:
    """Served locally if every host change were followed by the app ``lag_s`` seconds later, each on its own (no
    queue, no wrong prediction): the ceiling of a follower whose hops all take ``lag_s`` (a stay shorter than
    that is lost whole). The first stay counts whole (the app starts there)."""
    start = timeline[0][0]
    local = 0.0
    for i, (t, _host) in enumerate(timeline):
        if t >= end:
            break
        until = min(timeline[i + 1][0], end) if i + 1 < len(timeline) else end
        local += (until - t) if i == 0 else max(0.0, until - t - lag_s)
    window = end - start
    return {"lag_s": round(lag_s, 3), "served_locally_s": round(local, 3),
            "ratio": local / window if window > 0 else None}


def staged_ahead(timeline: list[tuple[float, str | None]], staging_s: float, outage_s: float, end: float,
                 serial: bool = False) -> dict:
    """Served locally by a follower that stages every hop ahead with a perfect predictor and relocates just in time,
    limited only by the staging itself. The hop into stay i can be staged from the previous handover on (a
    prediction is made from the host's own zone); with ``serial`` only once the previous hop has also ended (its
    relocation done, or its staging given up when its stay ended), as a follower that runs one migration at a time
    does; without it, stagings overlap (the bound of a follower that stages in parallel). The hop is ready at
    ``max(t_i, staging start + staging_s)``; from then the app is lost for ``outage_s`` (the relocation, straddling
    the handover when staged in time) and serves the rest of the stay. A stay that ends before its hop is ready is
    lost whole (the hop is given up; the app stays where it was, which may be the next stay's host). The first stay
    counts whole."""
    start = timeline[0][0]
    local, staged_in_time, late, lost = 0.0, 0, 0, 0
    app_on = timeline[0][1]
    busy_until = start  # serial: when the follower's previous hop ended
    for i, (t, host) in enumerate(timeline):
        if t >= end:
            break
        until = min(timeline[i + 1][0], end) if i + 1 < len(timeline) else end
        if host == app_on:  # the first stay, or back on the app's host before it had moved: nothing to do
            local += until - t
            continue
        begin = max(timeline[i - 1][0], busy_until) if serial else timeline[i - 1][0]
        ready = max(t, begin + staging_s)
        if ready + outage_s >= until:
            lost += 1
            busy_until = max(busy_until, until)
            continue
        staged_in_time += ready == t
        late += ready > t
        local += until - ready - outage_s
        app_on = host
        busy_until = ready + outage_s
    window = end - start
    return {"staging_s": round(staging_s, 3), "outage_s": round(outage_s, 3), "serial": serial,
            "served_locally_s": round(local, 3), "ratio": local / window if window > 0 else None,
            "hops_staged_in_time": staged_in_time, "hops_late": late, "stays_lost": lost}


def staged_ahead_range(timeline: list[tuple[float, str | None]], staging_s: float, outage_s: float,
                       end: float) -> dict:
    """The staged-ahead model as a range: staging only after the previous hop ended (``low``) and staging in
    parallel (``high``)."""
    return {"low": staged_ahead(timeline, staging_s, outage_s, end, serial=True),
            "high": staged_ahead(timeline, staging_s, outage_s, end, serial=False)}
