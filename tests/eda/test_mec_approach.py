"""The mec_approach event source (zone prediction) against the local MEC sandbox in-process on loopback, with a
manual clock: the test advances the simulated time one poll interval at a time and polls after each step.

Car 10.100.0.1 (20 m/s) is in zone01 at t=0 and enters zone02 at 150.95 s and zone03 at 178.75 s (the sandbox's
50 ms steps); 10.1.0.2 stands still in zone01. Figures of the predictor over 10 minutes:
tests/benchmarks/follow_predict.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from test_mec_mobility import CAR, InProcessSandbox

PARKED = "10.1.0.2"
ZONE02_AT = 150.95  # the car's handover zone01 -> zone02 (simulated s)
# measured (follow_predict.py, horizon 40 s): the first handover's standing prediction is 4.0 s early
ETA_TOLERANCE = 5.0


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def _drive(sbx, src, start: float, end: float, step: float = 1.0) -> list[tuple[float, dict]]:
    """Advance the clock from start to end one step at a time, polling after each; (sim time, event) pairs."""
    out, t = [], start
    while t <= end + 1e-9:
        await sbx.advance_to(t)
        out.extend((t, e) for e in await src.poll_once())
        t += step
    return out


def test_predicts_the_cars_next_zone_before_the_handover_once(ma, tmp_path):
    async def scenario():
        sbx = await InProcessSandbox().start()
        queue: asyncio.Queue = asyncio.Queue()
        src = ma.ApproachSource(ma.Settings({**sbx.source_args, "ues": [CAR, PARKED],
                                             "state_dir": str(tmp_path)}), queue)
        await src.start()
        try:
            before = await _drive(sbx, src, 120, 150)  # up to the last poll before the handover
            after = await _drive(sbx, src, 151, 175)
            queued = [queue.get_nowait() for _ in range(queue.qsize())]
            state = json.loads((tmp_path / f"{CAR}.approach.json").read_text())
        finally:
            await src.api.close()
            await sbx.stop()
        return before, after, queued, state, sbx.sb.at(0.0)

    before, after, queued, state, epoch0 = _run(scenario())
    # before the handover: exactly one prediction, zone01 -> zone02, for the car only (the parked UE has none)
    assert [(e["ue"], e["kind"], e["from_zone"], e["to_zone"]) for _, e in before] == [
        (CAR, "approaching", "zone01", "zone02")]
    t, e = before[0]
    assert e["at_epoch"] == pytest.approx(epoch0 + t)  # the platform's time of the position it predicted from
    lead = ZONE02_AT - t
    assert lead > 0 and abs(lead - e["eta"]) <= ETA_TOLERANCE, (lead, e["eta"])
    assert e["timeout"] == pytest.approx(2 * e["eta"] + 10)
    assert 19 <= e["speed"] <= 21 and e["api"] == "mec013" and e["seq"] == 1 and 0 < e["confidence"] <= 1
    assert e["predicted_access_point"] and e["access_point"]
    # after it: the next prediction is from the new zone (zone02 -> zone03, the handover at 178.75 s), once
    assert [(e["from_zone"], e["to_zone"], e["seq"]) for _, e in after] == [("zone02", "zone03", 2)]
    assert after[0][0] < 178.75
    assert [q["seq"] for q in queued] == [1, 2]  # what was returned is what went on the queue
    assert state["seq"] == 2 and state["to_zone"] == "zone03" and state["from_zone"] == "zone02"


def test_a_prediction_that_times_out_is_made_again(ma):
    """The same prediction stands for its timeout (2 x eta + margin); still true after it, it is put again."""

    async def scenario():
        sbx = await InProcessSandbox().start()
        src = ma.ApproachSource(ma.Settings({**sbx.source_args, "ues": [CAR], "margin": 0,
                                             "horizon": 40}), asyncio.Queue())
        await src.start()
        try:
            events = await _drive(sbx, src, 0, 150)
        finally:
            await src.api.close()
            await sbx.stop()
        return events

    events = _run(scenario())
    assert len(events) >= 2 and {(e["from_zone"], e["to_zone"]) for _, e in events} == {("zone01", "zone02")}
    for (t1, e1), (t2, _) in zip(events, events[1:]):
        assert t2 - t1 >= e1["timeout"]  # never again while it stands


def test_platform_down_while_polling_is_retried(ma):
    async def scenario():
        sbx = await InProcessSandbox().start()
        port = sbx.port
        src = ma.ApproachSource(ma.Settings({**sbx.source_args, "ues": [CAR], "request_timeout": 1}),
                                asyncio.Queue())
        await src.start()
        try:
            await sbx.stop()
            down = await src.poll_once()
            was_up = src.platform_up
            sbx = await InProcessSandbox(port).start()
            events = await _drive(sbx, src, 130, 150)
        finally:
            await src.api.close()
            await sbx.stop()
        return down, was_up, events, src.stats

    down, was_up, events, stats = _run(scenario())
    assert down == [] and not was_up and stats["poll_errors"] == 1
    assert [(e["from_zone"], e["to_zone"]) for _, e in events] == [("zone01", "zone02")]


def test_unknown_ue_stops_with_a_clear_message(ma):
    async def scenario():
        sbx = await InProcessSandbox().start()
        try:
            with pytest.raises(ma.MecApproachError) as err:
                await ma.main(asyncio.Queue(), {**sbx.source_args, "ues": [CAR, "10.9.9.9"]})
        finally:
            await sbx.stop()
        return str(err.value)

    msg = _run(scenario())
    assert msg.startswith("mec_approach: UE 10.9.9.9 is unknown to the MEC platform at http://127.0.0.1:")
    assert "check ues" in msg


def test_unreachable_platform_stops_with_a_clear_message(ma):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/sbx"

    async def scenario():
        with pytest.raises(ma.MecApproachError) as err:
            await ma.main(asyncio.Queue(), {"platform_url": url, "ues": [CAR], "startup_timeout": 0.5})
        return str(err.value)

    started = time.monotonic()
    msg = _run(scenario())
    assert time.monotonic() - started < 5
    assert f"mec_approach: the MEC platform at {url}/location/v2 is unreachable" in msg
    assert "after 0.5 s: check platform_url and that the platform runs" in msg


def test_bad_arguments_are_all_reported(ma):
    with pytest.raises(ma.MecApproachError) as err:
        ma.Settings({"platform_url": "ftp://x", "poll_interval": 0, "horizon": "far", "step": 50, "window": -1,
                     "coverage_radius": {"5G": "wide"}, "priority": [], "colour": "red"})
    msg = str(err.value)
    for part in ["mec_approach: bad arguments:", "unknown argument(s) ['colour']", "platform_url=ftp://x",
                 "ues: give the address", "poll_interval=0", "horizon='far'", "window=-1", "5G='wide'",
                 "priority: give at least one", "step=50 is longer than horizon=40"]:
        assert part in msg, part
    with pytest.raises(ma.MecApproachError, match="coverage_radius=400: a mapping"):
        ma.Settings({"platform_url": "http://127.0.0.1:1", "ues": [CAR], "coverage_radius": 400})


def test_disabled_source_stays_idle(ma):
    """enabled: false (the rulebook's reactive mode): no request, nothing queued, and it does not return (a source
    that returns stops the rulebook) even with a platform that does not answer."""
    queue: asyncio.Queue = asyncio.Queue()

    async def scenario():
        task = asyncio.create_task(ma.main(queue, {"platform_url": "http://127.0.0.1:9/none", "ues": [CAR],
                                                   "enabled": False, "startup_timeout": 0.1}))
        await asyncio.sleep(0.5)
        running = not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return running

    assert _run(scenario()) and queue.empty()
    with pytest.raises(ma.MecApproachError, match="enabled='sometimes': true or false"):
        ma.Settings({"platform_url": "http://127.0.0.1:1", "ues": [CAR], "enabled": "sometimes"})


def test_no_velocity_across_a_gap(ma):
    """Positions further apart in time than 2 x window (the UE unseen, the clock jumped) give no velocity: the
    first prediction after a jump comes only once the window has filled again, and it is the right one."""

    async def scenario():
        sbx = await InProcessSandbox().start()
        src = ma.ApproachSource(ma.Settings({**sbx.source_args, "ues": [CAR]}), asyncio.Queue())
        await src.start()
        try:
            first = await _drive(sbx, src, 0, 2)
            at_jump = await _drive(sbx, src, 130, 130)
            kept = len(src.tracks[CAR].samples)
            jumped = await _drive(sbx, src, 131, 150)
        finally:
            await src.api.close()
            await sbx.stop()
        return first, at_jump, kept, jumped

    first, at_jump, kept, jumped = _run(scenario())
    assert first == [] and at_jump == [] and kept == 1  # the positions before the jump were dropped
    assert [(e["from_zone"], e["to_zone"]) for _, e in jumped] == [("zone01", "zone02")]
    assert 19 <= jumped[0][1]["speed"] <= 21


async def _drive_waking(sbx, src, start: float, end: float, approach) -> list[tuple[float, float | None, dict]]:
    """As ApproachSource.run: poll every poll_interval, or sooner when a mark falls due (``wake``); per poll
    (sim time, the wake it asked for, the approach file after it)."""
    out, t = [], start
    while t <= end + 1e-9:
        await sbx.advance_to(t)
        src.wake = None
        await src.poll_once()
        out.append((t, src.wake, json.loads(approach.read_text()) if approach.exists() else {}))
        t += src.s.poll_interval if src.wake is None else min(src.s.poll_interval, max(0.02, src.wake))
    return out


async def _marking_source(ma, sbx, state_dir):
    """The car's source with relocate_lead 2 s, its approach file in state_dir, started."""
    src = ma.ApproachSource(ma.Settings({**sbx.source_args, "ues": [CAR], "state_dir": str(state_dir),
                                         "relocate_lead": 2.0}), asyncio.Queue())
    await src.start()
    return src


