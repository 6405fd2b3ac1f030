"""mec_approach: an Event-Driven Ansible event source that predicts a UE's next MEC zone before the handover
(ETSI GS MEC 013 Location API only).

At start it reads the platform's zones and their access points (``queries/zones``, ``queries/zones/<zone>/
accessPoints``: each one's ``locationInfo`` and ``connectionType``). Then every ``poll_interval`` seconds it reads
each followed UE (``queries/users?address=``: zone, access point, ``locationInfo`` latitude/longitude, time
stamp), estimates its speed and heading from its positions over the last ``window`` seconds (the platform's
``velocity`` is not used: the local sandbox reports a constant bearing of 0), and dead-reckons it over the next
``horizon`` seconds. At each extrapolated point (every ``step`` seconds) it applies the platform's
point-of-access selection as AdvantEDGE does it: keep the current access point while in range unless an access
point of a preferred ``priority`` type is in range; among those, the closest. MEC 013 does not give an access
point's coverage, so the radii are nominal per connection type (``coverage_radius``; the defaults are the
Monaco scenario's). The first extrapolated point whose access point is in another zone is the prediction::

    {"kind": "approaching", "ue": "10.100.0.1", "from_zone": "zone01", "to_zone": "zone02", "eta": 9.0,
     "timeout": 28.0, "confidence": 1.0, "at": "2023-11-14T22:15:42.000000Z", "at_epoch": 1700000142.0,
     "access_point": "4g-macro-cell-2", "predicted_access_point": "4g-macro-cell-4", "speed": 20.0,
     "heading": 92.5, "seq": 1, "api": "mec013", "received_at": 1795793698.2,
     "platform": "http://127.0.0.1:8080/sandbox/location/v2"}

``eta`` is in seconds after ``at`` (the platform's time of the position); ``timeout`` (2 x eta + ``margin``) is
how long the prediction stands: the same prediction (from_zone, to_zone) is put on the queue once, again only
when it changes (another to_zone, or the UE changed zone) or when ``timeout`` has passed without the handover.
``confidence`` is the share of the extrapolated points from the change to ``eta`` + ``confirm_span`` seconds
that stay in ``to_zone`` (a path that only grazes the other zone gets less). Measured on the sandbox's car
10.100.0.1 over its first 10 minutes: ``tests/benchmarks/follow_predict.py`` (docs/follow.md).

Arguments (ansible-rulebook ``sources:`` entry ``mec.migration.mec_approach``):

``platform_url`` / ``location_url`` / ``ues`` (or ``ue``) / ``request_timeout`` / ``startup_timeout``
    As for ``mec.migration.mec_mobility`` (the Location API is ``<platform_url>/location/v2``).
``credentials_file`` / ``client`` (or ``client_id`` / ``client_secret``; ``token_url``)
    As for ``mec.migration.mec_mobility``: the bearer token of a platform that needs one (the local sandbox).
``poll_interval`` (default 1 s), ``horizon`` (default 40 s), ``window`` (default 3 s), ``step`` (default 1 s)
    How often each UE is read, how far ahead it is extrapolated, over how many seconds of positions its
    velocity is estimated, and the extrapolation's resolution.
``min_speed`` (default 1 m/s)
    Slower UEs get no prediction (a parked car's noise is no heading).
``coverage_radius`` (default ``{"Macro": 400, "5G": 100, "Wifi": 50, "Unknown": 100}``)
    Nominal radius in metres of an access point by its MEC 013 ``connectionType``.
``priority`` (default ``["5G", "Macro", "Wifi"]``)
    Connection types the UE attaches to, most preferred first (the sandbox's ``--priority 5g,4g,wifi``).
``margin`` (default 10 s) / ``confirm_span`` (default 10 s)
    See ``timeout`` and ``confidence`` above.
``enabled`` (default true)
    false: the source reads nothing and puts nothing on the queue, and stays so until the rulebook stops (one
    rulebook, ``extensions/eda/rulebooks/follow_ue.yml``, switches prediction on and off with a variable).
``state_dir``
    Where ``<ue>.approach.json`` always holds the latest prediction put on the queue (its ``seq``):
    ``playbooks/follow.yml`` skips an ``approaching`` event that a later one replaced. A private folder, checked
    as ``mec_mobility`` checks its own (the same folder).
``relocate_lead`` (default 0: off; needs ``state_dir``)
    Seconds before the predicted handover at which the relocation may start. When the standing prediction's
    ``eta`` (recomputed at every poll, and polled again at the instant it falls due) is at most this, the source
    adds ``"relocate_to": "<to_zone>"`` (with ``relocate_seq``, ``relocate_eta`` and ``relocate_marked_at``) to
    ``<ue>.approach.json``; follow.yml's relocation gate opens on it as on the zone change itself (by zone, not by
    seq: a hop staged for an earlier prediction of the same zone change, re-made after its timeout, opens too).
    Set it to the staged hop's time from the gate opening to the source stopping plus half its outage, so that the
    outage straddles the handover instead of following it. The mark is taken back when the prediction stops
    holding (no handover ahead, another zone predicted) and when the UE enters another zone than predicted.

Events are data: zone and access point ids from the platform (the zones and access points read at start, each UE's
answer) must be identifiers (``[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}``), and a UE's zone one of the zones read at start;
an access point that is not is left out of the map, a UE answer that is not is dropped, both with a log line.

Only the Python standard library and aiohttp (a dependency of ansible-rulebook) are used.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import math
import os
import sys
import time
from collections import deque
from typing import Any


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
LOG = logging.getLogger("mec.migration.mec_approach")
EARTH_RADIUS = 6371008.8
DEFAULT_RADIUS = {"Macro": 400.0, "5G": 100.0, "Wifi": 50.0, "Unknown": 100.0}
DEFAULT_PRIORITY = ["5G", "Macro", "Wifi"]


class MecApproachError(mec013.MecSourceError):
    """A problem the user must fix (bad arguments, unknown UE, unreachable platform); the message says what."""


class Settings:
    """The source's arguments, checked once: every problem in one MecApproachError."""

    def __init__(self, args: dict[str, Any]):
        problems: list[str] = []
        known = {"platform_url", "location_url", "ues", "ue", "poll_interval", "horizon", "window", "step",
                 "min_speed", "coverage_radius", "priority", "margin", "confirm_span", "request_timeout",
                 "startup_timeout", "state_dir", "enabled", "relocate_lead", *mec013.AUTH_ARGS}
        mec013.unknown_arguments(args, known, problems)
        self.credentials = mec013.credentials(args, problems)
        self.location_url = mec013.location_url(args, problems)
        self.ues = mec013.ues(args, problems)
        self.poll_interval = mec013.number(args, "poll_interval", 1.0, problems, low=0.05)
        self.horizon = mec013.number(args, "horizon", 40.0, problems, low=1.0, high=3600.0)
        self.window = mec013.number(args, "window", 3.0, problems, low=0.1, high=600.0)
        self.step = mec013.number(args, "step", 1.0, problems, low=0.05)
        self.min_speed = mec013.number(args, "min_speed", 1.0, problems, low=0.0)
        self.margin = mec013.number(args, "margin", 10.0, problems, low=0.0)
        self.confirm_span = mec013.number(args, "confirm_span", 10.0, problems, low=0.0)
        self.request_timeout = mec013.number(args, "request_timeout", 5.0, problems, low=0.1)
        self.startup_timeout = mec013.number(args, "startup_timeout", 30.0, problems, low=0.0)
        if self.step > self.horizon:
            problems.append(f"step={self.step:g} is longer than horizon={self.horizon:g}.")
        radius = args.get("coverage_radius", DEFAULT_RADIUS)
        self.coverage_radius = dict(DEFAULT_RADIUS)
        if not isinstance(radius, dict):
            problems.append(f"coverage_radius={radius!r}: a mapping of connectionType to metres "
                            "(e.g. {Macro: 400, 5G: 100, Wifi: 50}).")
        else:
            for kind in radius:
                self.coverage_radius[str(kind)] = mec013.number(radius, kind, DEFAULT_RADIUS.get(kind, 100.0),
                                                                problems, low=0.0)
        self.priority = [str(p) for p in mec013.as_list(args.get("priority", DEFAULT_PRIORITY))]
        if not self.priority:
            problems.append("priority: give at least one connection type (e.g. [5G, Macro, Wifi]).")
        self.state_dir = args.get("state_dir") or None
        if self.state_dir:
            problem = mec013.state_dir_problem(self.state_dir)
            if problem:
                problems.append(problem)
        self.relocate_lead = mec013.number(args, "relocate_lead", 0.0, problems, low=0.0, high=self.horizon)
        if self.relocate_lead > 0 and not self.state_dir:
            problems.append(f"relocate_lead={self.relocate_lead:g} needs state_dir (the mark is written to "
                            "<state_dir>/<ue>.approach.json, where the relocation gate reads it).")
        self.enabled = mec013.boolean(dict(args, enabled=args.get("enabled", True)), "enabled", problems)
        mec013.settings_error("mec_approach", MecApproachError, problems)


