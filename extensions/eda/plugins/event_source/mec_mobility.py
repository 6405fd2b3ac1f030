"""mec_mobility: an Event-Driven Ansible event source of MEC mobility events (ETSI GS MEC 013 Location API).

It subscribes to the MEC platform's zonal-traffic notifications (``zonalTraffic``, one subscription per zone;
or ``userTracking``, one per UE) for the UEs that an app serves, receives the callbacks on its own HTTP
listener, drops duplicates, subscribes again when the platform lost its subscriptions (a restart), and puts
one event per zone change on the queue::

    {"ue": "10.100.0.1", "from_zone": "zone01", "to_zone": "zone02", "at": "2026-11-27T15:20:01.250000Z",
     "at_epoch": 1795792801.25, "access_point": "5g-small-cell-9", "previous_access_point": "4g-macro-cell-2",
     "kind": "zone_change", "api": "mec013", "seq": 3, "received_at": 1795792801.262,
     "platform": "http://127.0.0.1:8080/sandbox/location/v2"}

Arguments (ansible-rulebook ``sources:`` entry ``mec.migration.mec_mobility``):

``platform_url`` (required unless ``location_url`` is given)
    Root of the MEC platform's APIs, e.g. ``http://127.0.0.1:8080/sandbox`` (the local sandbox) or
    ``https://try-mec.etsi.org/<sandbox>/<mep>``; the Location API is ``<platform_url>/location/v2``.
``location_url``
    The Location API's root, when it is not ``<platform_url>/location/v2``.
``ues`` (required; or ``ue``)
    Addresses of the UEs to follow (``address`` in MEC 013), e.g. ``["10.100.0.1"]``. A UE the platform does
    not know stops the source at start with a message naming it.
``subscription``
    ``zonal_traffic`` (default: ``zonalTraffic`` subscriptions on every zone, or on ``zones``) or
    ``user_tracking`` (one ``userTracking`` subscription per UE).
``zones``
    With ``zonal_traffic``: the zones to subscribe to (default: every zone of ``queries/zones``).
``listen_host`` / ``listen_port``
    Address and port of the callback receiver (default ``127.0.0.1``, port 0: any free port).
``callback_host`` / ``callback_port``
    Host and port the platform must call back to, when not the listening ones (NAT, a container network).
``credentials_file`` / ``client`` (or ``client_id`` / ``client_secret``; ``token_url``)
    OAuth 2.0 client credentials for a platform whose API needs a bearer token (the local sandbox does, ETSI GS
    MEC 009): the sandbox role's ``credentials.json`` (``~/.cache/mec-migration/sandbox/credentials.json`` on the
    controller) and the client in it (default ``mec-eda``: read and subscribe); the token comes from
    ``token_url`` (default ``<platform_url>/oauth/token``) and is renewed before it expires.
``tls_cert`` / ``tls_key``
    PEM certificate and key: the callback listener serves HTTPS and the subscriptions name ``https://`` callback
    URLs (the platform verifies the certificate; for the local sandbox, its CA is ``mec_sandbox_callback_ca_file``).
``allowed_networks``
    CIDRs the callbacks may come from (default: any); every callback must also carry its subscription's
    token (a random path segment made per subscription): requests without it get 404.
``check_interval``
    Seconds between checks that the subscriptions still exist (default 5); a subscription that is gone
    (404: the platform restarted) is made again, and the UE's zone is read again: a zone change missed
    meanwhile is put on the queue (``"catch_up": true``).
``request_timeout`` (default 5) / ``startup_timeout`` (default 30)
    Seconds per request to the platform / for the platform to answer at start; an unreachable platform then
    stops the source with a message naming the URL.
``emit_initial``
    Put one event per UE at start with its current zone (``from_zone`` null, ``kind: initial``); default false.
``access_point_changes``
    Also put ``kind: access_point_change`` events (a new access point in the same zone); default false.
``state_dir``
    A directory on the controller where ``<ue>.json`` always holds the UE's latest zone and event ``seq``
    (written atomically): ``playbooks/follow.yml`` reads it to coalesce the events queued while a
    migration runs (the next hop goes to the latest zone). It must be private (e.g. ``/run/mec-migration/follow``):
    made 0700 if missing, and refused, at start and on every write, when it is not a real directory of the user
    running the source with no group/other bits, or a parent belongs to someone else (what it holds decides
    where the app goes).

Events are data: the zone, access point and UE ids of every notification and API answer must be identifiers
(``[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}``; UE ids must also be among ``ues``) and a zone must be one of the
platform's zones (``queries/zones``, read at start); anything else is dropped with a log line (``dropped`` in the
stats). A body that is no JSON object, or nested too deeply, gets 400.

Only the Python standard library and aiohttp (a dependency of ansible-rulebook) are used.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import json
import logging
import os
import secrets
import sys
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import urljoin

from aiohttp import web


def load_shared():
    """_mec013.py beside this file (ansible-rulebook runs a source with runpy.run_path: no package to import from)."""
    name = "mec_migration_eda_mec013"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_mec013.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


mec013 = load_shared()
LOG = logging.getLogger("mec.migration.mec_mobility")
CALLBACK_PREFIX = "/mec-mobility/"
MAX_BODY = 64 * 1024
DEDUPE_KEEP = 4096
EVENTS = ("Entering", "Leaving", "Transferring")
write_state = mec013.write_state


class MecMobilityError(mec013.MecSourceError):
    """A problem the user must fix (bad arguments, unknown UE, unreachable platform); the message says what."""


# --------------------------------------------------------------------------- settings
class Settings:
    """The source's arguments, checked once: every problem in one MecMobilityError."""

    def __init__(self, args: dict[str, Any]):
        problems: list[str] = []
        known = {"platform_url", "location_url", "ues", "ue", "subscription", "zones", "listen_host",
                 "listen_port", "callback_host", "callback_port", "allowed_networks", "check_interval",
                 "request_timeout", "startup_timeout", "emit_initial", "access_point_changes", "state_dir",
                 *mec013.AUTH_ARGS, *mec013.TLS_ARGS}
        mec013.unknown_arguments(args, known, problems)
        self.credentials = mec013.credentials(args, problems)
        self.tls = mec013.tls_context(args, problems)
        self.location_url = mec013.location_url(args, problems)
        self.ues = mec013.ues(args, problems)
        self.subscription = str(args.get("subscription") or "zonal_traffic")
        if self.subscription not in ("zonal_traffic", "user_tracking"):
            problems.append(f"subscription={self.subscription}: zonal_traffic or user_tracking.")
        self.zones = [str(z) for z in mec013.as_list(args.get("zones"))]
        for zone in self.zones:
            if not mec013.valid_id(zone):
                problems.append(f"zones: {mec013.shown(zone)} is no zone id (letters, digits and _.:- only).")
        self.listen_host = str(args.get("listen_host") or "127.0.0.1")
        self.callback_host = str(args.get("callback_host") or self.listen_host)
        self.listen_port = mec013.number(args, "listen_port", 0, problems, integer=True, low=0, high=65535)
        self.callback_port = mec013.number(args, "callback_port", 0, problems, integer=True, low=0, high=65535)
        self.check_interval = mec013.number(args, "check_interval", 5.0, problems, low=0.05)
        self.request_timeout = mec013.number(args, "request_timeout", 5.0, problems, low=0.1)
        self.startup_timeout = mec013.number(args, "startup_timeout", 30.0, problems, low=0.0)
        self.emit_initial = mec013.boolean(args, "emit_initial", problems)
        self.access_point_changes = mec013.boolean(args, "access_point_changes", problems)
        self.state_dir = args.get("state_dir") or None
        if self.state_dir:
            problem = mec013.state_dir_problem(self.state_dir)
            if problem:
                problems.append(problem)
        self.allowed_networks = []
        for net in mec013.as_list(args.get("allowed_networks")):
            try:
                self.allowed_networks.append(ipaddress.ip_network(net, strict=False))
            except ValueError:
                problems.append(f"allowed_networks: {net!r} is not a network in CIDR notation.")
        mec013.settings_error("mec_mobility", MecMobilityError, problems)