def test_the_handover_is_marked_imminent_relocate_lead_seconds_before_it(ma, tmp_path):
    """relocate_lead: the standing prediction's eta is recomputed at every poll, the source polls again at the
    instant the mark falls due, and <ue>.approach.json gets relocate_seq = that prediction's seq about
    relocate_lead seconds before the true handover (follow.yml's gate opens on it); not before, and once."""
    approach = tmp_path / f"{CAR}.approach.json"

    async def scenario():
        sbx = await InProcessSandbox().start()
        src = await _marking_source(ma, sbx, tmp_path)
        try:
            polls = await _drive_waking(sbx, src, 130, 152, approach)
        finally:
            await src.api.close()
            await sbx.stop()
        return polls, src.stats

    polls, stats = _run(scenario())
    marked = [(t, state) for t, _, state in polls if "relocate_seq" in state]
    first_t, first = marked[0]
    unmarked = [state for t, _, state in polls if t < first_t]
    assert unmarked and all("relocate_seq" not in s for s in unmarked)
    assert first["relocate_seq"] == first["seq"] and first["to_zone"] == "zone02" and first["from_zone"] == "zone01"
    assert first["relocate_to"] == "zone02"
    # measured (follow_predict.py): the marks come 1.2-2.3 s before their handover with a 2 s lead
    assert 1.0 <= ZONE02_AT - first_t <= 2.5, ZONE02_AT - first_t
    assert 0 < first["relocate_eta"] <= 2.0 and first["relocate_marked_at"] > 0
    # the poll before the mark asked to be woken early (it fell between two regular polls)
    before = [w for t, w, _ in polls if t < first_t]
    assert before[-1] is not None and before[-1] < 1.0
    assert stats["marked"] == 1 and stats["unmarked"] == 0
    # after the handover the mark stays (the UE went where it said) and no new mark is written for zone02
    assert all(s.get("relocate_seq") in (None, first["seq"]) for t, _, s in polls if t > ZONE02_AT)