class AccessPoint:
    __slots__ = ("name", "zone", "kind", "x", "y", "r2", "rank")

    def __init__(self, name, zone, kind, x, y, radius, rank):
        self.name, self.zone, self.kind, self.x, self.y, self.rank = name, zone, kind, x, y, rank
        self.r2 = radius * radius


class Map:
    """The zones' access points on a local plane (metres east and north of their centroid)."""

    def __init__(self, raw: list[dict], settings: Settings):
        """raw: [{name, zone, kind, lat, lon}]."""
        if not raw:
            raise ValueError("no access point with a location")
        self.lat0 = sum(a["lat"] for a in raw) / len(raw)
        self.lon0 = sum(a["lon"] for a in raw) / len(raw)
        self.cos0 = math.cos(math.radians(self.lat0))
        prio = settings.priority
        self.aps = []
        for a in raw:
            x, y = self.xy(a["lat"], a["lon"])
            radius = settings.coverage_radius.get(a["kind"], settings.coverage_radius.get("Unknown", 100.0))
            rank = len(prio) - prio.index(a["kind"]) if a["kind"] in prio else -1
            self.aps.append(AccessPoint(a["name"], a["zone"], a["kind"], x, y, radius, rank))
        self.by_name = {a.name: a for a in self.aps}

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        return (math.radians(lon - self.lon0) * self.cos0 * EARTH_RADIUS, math.radians(lat - self.lat0) * EARTH_RADIUS)

    def select(self, x: float, y: float, current: str | None) -> AccessPoint | None:
        """The access point the UE would use at (x, y), coming from ``current`` (AdvantEDGE's rule)."""
        in_range = []
        for ap in self.aps:
            d2 = (ap.x - x) ** 2 + (ap.y - y) ** 2
            if d2 <= ap.r2 and ap.rank >= 0:
                in_range.append((ap, d2))
        if not in_range:
            return None
        selected, sel_d2, cur_rank = None, 0.0, -1
        for ap, d2 in in_range:
            if ap.name == current:
                selected, sel_d2, cur_rank = ap, d2, ap.rank
        for ap, d2 in in_range:
            if selected is None or ap.rank > selected.rank or (ap.rank == selected.rank and ap.rank > cur_rank
                                                               and d2 < sel_d2):
                selected, sel_d2 = ap, d2
        return selected


