"""The mec_mobility event source against the local MEC sandbox run in-process on loopback (manual clock).

Car 10.100.0.1 of the default scenario (Monaco, per-zone placement) is in zone01 at t=0 and enters zone02 at
t=151 s, zone03 at 179 s and zone04 at 247 s; car 10.100.0.2 starts in zone02 and goes to zone01 at 101.5 s,
zone03 at 129 s, zone01 at 180 s, zone02 at 183 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time

import aiohttp
import pytest
from aiohttp import web
from mec_sandbox.__main__ import make_sandbox, parse_args
from mec_sandbox.auth import Authority
from mec_sandbox.credentials import generate
from mec_sandbox.server import build_app

BASE = "/sbx"
CAR = "10.100.0.1"
CAR2 = "10.100.0.2"


class InProcessSandbox:
    """The sandbox's aiohttp app in this event loop, on 127.0.0.1 (a fixed port, so that it can restart), with
    client credentials made once per test process (a restarted sandbox keeps them, as the role's does):
    ``source_args`` are the event sources' arguments for it (platform_url, credentials_file, client mec-eda)."""

    creds_dir = ""

    def __init__(self, port: int = 0, extra: tuple = ()):
        self.port = port
        self.extra = tuple(extra)  # more arguments of python -m mec_sandbox, e.g. ("--callback-ca", PEM)
        self.runner = None
        self.sb = None
        if not InProcessSandbox.creds_dir:
            InProcessSandbox.creds_dir = os.path.join(tempfile.mkdtemp(prefix="eda-sbx-"), "creds")
            generate(InProcessSandbox.creds_dir)
        self.credentials_file = os.path.join(self.creds_dir, "credentials.json")
        self._control_token = ""

    @property
    def source_args(self) -> dict:
        return {"platform_url": self.url, "credentials_file": self.credentials_file, "client": "mec-eda"}

    async def _headers(self, session) -> dict:
        """A bearer token of the client mec-control (every scope) for the test's own requests."""
        if not self._control_token:
            with open(self.credentials_file) as fh:
                c = json.load(fh)["clients"]["mec-control"]
            form = {"grant_type": "client_credentials", "client_id": c["client_id"],
                    "client_secret": c["client_secret"]}
            async with session.post(f"{self.url}/oauth/token", data=form) as r:
                assert r.status == 200, await r.text()
                self._control_token = (await r.json())["access_token"]
        return {"Authorization": f"Bearer {self._control_token}"}

    async def start(self):
        self.sb = make_sandbox(parse_args(["--speed", "0", "--base-path", BASE, "--start-time", "1700000000",
                                           "--notify-timeout", "1", "--notify-retries", "1", *self.extra]))
        authority = Authority.load(os.path.join(self.creds_dir, "sandbox-auth.json"))
        self.runner = web.AppRunner(build_app(self.sb, authority), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        return self

    async def stop(self):
        await self.runner.cleanup()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{BASE}"

    async def advance_to(self, sim_time: float):
        async with aiohttp.ClientSession() as s:
            async with s.post(f"{self.url}/sandbox-ctrl/v1/clock", json={"simTime": sim_time},
                              headers=await self._headers(s)) as r:
                assert r.status == 200, await r.text()

    async def subscriptions(self, kind="zonalTraffic"):
        async with aiohttp.ClientSession() as s:
            async with s.get(f"{self.url}/location/v2/subscriptions/{kind}", headers=await self._headers(s)) as r:
                body = await r.json()
        return body["notificationSubscriptionList"].get(f"{kind}Subscription", [])


async def _events(queue: asyncio.Queue, n: int, timeout: float = 10.0) -> list[dict]:
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            out.append(await asyncio.wait_for(queue.get(), left))
        except asyncio.TimeoutError:
            break
    return out


async def _quiet(queue: asyncio.Queue, seconds: float = 0.5) -> list[dict]:
    await asyncio.sleep(seconds)
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def _run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_zone_changes_become_events_with_from_and_to_zone(mec_mobility, tmp_path):
    async def scenario():
        sbx = await InProcessSandbox().start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 0.2, "state_dir": str(tmp_path)}), queue)
        task = asyncio.create_task(src.run())
        try:
            while src.port == 0 or len(src.subs) < 4 or any(s.url is None for s in src.subs.values()):
                await asyncio.sleep(0.05)
            subs = await sbx.subscriptions()
            await sbx.advance_to(152)
            first = await _events(queue, 1)
            await sbx.advance_to(250)
            more = await _events(queue, 2)
            state = json.loads((tmp_path / f"{CAR}.json").read_text())
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        left = await sbx.subscriptions()
        await sbx.stop()
        return subs, first, more, state, left, src.stats

    subs, first, more, state, left, stats = _run(scenario())
    # one zonalTraffic subscription per zone, each with its own random token in the callback URL
    assert sorted(s["zoneId"] for s in subs) == ["zone01", "zone02", "zone03", "zone04"]
    urls = [s["callbackReference"]["notifyURL"] for s in subs]
    tokens = {u.rsplit("/", 1)[1] for u in urls}
    assert len(tokens) == 4 and all(len(t) >= 40 for t in tokens)
    assert [(e["from_zone"], e["to_zone"]) for e in first + more] == [
        ("zone01", "zone02"), ("zone02", "zone03"), ("zone03", "zone04")]
    e = first[0]
    assert e["ue"] == CAR and e["kind"] == "zone_change" and e["seq"] == 1
    # the sandbox's timestamp: start time 1700000000 + the simulated instant of the change (151 s)
    assert 1700000150.9 <= e["at_epoch"] <= 1700000151.1 and e["at"].startswith("2023-11-14T22:")
    assert e["access_point"] and e["received_at"] > 0
    assert state == {"ue": CAR, "zone": "zone04", "seq": 3, "at": more[-1]["at"],
                     "received_at": more[-1]["received_at"]}
    assert left == []  # the source deletes its subscriptions when it stops
    # zonalTraffic reports every UE of a zone: the other UEs' notifications are received and ignored
    assert stats["emitted"] == 3 and stats["ignored"] > 0


