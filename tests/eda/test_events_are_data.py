"""Events are data (issue #18): what the MEC platform or a forged callback sends never reaches the queue, or a state
file, unless it is an identifier (zones also one of the platform's zones).

ansible-rulebook hands each event to playbooks/follow.yml as extra vars, and Ansible renders extra vars as
templates: a zoneId of ``{{ lookup('ansible.builtin.pipe', ...) }}`` posted to the callback URL ran the command as
root on the controller. The event sources are the first of three layers (then the rulebook's conditions, then
follow.yml's follow_hop action plugin, which never renders the event: tests/eda/test_follow_events_are_data.py).

Two platforms: the local sandbox in-process (forged callbacks at the real subscription's callback URL), and a
small MEC 013 look-alike on loopback whose answers hold templates (an API answer is outside data too).
"""

from __future__ import annotations

import asyncio
import json
import os

import aiohttp
import pytest
from aiohttp import web
from test_mec_mobility import CAR, InProcessSandbox, _quiet

TEMPLATE = "{{ lookup('ansible.builtin.pipe', 'id -un > /tmp/mec-pwned; echo zone02') }}"


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def _note(**over):
    note = {"zoneId": "zone02", "address": CAR, "userEventType": "Entering", "currentAccessPointId": "5g-small-cell-9",
            "previousAccessPointId": "4g-macro-cell-2", "timestamp": {"seconds": 1700000151, "nanoSeconds": 0}}
    note.update(over)
    return {"zonalPresenceNotification": note}


def test_forged_callbacks_with_a_template_or_an_unknown_zone_are_dropped(mec_mobility, tmp_path, caplog):
    """At the subscription's own callback URL (its token known, as it is to anyone who reads the sandbox): a
    template as zoneId, as an access point id, as the previous access point id, a zone id with a trailing newline,
    a well-formed zone the platform never listed: no event, the state file keeps the UE's zone, a log line each.
    Then the true zone change still goes through."""
    state = tmp_path / "state"

    async def scenario():
        sbx = await InProcessSandbox().start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 60, "state_dir": str(state)}), queue)
        await src.start()
        url = f"http://127.0.0.1:{src.port}/mec-mobility/{next(iter(src.subs))}"
        forged = {"template zone": _note(zoneId=TEMPLATE),
                  "template access point": _note(currentAccessPointId=TEMPLATE),
                  "template previous access point": _note(previousAccessPointId=TEMPLATE),
                  "newline zone": _note(zoneId="zone02\n"),
                  "unlisted zone": _note(zoneId="zone99")}
        statuses = {}
        try:
            async with aiohttp.ClientSession() as s:
                for name, body in forged.items():
                    async with s.post(url, json=body) as r:
                        statuses[name] = r.status
                forged_events = await _quiet(queue, 0.3)
                forged_state = json.loads((state / f"{CAR}.json").read_text())
                async with s.post(url, json=_note()) as r:
                    statuses["true"] = r.status
            true_events = await _quiet(queue, 0.3)
        finally:
            await src.stop()
            await sbx.stop()
        return statuses, forged_events, forged_state, true_events, src.stats

    with caplog.at_level("WARNING", logger="mec.migration.mec_mobility"):
        statuses, forged_events, forged_state, true_events, stats = _run(scenario())
    assert set(statuses.values()) == {204}
    assert forged_events == [] and stats["dropped"] == 5
    assert forged_state["zone"] == "zone01"  # what the platform said at start, nothing forged
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(dropped) == 5
    assert "is no zone id" in dropped[0] and "is no access point id" in dropped[1]
    assert "previousAccessPointId" in dropped[2] and "is no zone id" in dropped[3]
    assert "not one of the platform's zones (zone01, zone02, zone03, zone04)" in dropped[4]
    assert [(e["from_zone"], e["to_zone"], e["access_point"]) for e in true_events] == [
        ("zone01", "zone02", "5g-small-cell-9")]
    assert "{{" not in (state / f"{CAR}.json").read_text()


def test_deeply_nested_json_gets_400_not_500(mec_mobility):
    async def scenario():
        sbx = await InProcessSandbox().start()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 60}), asyncio.Queue())
        await src.start()
        url = f"http://127.0.0.1:{src.port}/mec-mobility/{next(iter(src.subs))}"
        try:
            async with aiohttp.ClientSession() as s:
                async with s.post(url, data=b"[" * 30000 + b"]" * 30000) as r:
                    nested = r.status, await r.text()
                async with s.post(url, data=b'{"a":' * 10000 + b"1" + b"}" * 10000) as r:
                    nested_obj = r.status
        finally:
            await src.stop()
            await sbx.stop()
        return nested, nested_obj, src.stats

    (status, text), status_obj, stats = _run(scenario())
    assert status == 400 and "nested too deeply" in text
    assert status_obj == 400 and stats["bad"] == 2


def test_ue_ids_and_zones_that_are_no_identifiers_are_refused_in_the_arguments(mec_mobility, ma):
    for module, error in ((mec_mobility, mec_mobility.MecMobilityError), (ma, ma.MecApproachError)):
        with pytest.raises(error) as err:
            module.Settings({"platform_url": "http://127.0.0.1:1/x", "ues": [TEMPLATE]})
        assert "is no UE address" in str(err.value)
    with pytest.raises(mec_mobility.MecMobilityError) as err:
        mec_mobility.Settings({"platform_url": "http://127.0.0.1:1/x", "ues": [CAR], "zones": ["zone01", "a b"]})
    assert "zones: 'a b' is no zone id" in str(err.value)