class Track:
    """One UE: its recent positions (platform time, x, y), zone, access point and the last prediction emitted."""

    def __init__(self):
        self.samples: deque = deque()
        self.zone: str | None = None
        self.poa: str | None = None
        self.emitted: dict | None = None  # the last approaching event put on the queue for the current zone
        self.written: dict | None = None  # what <ue>.approach.json holds for it (without the mark)
        self.marked: int | None = None  # the seq whose handover <ue>.approach.json marks imminent
        self.missing = False


def predict(m: Map, s: Settings, x, y, vx, vy, zone, poa) -> tuple[str, float, float, str] | None:
    """(to_zone, eta, confidence, access point) of the first extrapolated point in another zone, or None.

    The change is found every ``step`` seconds, then its instant is narrowed down by bisection to ``step`` / 64
    (with a 1 s step, 16 ms): ``eta`` is what the relocation's early start (``relocate_lead``) is timed on."""
    current, change, inside, total, k = poa, None, 0, 0, 0
    while True:
        k += 1
        tau = k * s.step
        if change is None and tau > s.horizon + 1e-9:
            return None
        if change is not None and tau > change[1] + s.confirm_span + 1e-9:
            return change[0], change[1], round(inside / total, 2), change[2]
        before = current
        ap = m.select(x + vx * tau, y + vy * tau, current)
        if ap is not None:
            current = ap.name
        if change is None:
            if ap is None or ap.zone == zone:
                continue
            change = (ap.zone, crossing(m, x, y, vx, vy, zone, before, tau - s.step, tau), ap.name)
        total += 1
        inside += ap is not None and ap.zone == change[0]