def test_user_tracking_subscription_and_initial_event(mec_mobility):
    async def scenario():
        sbx = await InProcessSandbox().start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR2], "subscription": "user_tracking", "emit_initial": True}), queue)
        await src.start()
        try:
            subs = await sbx.subscriptions("userTracking")
            initial = await _events(queue, 1)
            await sbx.advance_to(184)
            moves = await _events(queue, 4)
        finally:
            await src.stop()
            await sbx.stop()
        return subs, initial, moves

    subs, initial, moves = _run(scenario())
    assert [s["address"] for s in subs] == [CAR2]
    assert [(e["kind"], e["from_zone"], e["to_zone"]) for e in initial] == [("initial", None, "zone02")]
    assert [(e["from_zone"], e["to_zone"]) for e in moves] == [
        ("zone02", "zone01"), ("zone01", "zone03"), ("zone03", "zone01"), ("zone01", "zone02")]


def test_duplicates_and_bad_callbacks_are_dropped(mec_mobility):
    """The same notification delivered twice gives one event; requests without the subscription's token, with
    a wrong token, with a bad body, or about another UE give no event."""

    async def scenario():
        sbx = await InProcessSandbox().start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 60}), queue)
        await src.start()
        token = next(iter(src.subs))
        base = f"http://127.0.0.1:{src.port}"
        note = {"zonalPresenceNotification": {
            "zoneId": "zone02", "address": CAR, "userEventType": "Entering", "currentAccessPointId": "5g-small-cell-9",
            "previousAccessPointId": "4g-macro-cell-2", "timestamp": {"seconds": 1700000151, "nanoSeconds": 0}}}
        statuses = {}
        try:
            async with aiohttp.ClientSession() as s:
                for name, url, kw in [
                    ("no token", f"{base}/mec-mobility/", {"json": note}),
                    ("wrong token", f"{base}/mec-mobility/{'x' * 43}", {"json": note}),
                    ("other path", f"{base}/", {"json": note}),
                    ("get", f"{base}/mec-mobility/{token}", {}),
                    ("not json", f"{base}/mec-mobility/{token}", {"data": b"{nope"}),
                    ("too big", f"{base}/mec-mobility/{token}", {"data": b"[" + b" " * 70000 + b"]"}),
                    ("other ue", f"{base}/mec-mobility/{token}",
                     {"json": {"zonalPresenceNotification": dict(note["zonalPresenceNotification"],
                                                                 address="10.1.0.1")}}),
                    ("first", f"{base}/mec-mobility/{token}", {"json": note}),
                    ("again", f"{base}/mec-mobility/{token}", {"json": note}),
                ]:
                    method = "GET" if name == "get" else "POST"
                    async with s.request(method, url, **kw) as r:
                        statuses[name] = r.status
            events = await _quiet(queue, 0.3)
        finally:
            await src.stop()
            await sbx.stop()
        return statuses, events, src.stats

    statuses, events, stats = _run(scenario())
    assert statuses == {"no token": 404, "wrong token": 404, "other path": 404, "get": 405, "not json": 400,
                        "too big": 413, "other ue": 204, "first": 204, "again": 204}
    assert [(e["from_zone"], e["to_zone"]) for e in events] == [("zone01", "zone02")]
    assert stats["duplicates"] == 1 and stats["refused"] == 3 and stats["ignored"] == 1