def test_a_mark_is_taken_back_when_the_ue_stops_before_the_boundary(ma, tmp_path):
    """The UE stops just short of the zone's edge after the mark: no handover ahead any more, so the mark is
    removed (a staged hop waiting at its gate must not relocate to a zone the UE does not enter)."""
    approach = tmp_path / f"{CAR}.approach.json"

    async def scenario():
        sbx = await InProcessSandbox().start()
        src = await _marking_source(ma, sbx, tmp_path)
        try:
            await _drive_waking(sbx, src, 140, 149.9, approach)
            marked = json.loads(approach.read_text())
            user = await src.api.user(CAR)  # where the car is now; it stays there from here on
            track = src.tracks[CAR]
            for k in range(1, 6):
                still = json.loads(json.dumps(user))
                still["timestamp"]["seconds"] += k
                src.update(CAR, track, still)
            after = json.loads(approach.read_text())
        finally:
            await src.api.close()
            await sbx.stop()
        return marked, after, src.stats

    marked, after, stats = _run(scenario())
    assert marked.get("relocate_seq") == marked["seq"]
    assert "relocate_seq" not in after and "relocate_to" not in after
    assert after["seq"] == marked["seq"] and after["to_zone"] == "zone02"
    assert stats["unmarked"] == 1


def test_relocate_lead_needs_a_state_dir(ma):
    with pytest.raises(ma.MecApproachError, match=r"relocate_lead=2 needs state_dir"):
        ma.Settings({"platform_url": "http://127.0.0.1:1", "ues": [CAR], "relocate_lead": 2})
    with pytest.raises(ma.MecApproachError, match=r"relocate_lead=-1"):
        ma.Settings({"platform_url": "http://127.0.0.1:1", "ues": [CAR], "relocate_lead": -1, "state_dir": "/tmp"})