def crossing(m: Map, x, y, vx, vy, zone, current, lo: float, hi: float, rounds: int = 6) -> float:
    """The instant in (lo, hi] at which the extrapolated UE leaves ``zone`` (it is in it, or uncovered, at lo and
    in another zone at hi), coming from access point ``current``."""
    for _ in range(rounds):
        mid = (lo + hi) / 2
        ap = m.select(x + vx * mid, y + vy * mid, current)
        if ap is not None and ap.zone != zone:
            hi = mid
        else:
            lo = mid
    return hi


class ApproachSource:
    """Reads the map, polls the UEs and puts one ``approaching`` event per predicted zone change on the queue."""

    def __init__(self, settings: Settings, queue: asyncio.Queue):
        self.s = settings
        self.queue = queue
        self.api = mec013.LocationClient(settings.location_url, "mec_approach", MecApproachError,
                                         settings.request_timeout, settings.startup_timeout, settings.credentials)
        self.map: Map | None = None
        self.tracks = {ue: Track() for ue in settings.ues}
        self.seq = 0
        self.platform_up = True
        self.wake: float | None = None  # poll again this many seconds after the last poll (relocate_lead's instant)
        self.stats = {"polls": 0, "emitted": 0, "poll_errors": 0, "marked": 0, "unmarked": 0, "dropped": 0}
        self.zones: set[str] = set()  # the platform's zones, read at start: a UE's zone must be one

    async def read_map(self) -> Map:
        raw = []
        self.zones = set(await self.api.zones())  # ids that are no identifiers are left out there
        for zone in sorted(self.zones):
            for ap in await self.api.access_points(zone):
                pos = mec013.position(ap)
                if pos is None or not ap.get("accessPointId"):
                    continue
                name, ap_zone = ap["accessPointId"], ap.get("interestRealm") or zone
                if not mec013.valid_id(name) or ap_zone not in self.zones:
                    self.stats["dropped"] += 1
                    LOG.warning("mec_approach: access point %s of zone %s left out: %s", mec013.shown(name),
                                mec013.shown(ap_zone), f"no access point id ({mec013.ID_PATTERN})"
                                if not mec013.valid_id(name) else "its zone is none of the platform's zones")
                    continue
                raw.append({"name": name, "zone": ap_zone, "kind": str(ap.get("connectionType") or "Unknown"),
                            "lat": pos[0], "lon": pos[1]})
        if not raw:
            raise MecApproachError(f"mec_approach: the MEC platform at {self.s.location_url} lists no access point "
                                   "with a location (queries/zones/<zone>/accessPoints): nothing to predict from.")
        return Map(raw, self.s)

    async def start(self) -> None:
        self.api.open()
        try:
            await self.api.wait_for_platform()
            for ue in self.s.ues:  # an unknown UE stops the source at start
                await self.api.user(ue)
            try:
                self.map = await self.read_map()
            except (ConnectionError, ValueError) as exc:
                raise MecApproachError(f"mec_approach: reading the zones' access points at {self.s.location_url} "
                                       f"failed: {exc}") from exc
            LOG.info("mec_approach: %d access points in %d zones; following %s", len(self.map.aps),
                     len({a.zone for a in self.map.aps}), ", ".join(self.s.ues))
        except BaseException:
            await self.api.close()
            raise

    async def poll_once(self) -> list[dict]:
        """Read every UE once, update its track, put the new predictions on the queue (also returned)."""
        out = []
        for ue, track in self.tracks.items():
            try:
                user = await self.api.user(ue)
            except (ConnectionError, MecApproachError) as exc:
                self.stats["poll_errors"] += 1
                if self.platform_up:
                    LOG.warning("mec_approach: cannot read UE %s (%s); retrying every %g s", ue, exc,
                                self.s.poll_interval)
                self.platform_up = False
                continue
            if not self.platform_up:
                LOG.info("mec_approach: the MEC platform at %s answers again", self.s.location_url)
                self.platform_up = True
            self.stats["polls"] += 1
            zone, poa = user.get("zoneId") or None, user.get("accessPointId") or None
            if (zone is not None and zone not in self.zones) or (poa is not None and not mec013.valid_id(poa)):
                self.stats["dropped"] += 1
                LOG.warning("mec_approach: the platform's answer for UE %s dropped: %s", ue,
                            f"zoneId {mec013.shown(zone)} is none of the platform's zones"
                            if zone is not None and zone not in self.zones
                            else f"accessPointId {mec013.shown(poa)} is no access point id ({mec013.ID_PATTERN})")
                continue
            event = self.update(ue, track, user)
            if event is not None:
                out.append(event)
                await self.queue.put(event)
        return out

    def update(self, ue: str, track: Track, user: dict) -> dict | None:
        now = time.time()
        at = mec013.timestamp(user.get("timestamp")) or now
        zone, poa = user.get("zoneId") or None, user.get("accessPointId") or None
        if zone != track.zone:
            # a new zone: the old prediction is over; its mark stays only if the UE went where it said
            if track.written is not None and zone != track.written["to_zone"]:
                self.unmark(ue, track)
            track.zone, track.emitted, track.written, track.marked = zone, None, None, None
        track.poa = poa
        pos = mec013.position(user)
        if pos is None or zone is None:
            track.samples.clear()
            return None
        x, y = self.map.xy(*pos)
        if track.samples and at <= track.samples[-1][0]:
            return None  # the platform's clock did not move: no new position
        if track.samples and at - track.samples[-1][0] > 2 * self.s.window:
            track.samples.clear()  # a gap (the UE unseen, the platform's clock jumped): no velocity across it
        track.samples.append((at, x, y))
        while len(track.samples) > 2 and at - track.samples[1][0] >= self.s.window:
            track.samples.popleft()
        t0, x0, y0 = track.samples[0]
        if len(track.samples) < 2 or at - t0 <= 0:
            return None
        vx, vy = (x - x0) / (at - t0), (y - y0) / (at - t0)
        speed = math.hypot(vx, vy)
        found = predict(self.map, self.s, x, y, vx, vy, zone, poa) if speed >= self.s.min_speed else None
        if found is None:
            self.unmark(ue, track)  # no handover ahead any more (the UE stopped or turned): no early relocation
            return None
        to_zone, eta, confidence, predicted_ap = found
        last = track.emitted
        if last is not None and last["to_zone"] == to_zone and at < last["at_epoch"] + last["timeout"]:
            self.mark(ue, track, eta)  # the same prediction still stands
            return None
        self.seq += 1
        event = {"kind": "approaching", "ue": ue, "from_zone": zone, "to_zone": to_zone, "eta": round(eta, 2),
                 "timeout": round(2 * eta + self.s.margin, 2), "confidence": confidence, "at": mec013.iso(at),
                 "at_epoch": at, "access_point": poa, "predicted_access_point": predicted_ap,
                 "speed": round(speed, 2), "heading": round(math.degrees(math.atan2(vx, vy)) % 360, 1),
                 "seq": self.seq, "api": "mec013", "received_at": now, "platform": self.s.location_url}
        track.emitted, track.marked = event, None
        track.written = {k: event[k] for k in
                         ("ue", "seq", "from_zone", "to_zone", "eta", "timeout", "at_epoch", "received_at")}
        if self.s.state_dir:
            mec013.write_state(self.s.state_dir, f"{ue}.approach", track.written)
        self.stats["emitted"] += 1
        LOG.info("mec_approach: %s %s -> %s in %.1f s (seq %d, confidence %.2f)", ue, zone, to_zone, eta,
                 self.seq, confidence)
        self.mark(ue, track, eta)
        return event

    def mark(self, ue: str, track: Track, eta: float) -> None:
        """With relocate_lead: once the standing prediction's handover is at most relocate_lead s away, mark it
        imminent in <ue>.approach.json (``"relocate_seq": <its seq>``: the staged hop's gate may open before the
        UE enters the zone, so that the relocation's downtime straddles the handover instead of following it).
        Until then ask for a poll at the instant the mark is due (``wake``)."""
        lead = self.s.relocate_lead
        if lead <= 0 or track.written is None or track.marked == track.written["seq"]:
            return
        if eta > lead:
            self.wake = eta - lead if self.wake is None else min(self.wake, eta - lead)
            return
        track.marked = track.written["seq"]
        mec013.write_state(self.s.state_dir, f"{ue}.approach",
                           dict(track.written, relocate_seq=track.marked, relocate_to=track.written["to_zone"],
                                relocate_eta=round(eta, 3), relocate_marked_at=time.time()))
        self.stats["marked"] += 1
        LOG.info("mec_approach: %s's handover to %s is %.2f s away: relocation may start (seq %d)", ue,
                 track.written["to_zone"], eta, track.marked)

    def unmark(self, ue: str, track: Track) -> None:
        """Take the mark back when the prediction it was made for no longer holds while the UE is in the zone."""
        if track.marked is None or track.written is None:
            return
        track.marked = None
        mec013.write_state(self.s.state_dir, f"{ue}.approach", track.written)
        self.stats["unmarked"] += 1
        LOG.info("mec_approach: %s's handover to %s is no longer ahead: mark of seq %d taken back", ue,
                 track.written["to_zone"], track.written["seq"])

    async def run(self) -> None:
        await self.start()
        try:
            while True:
                started = time.monotonic()
                self.wake = None
                await self.poll_once()
                elapsed = time.monotonic() - started
                delay = self.s.poll_interval - elapsed
                if self.wake is not None:  # a mark falls due before the next regular poll
                    delay = min(delay, max(0.02, self.wake - elapsed))
                await asyncio.sleep(max(0.0, delay))
        finally:
            await asyncio.shield(self.api.close())


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """ansible-rulebook's entry point: runs until the rulebook stops (cancels this task)."""
    settings = Settings(args or {})
    if not settings.enabled:
        LOG.info("mec_approach: disabled (enabled: false); idle until the rulebook stops")
        await asyncio.Event().wait()  # a source that returns would stop the rulebook
    await ApproachSource(settings, queue).run()


if __name__ == "__main__":
    # A manual run: python mec_approach.py http://127.0.0.1:8080/sandbox 10.100.0.1 (prints the predictions)
    class _PrintQueue:
        async def put(self, event):
            print(json.dumps(event), flush=True)

    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(_PrintQueue(), {"platform_url": sys.argv[1], "ues": sys.argv[2:]}))