class _Sub:
    """One subscription made on the platform: its token (callback path), its kind and key, its URL."""

    def __init__(self, kind: str, key: str, token: str):
        self.kind, self.key, self.token = kind, key, token
        self.url: str | None = None


# --------------------------------------------------------------------------- the source
class MobilitySource:
    """Subscriptions, callback receiver, dedupe and resubscription; ``run()`` until cancelled."""

    def __init__(self, settings: Settings, queue: asyncio.Queue):
        self.s = settings
        self.queue = queue
        self.zone: dict[str, str | None] = {}  # UE -> its zone as last known
        self.poa: dict[str, str | None] = {}
        self.subs: dict[str, _Sub] = {}  # token -> subscription
        self.seen: OrderedDict = OrderedDict()  # dedupe keys of notifications handled
        self.seq = 0
        self.stats = {"received": 0, "emitted": 0, "duplicates": 0, "refused": 0, "ignored": 0,
                      "resubscribed": 0, "bad": 0, "dropped": 0}
        self.known_zones: set[str] = set()  # the platform's zones (queries/zones): a callback's zone must be one
        self.api = mec013.LocationClient(settings.location_url, "mec_mobility", MecMobilityError,
                                         settings.request_timeout, settings.startup_timeout, settings.credentials)
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.platform_up = True
        self._emit_lock = asyncio.Lock()

    # ---- platform requests (the shared Location API client)
    def _url(self, path: str) -> str:
        return self.api.url(path)

    async def _request(self, method: str, url: str, **kw) -> tuple[int, str, dict]:
        return await self.api.request(method, url, **kw)

    async def read_zone(self, ue: str) -> tuple[str | None, str | None]:
        """The UE's zone and access point as the platform answers; an id that is no identifier, or a zone the
        platform did not list, is dropped (None) with a log line."""
        user = await self.api.user(ue)
        zone, poa = user.get("zoneId") or None, user.get("accessPointId") or None
        problem = self.id_problem(zone, poa, None)
        if problem:
            self.stats["dropped"] += 1
            LOG.warning("mec_mobility: the platform's answer for UE %s dropped: %s", ue, problem)
            return None, None
        return zone, poa

    def id_problem(self, zone, poa, previous_poa) -> str | None:
        """Why a zone / access point from the platform is not taken (None: taken). Every id that goes on the
        queue or into a state file is checked here: an identifier (mec013.ID_PATTERN), and a zone the platform
        listed at start (queries/zones)."""
        if zone is not None and not mec013.valid_id(zone):
            return f"zoneId {mec013.shown(zone)} is no zone id ({mec013.ID_PATTERN})"
        if zone is not None and self.known_zones and zone not in self.known_zones:
            return (f"zoneId {mec013.shown(zone)} is not one of the platform's zones "
                    f"({', '.join(sorted(self.known_zones))})")
        for name, value in (("currentAccessPointId", poa), ("previousAccessPointId", previous_poa)):
            if value is not None and not mec013.valid_id(value):
                return f"{name} {mec013.shown(value)} is no access point id ({mec013.ID_PATTERN})"
        return None

    async def _zones(self) -> list[str]:
        return self.s.zones or await self.api.zones()

    def _callback_url(self, token: str) -> str:
        host = self.s.callback_host
        host = f"[{host}]" if ":" in host and not host.startswith("[") else host
        scheme = "https" if self.s.tls else "http"
        return f"{scheme}://{host}:{self.s.callback_port or self.port}{CALLBACK_PREFIX}{token}"

    async def _create(self, sub: _Sub) -> None:
        ref = {"notifyURL": self._callback_url(sub.token), "callbackData": f"mec_mobility:{sub.key}"}
        if sub.kind == "zonalTraffic":
            body = {"zonalTrafficSubscription": {"callbackReference": ref, "zoneId": sub.key,
                                                 "userEventCriteria": list(EVENTS),
                                                 "clientCorrelator": f"mec_mobility-{sub.key}"}}
        else:
            body = {"userTrackingSubscription": {"callbackReference": ref, "address": sub.key,
                                                 "userEventCriteria": list(EVENTS),
                                                 "clientCorrelator": f"mec_mobility-{sub.key}"}}
        status, text, headers = await self._request("POST", self._url(f"subscriptions/{sub.kind}"), json=body)
        if status not in (200, 201):
            raise MecMobilityError(f"mec_mobility: the platform refused the {sub.kind} subscription for {sub.key} "
                                   f"(HTTP {status}: {mec013.problem_text(text)}).")
        try:
            rep = mec013.loads(text).get(f"{sub.kind}Subscription") or {}
        except (ValueError, AttributeError):
            rep = {}
        sub.url = headers.get("Location") or rep.get("resourceURL")
        if sub.url:
            sub.url = urljoin(self._url(f"subscriptions/{sub.kind}"), sub.url)
        LOG.info("mec_mobility: subscribed %s %s at %s", sub.kind, sub.key, sub.url)

    async def subscribe_all(self) -> None:
        if self.s.subscription == "zonal_traffic":
            wanted = [("zonalTraffic", z) for z in await self._zones()]
        else:
            wanted = [("userTracking", ue) for ue in self.s.ues]
        self.subs = {}
        for kind, key in wanted:
            sub = _Sub(kind, key, secrets.token_urlsafe(32))
            self.subs[sub.token] = sub  # before the POST: a notification may arrive before its answer
            await self._create(sub)

    async def unsubscribe_all(self) -> None:
        for sub in list(self.subs.values()):
            if sub.url:
                try:
                    await self._request("DELETE", sub.url)
                except ConnectionError as exc:
                    LOG.warning("mec_mobility: could not delete %s: %s", sub.url, exc)
        self.subs = {}

    async def check(self) -> None:
        """One round: make sure every subscription exists; after a platform restart, make them again and
        put the zone changes missed meanwhile on the queue."""
        missing = []
        try:
            for sub in list(self.subs.values()):
                if sub.url is None:
                    missing.append(sub)
                    continue
                status, _, _ = await self._request("GET", sub.url)
                if status == 404:
                    missing.append(sub)
        except ConnectionError as exc:
            if self.platform_up:
                LOG.warning("mec_mobility: the MEC platform is unreachable (%s); retrying every %g s",
                            exc, self.s.check_interval)
            self.platform_up = False
            return
        if not self.platform_up:
            LOG.info("mec_mobility: the MEC platform at %s answers again", self.s.location_url)
            self.platform_up = True
        if not missing:
            return
        LOG.warning("mec_mobility: %d subscription(s) gone on the platform (restarted?): subscribing again",
                    len(missing))
        try:
            for sub in missing:
                del self.subs[sub.token]
                fresh = _Sub(sub.kind, sub.key, secrets.token_urlsafe(32))
                self.subs[fresh.token] = fresh
                await self._create(fresh)
                self.stats["resubscribed"] += 1
            for ue in self.s.ues:
                zone, poa = await self.read_zone(ue)
                if zone and zone != self.zone.get(ue):
                    await self._emit(ue, zone, poa, self.poa.get(ue), time.time(), "zone_change", catch_up=True)
        except ConnectionError as exc:
            LOG.warning("mec_mobility: resubscription failed (%s); retrying", exc)
            self.platform_up = False

    # ---- receiver
    def _peer_allowed(self, request: web.Request) -> bool:
        if not self.s.allowed_networks:
            return True
        try:
            peer = ipaddress.ip_address((request.remote or "").split("%")[0])
        except ValueError:
            return False
        return any(peer in net for net in self.s.allowed_networks)

    def _find_token(self, token: str) -> _Sub | None:
        found = None
        for known, sub in list(self.subs.items()):
            if secrets.compare_digest(known.encode(), token.encode()):
                found = sub
        return found

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info.get("token", "")
        sub = self._find_token(token) if token else None
        if sub is None or not self._peer_allowed(request):
            self.stats["refused"] += 1
            return web.Response(status=404)
        if request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST"})
        if (request.content_length or 0) > MAX_BODY:
            self.stats["bad"] += 1
            return web.Response(status=413)
        try:
            raw = await request.content.read(MAX_BODY + 1)
            if len(raw) > MAX_BODY:
                self.stats["bad"] += 1
                return web.Response(status=413)
            body = mec013.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as exc:
            self.stats["bad"] += 1
            return web.Response(status=400, text=f"body must be a JSON object: {exc}")
        self.stats["received"] += 1
        note = body.get("zonalPresenceNotification")
        if isinstance(note, dict):
            await self.on_presence(note)
        else:
            self.stats["ignored"] += 1
        return web.Response(status=204)

    async def on_presence(self, note: dict) -> None:
        ue, zone, event = note.get("address"), note.get("zoneId"), note.get("userEventType")
        if not isinstance(ue, str) or ue not in self.s.ues or not isinstance(zone, str) or event not in EVENTS:
            self.stats["ignored"] += 1
            return
        problem = self.id_problem(zone, note.get("currentAccessPointId") or None,
                                  note.get("previousAccessPointId") or None)
        if problem:
            self.stats["dropped"] += 1
            LOG.warning("mec_mobility: a notification for UE %s dropped: %s", ue, problem)
            return
        at = mec013.timestamp(note.get("timestamp")) or time.time()
        key = (ue, event, zone, note.get("currentAccessPointId") or None, note.get("previousAccessPointId") or None, at)
        if key in self.seen:
            self.stats["duplicates"] += 1
            return
        self.seen[key] = True
        while len(self.seen) > DEDUPE_KEEP:
            self.seen.popitem(last=False)
        poa = note.get("currentAccessPointId") or None
        if event == "Leaving":
            return  # the Entering that follows carries the change; from_zone is the zone known before it
        if event == "Transferring":
            if zone == self.zone.get(ue) and poa != self.poa.get(ue):
                previous, self.poa[ue] = self.poa.get(ue), poa
                if self.s.access_point_changes:
                    await self._emit(ue, zone, poa, previous, at, "access_point_change")
            return
        if zone == self.zone.get(ue):  # the same move seen twice (a resubscription's catch-up, a retry)
            self.stats["duplicates"] += 1
            return
        await self._emit(ue, zone, poa, note.get("previousAccessPointId") or self.poa.get(ue), at, "zone_change")

    async def _emit(self, ue, zone, poa, previous_poa, at, kind, catch_up=False) -> None:
        async with self._emit_lock:
            from_zone = self.zone.get(ue)
            if kind != "access_point_change":
                self.zone[ue] = zone
            self.poa[ue] = poa
            self.seq += 1
            event = {"ue": ue, "from_zone": from_zone, "to_zone": zone, "at": mec013.iso(at), "at_epoch": at,
                     "access_point": poa, "previous_access_point": previous_poa, "kind": kind, "api": "mec013",
                     "seq": self.seq, "received_at": time.time(), "platform": self.s.location_url}
            if catch_up:
                event["catch_up"] = True
            if self.s.state_dir and kind != "access_point_change":
                write_state(self.s.state_dir, ue, {"ue": ue, "zone": zone, "seq": self.seq, "at": event["at"],
                                                   "received_at": event["received_at"]})
            self.stats["emitted"] += 1
            LOG.info("mec_mobility: %s %s -> %s (seq %d%s)", ue, from_zone, zone, self.seq,
                     ", catch-up" if catch_up else "")
            await self.queue.put(event)

    # ---- lifecycle
    async def start(self) -> None:
        self.api.open()
        try:
            await self.api.wait_for_platform()
            try:
                self.known_zones = set(await self.api.zones())
            except ConnectionError as exc:
                raise MecMobilityError(
                    f"mec_mobility: reading the zones at {self.s.location_url} failed: {exc}") from exc
            for ue in self.s.ues:  # unknown UEs stop the source before anything is subscribed
                self.zone[ue], self.poa[ue] = await self.read_zone(ue)
            app = web.Application(client_max_size=MAX_BODY)
            app.router.add_route("*", CALLBACK_PREFIX + "{token}", self.handle)
            app.router.add_route("*", "/{tail:.*}", self._refuse)
            self.runner = web.AppRunner(app, access_log=None)
            await self.runner.setup()
            site = web.TCPSite(self.runner, self.s.listen_host, self.s.listen_port, ssl_context=self.s.tls)
            try:
                await site.start()
            except OSError as exc:
                raise MecMobilityError(f"mec_mobility: cannot listen on {self.s.listen_host}:{self.s.listen_port} "
                                       f"for the callbacks: {exc}") from exc
            self.port = site._server.sockets[0].getsockname()[1]  # the port chosen when listen_port is 0
            LOG.info("mec_mobility: callbacks on %s:%d%s", self.s.listen_host, self.port,
                     " (HTTPS)" if self.s.tls else "")
            try:
                await self.subscribe_all()
            except ConnectionError as exc:
                raise MecMobilityError(f"mec_mobility: subscribing at {self.s.location_url} failed: {exc}") from exc
            for ue in self.s.ues:
                if self.s.state_dir:
                    write_state(self.s.state_dir, ue, {"ue": ue, "zone": self.zone[ue], "seq": self.seq,
                                                       "at": mec013.iso(time.time()), "received_at": time.time()})
                if self.s.emit_initial and self.zone[ue]:
                    zone, self.zone[ue] = self.zone[ue], None
                    await self._emit(ue, zone, self.poa[ue], None, time.time(), "initial")
        except BaseException:
            await self.stop()
            raise

    async def _refuse(self, request: web.Request) -> web.StreamResponse:
        self.stats["refused"] += 1
        return web.Response(status=404)

    async def stop(self) -> None:
        if self.api.is_open:
            try:
                await asyncio.wait_for(self.unsubscribe_all(), timeout=max(1.0, self.s.request_timeout))
            except (asyncio.TimeoutError, ConnectionError):
                pass
            await self.api.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def run(self) -> None:
        await self.start()
        try:
            while True:
                await asyncio.sleep(self.s.check_interval)
                await self.check()
        finally:
            await asyncio.shield(self.stop())


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """ansible-rulebook's entry point: runs until the rulebook stops (cancels this task)."""
    await MobilitySource(Settings(args or {}), queue).run()


if __name__ == "__main__":
    # A manual run: python mec_mobility.py http://127.0.0.1:8080/sandbox 10.100.0.1 (prints the events)
    import sys

    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event), flush=True)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), {"platform_url": sys.argv[1], "ues": sys.argv[2:]}))