def test_a_state_dir_someone_else_could_own_is_refused(mec_mobility, ma, tmp_path):
    """state_dir decides where the app goes (follow.yml reads the UE's latest zone there): a folder with group or
    other bits, or a symlink, is refused at start with fsutil.private_dir's message; a missing one is made 0700."""
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "private")
    (tmp_path / "private").mkdir(mode=0o700)
    for module, error in ((mec_mobility, mec_mobility.MecMobilityError), (ma, ma.MecApproachError)):
        for bad, words in ((shared, "must be private"), (link, "is a symlink")):
            with pytest.raises(error) as err:
                module.Settings({"platform_url": "http://127.0.0.1:1/x", "ues": [CAR], "state_dir": str(bad)})
            assert f"state_dir={bad}" in str(err.value) and words in str(err.value)
    fresh = tmp_path / "fresh" / "follow"
    mec_mobility.Settings({"platform_url": "http://127.0.0.1:1/x", "ues": [CAR], "state_dir": str(fresh)})
    assert fresh.is_dir() and (fresh.stat().st_mode & 0o777) == 0o700


class TemplatePlatform:
    """A MEC 013 Location API on loopback whose answers hold templates: a zone, an access point, a UE's zone."""

    def __init__(self, user_zone: str, user_poa: str = "ap-1"):
        self.user = {"address": CAR, "zoneId": user_zone, "accessPointId": user_poa,
                     "locationInfo": {"latitude": [43.7], "longitude": [7.42]},
                     "timestamp": {"seconds": 1700000000, "nanoSeconds": 0}}
        self.runner = None
        self.url = ""

    async def start(self):
        app = web.Application()
        app.router.add_get("/p/location/v2/queries/zones", self.zones)
        app.router.add_get("/p/location/v2/queries/zones/{zone}/accessPoints", self.access_points)
        app.router.add_get("/p/location/v2/queries/users", self.users)
        app.router.add_route("*", "/p/location/v2/subscriptions/{tail:.*}", self.subscribe)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/p"
        return self

    async def stop(self):
        await self.runner.cleanup()

    async def zones(self, request):
        return web.json_response({"zoneList": {"zone": [{"zoneId": "zone01"}, {"zoneId": "zone02"},
                                                        {"zoneId": TEMPLATE}]}})

    async def access_points(self, request):
        zone = request.match_info["zone"]
        aps = [{"accessPointId": name, "connectionType": "Macro", "interestRealm": realm,
                "locationInfo": {"latitude": [lat], "longitude": [7.42]}}
               for name, realm, lat in (("ap-1", "zone01", 43.7), ("ap-2", "zone02", 43.71),
                                        (TEMPLATE, "zone02", 43.72), ("ap-3", TEMPLATE, 43.73))
               if realm == zone or zone == "zone02" and realm == TEMPLATE]
        return web.json_response({"accessPointList": {"zoneId": zone, "accessPoint": aps}})

    async def users(self, request):
        return web.json_response({"userList": {"user": [self.user]}})

    async def subscribe(self, request):
        if request.method == "POST":
            return web.json_response({"zonalTrafficSubscription": {}}, status=201,
                                     headers={"Location": str(request.url) + "/1"})
        return web.Response(status=204 if request.method == "DELETE" else 200, text="{}")


def test_platform_answers_with_templates_are_dropped_by_mec_mobility(mec_mobility, tmp_path, caplog):
    """The platform lists a template as a zone (left out of the known zones, not subscribed) and answers the UE's
    zone with a template: the UE's zone stays unknown (null in the state file), nothing goes on the queue."""

    async def scenario():
        platform = await TemplatePlatform(TEMPLATE).start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {"platform_url": platform.url, "ues": [CAR], "state_dir": str(tmp_path), "emit_initial": True}), queue)
        try:
            await src.start()
            keys = sorted(s.key for s in src.subs.values())
            events = await _quiet(queue, 0.2)
        finally:
            await src.stop()
            await platform.stop()
        return src.known_zones, keys, events, src.zone

    with caplog.at_level("WARNING"):
        known, keys, events, zones = _run(scenario())
    assert known == {"zone01", "zone02"} and keys == ["zone01", "zone02"]
    assert events == [] and zones[CAR] is None
    assert json.loads((tmp_path / f"{CAR}.json").read_text())["zone"] is None
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "which is no zone id" in text and f"answer for UE {CAR} dropped" in text


def test_platform_answers_with_templates_are_dropped_by_mec_approach(ma, caplog):
    """mec_approach: a template as zone and as access point id (and as an access point's zone) is left out of the
    map; a UE answer whose zone is a template is dropped (no track, no prediction)."""

    async def scenario():
        platform = await TemplatePlatform("zone01").start()
        src = ma.ApproachSource(ma.Settings({"platform_url": platform.url, "ues": [CAR]}), asyncio.Queue())
        try:
            await src.start()
            names = sorted((a.name, a.zone) for a in src.map.aps)
            await src.poll_once()
            taken = src.tracks[CAR].zone
            platform.user["zoneId"] = TEMPLATE
            src.tracks[CAR].zone = None
            await src.poll_once()
            after = src.tracks[CAR].zone
        finally:
            await src.api.close()
            await platform.stop()
        return names, taken, after, src.stats

    with caplog.at_level("WARNING"):
        names, taken, after, stats = _run(scenario())
    assert names == [("ap-1", "zone01"), ("ap-2", "zone02")]
    assert taken == "zone01" and after is None and stats["dropped"] == 2 + 1
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "left out: no access point id" in text and "its zone is none of the platform's zones" in text
    assert "is none of the platform's zones" in text