def test_allowed_networks_refuse_other_peers(mec_mobility):
    async def scenario():
        sbx = await InProcessSandbox().start()
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "allowed_networks": ["192.0.2.0/24"]}), queue)
        await src.start()
        token = next(iter(src.subs))
        try:
            async with aiohttp.ClientSession() as s:
                async with s.post(f"http://127.0.0.1:{src.port}/mec-mobility/{token}", json={}) as r:
                    status = r.status
        finally:
            await src.stop()
            await sbx.stop()
        return status

    assert _run(scenario()) == 404


def test_platform_restart_resubscribes_and_catches_up(mec_mobility):
    """The sandbox restarts (its subscriptions are gone) while the car changes zone: the source subscribes
    again and puts the change it missed on the queue, then follows the next ones as before."""

    async def scenario():
        sbx = await InProcessSandbox().start()
        port = sbx.port
        queue: asyncio.Queue = asyncio.Queue()
        src = mec_mobility.MobilitySource(mec_mobility.Settings(
            {**sbx.source_args, "ues": [CAR], "check_interval": 0.2, "request_timeout": 1}), queue)
        task = asyncio.create_task(src.run())
        try:
            while len(src.subs) < 4 or any(s.url is None for s in src.subs.values()):
                await asyncio.sleep(0.05)
            old_tokens = set(src.subs)
            await sbx.stop()
            await asyncio.sleep(0.6)  # down for a few checks
            down = not src.platform_up
            sbx = await InProcessSandbox(port).start()  # a fresh platform: no subscriptions, t=0
            await sbx.advance_to(160)  # the car entered zone02 at 151 s, nobody subscribed
            caught = await _events(queue, 1, timeout=5)
            while src.stats["resubscribed"] < 4:
                await asyncio.sleep(0.05)
            new_tokens = set(src.subs)
            subs = await sbx.subscriptions()
            await sbx.advance_to(180)
            after = await _events(queue, 1, timeout=5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sbx.stop()
        return down, caught, after, old_tokens, new_tokens, subs

    down, caught, after, old_tokens, new_tokens, subs = _run(scenario())
    assert down
    assert [(e["from_zone"], e["to_zone"], e.get("catch_up")) for e in caught] == [("zone01", "zone02", True)]
    assert [(e["from_zone"], e["to_zone"], e.get("catch_up")) for e in after] == [("zone02", "zone03", None)]
    assert len(subs) == 4 and not old_tokens & new_tokens  # fresh tokens for the new subscriptions
    assert after[0]["seq"] == caught[0]["seq"] + 1


def test_unknown_ue_stops_with_a_clear_message(mec_mobility):
    async def scenario():
        sbx = await InProcessSandbox().start()
        try:
            with pytest.raises(mec_mobility.MecMobilityError) as err:
                await mec_mobility.main(asyncio.Queue(), {**sbx.source_args, "ues": ["10.9.9.9"]})
            subs = await sbx.subscriptions()
        finally:
            await sbx.stop()
        return str(err.value), subs

    msg, subs = _run(scenario())
    assert "UE 10.9.9.9 is unknown to the MEC platform" in msg and "check ues" in msg
    assert subs == []  # nothing subscribed


def test_unreachable_platform_stops_with_a_clear_message(mec_mobility):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/sbx"

    async def scenario():
        with pytest.raises(mec_mobility.MecMobilityError) as err:
            await mec_mobility.main(asyncio.Queue(), {"platform_url": url, "ues": [CAR], "startup_timeout": 0.5})
        return str(err.value)

    started = time.monotonic()
    msg = _run(scenario())
    assert time.monotonic() - started < 5
    assert f"the MEC platform at {url}/location/v2 is unreachable" in msg
    assert "after 0.5 s: check platform_url and that the platform runs" in msg


def test_bad_arguments_are_all_reported(mec_mobility):
    with pytest.raises(mec_mobility.MecMobilityError) as err:
        mec_mobility.Settings({"platform_url": "ftp://x", "subscription": "psychic", "check_interval": "soon",
                               "listen_port": 70000, "allowed_networks": ["nope"], "emit_initial": "maybe",
                               "colour": "red"})
    msg = str(err.value)
    for part in ["unknown argument(s) ['colour']", "platform_url=ftp://x", "ues: give the address",
                 "subscription=psychic", "check_interval='soon'", "listen_port=70000",
                 "allowed_networks: 'nope'", "emit_initial='maybe'"]:
        assert part in msg, part
