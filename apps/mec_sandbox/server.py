"""The aiohttp application: ETSI MEC 013 / 012 / 021 endpoints over a moving scenario."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from typing import Any

from aiohttp import web

from . import __version__
from .mobility import Change, Mobility, Placement
from .notify import Notifier
from .scenario import Scenario, haversine_m
from .spec import AMS, EVENTS, LOC, OPERATIONS, RNI, Op, openapi_document

LOG = logging.getLogger("mec_sandbox")
CONNECTION_TYPE = {"4g": "Macro", "5g": "5G", "wifi": "Wifi", "other": "Unknown"}
CONTEXT_STATES = ("NOT_TRANSFERRED", "USER_CONTEXT_TRANSFER_COMPLETED", "USER_CONTEXT_TRANSFER_FAILED")
MOBILITY_STATUSES = ("INTERHOST_MOVEOUT_TRIGGERED", "INTERHOST_MOVEOUT_COMPLETED", "INTERHOST_MOVEOUT_FAILED")


class Problem(Exception):
    def __init__(self, status: int, detail: str, title: str | None = None):
        super().__init__(detail)
        self.status, self.detail = status, detail
        self.title = title or {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                               501: "Not Implemented"}.get(status, "Error")


def problem_response(status: int, title: str, detail: str, instance: str) -> web.Response:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, "instance": instance}
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/problem+json")


def _json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data, separators=(",", ":")).encode(),
                        content_type="application/json", headers=headers)


class Clock:
    """Simulated time = sim_base + (monotonic - wall_base) * speed; speed 0 means a manual clock."""

    def __init__(self, speed: float, start_epoch: float):
        self.speed = speed
        self.epoch = start_epoch  # wall-clock seconds that simulated time 0 stands for
        self.sim_base = 0.0
        self.wall_base = time.monotonic()

    def target(self) -> float:
        return self.sim_base + (time.monotonic() - self.wall_base) * self.speed

    def jump(self, sim_time: float) -> None:
        self.sim_base, self.wall_base = sim_time, time.monotonic()


class Sandbox:
    """State of one sandbox: scenario, mobility, subscriptions, registrations."""

    def __init__(self, scenario: Scenario, placement: Placement, base_path: str = "", speed: float = 1.0,
                 step: float = 0.05, tick: float | None = None, start_epoch: float | None = None,
                 public_url: str = "", notifier: Notifier | None = None):
        self.scenario = scenario
        self.placement = placement
        self.base = base_path.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.mobility = Mobility(scenario, placement, step=step)
        self.clock = Clock(speed, time.time() if start_epoch is None else start_epoch)
        self.epoch_from_start = start_epoch is None
        self.tick = tick if tick is not None else step
        self.notifier = notifier or Notifier()
        self.ids = itertools.count(1)
        self.loc_subs: dict[str, dict[str, dict]] = {k: {} for k in ("userTracking", "zonalTraffic", "zoneStatus")}
        self.rni_subs: dict[str, dict] = {}
        self.ams_subs: dict[str, dict] = {}
        self.ams_regs: dict[str, dict] = {}
        self.pending_moves: dict[tuple[str, str], dict] = {}  # (registration id, ue) -> move
        self._users_cache: tuple[int, bytes] | None = None
        self._counts_cache: tuple[int, dict, dict] | None = None
        self.mobility.listeners.append(self.on_changes)
        self._ticker: asyncio.Task | None = None

    # ---------------------------------------------------------------- time
    def ts(self, t: float | None = None) -> dict:
        value = self.clock.epoch + (self.mobility.time if t is None else t)
        seconds = math.floor(value)
        return {"seconds": int(seconds), "nanoSeconds": int((value - seconds) * 1e9)}

    def sync(self) -> None:
        """Catch the simulation up with the clock (cheap when already there)."""
        if self.clock.speed > 0:
            self.mobility.advance_to(self.clock.target())

    async def run_ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.sync()
            except Exception:  # keep the simulation alive whatever a listener does
                LOG.exception("simulation step failed")

    # ---------------------------------------------------------------- urls
    def url(self, request: web.Request | None, path: str) -> str:
        if self.public_url:
            root = self.public_url
        elif request is not None:
            root = f"{request.scheme}://{request.host}"
        else:
            root = ""
        return f"{root}{self.base}/{path.lstrip('/')}"

    # ---------------------------------------------------------------- model views
    def counts(self) -> tuple[dict, dict]:
        version = self.mobility.version
        if self._counts_cache and self._counts_cache[0] == version:
            return self._counts_cache[1], self._counts_cache[2]
        per_zone = {z: 0 for z in self.scenario.zones}
        per_poa = {p: 0 for p in self.scenario.poas}
        for st in self.mobility.states.values():
            if st.poa:
                per_poa[st.poa] += 1
                per_zone[st.zone] = per_zone.get(st.zone, 0) + 1
        self._counts_cache = (version, per_zone, per_poa)
        return per_zone, per_poa

    def user_info(self, request, name: str) -> dict:
        st = self.mobility.states[name]
        lon, lat = self.mobility.lonlat(name)
        info = {"address": name, "accessPointId": st.poa or "", "zoneId": st.zone or "",
                "resourceURL": self.url(request, f"{LOC}/queries/users?address={name}"),
                "timestamp": self.ts(),
                "locationInfo": {"latitude": [round(lat, 6)], "longitude": [round(lon, 6)], "shape": 2}}
        ue = self.scenario.ues[name]
        if ue.moving:
            info["locationInfo"]["velocity"] = {"velocityType": 1, "bearing": 0,
                                                "horizontalSpeed": round(ue.velocity * 3.6)}
        return info

    def poa_info(self, request, name: str, per_poa: dict) -> dict:
        p = self.scenario.poas[name]
        return {"accessPointId": name,
                "locationInfo": {"latitude": [p.lat], "longitude": [p.lon], "shape": 2},
                "connectionType": CONNECTION_TYPE[p.kind], "operationStatus": "Serviceable",
                "numberOfUsers": per_poa.get(name, 0), "interestRealm": p.zone,
                "resourceURL": self.url(request, f"{LOC}/queries/zones/{p.zone}/accessPoints/{name}")}

    def zone_info(self, request, zone: str, per_zone: dict) -> dict:
        return {"zoneId": zone, "numberOfAccessPoints": len(self.scenario.zone_poas(zone)),
                "numberOfUnserviceableAccessPoints": 0, "numberOfUsers": per_zone.get(zone, 0),
                "resourceURL": self.url(request, f"{LOC}/queries/zones/{zone}")}

    def ecgi(self, poa: str) -> dict:
        return {"cellId": self.scenario.poas[poa].cell_id or "",
                "plmn": {"mcc": self.scenario.mcc, "mnc": self.scenario.mnc}}

    # ---------------------------------------------------------------- events -> notifications
    def on_changes(self, changes: list[Change]) -> None:
        for c in changes:
            self._location_events(c)
            if c.new_cell != c.old_cell and c.new_cell is not None:
                self._cell_change(c)
            if c.new_host != c.old_host:
                self._host_change(c)
        if self.loc_subs["zoneStatus"]:
            self._zone_status(changes)

    def _send(self, sub: dict, payload: dict, key: str = "") -> None:
        try:
            self.notifier.send(sub["_notify"], payload, sub["_id"], key)
        except RuntimeError:  # no running loop (pure simulation use): nothing to deliver
            pass

    def _presence(self, sub: dict, kind: str, c: Change, event: str, zone: str, current: str | None,
                  previous: str | None) -> None:
        body = sub["body"]
        criteria = body.get("userEventCriteria") or list(EVENTS)
        if event not in criteria:
            return
        note = {"zoneId": zone, "address": c.ue, "userEventType": event, "currentAccessPointId": current or "",
                "timestamp": self.ts(c.t),
                "link": [{"rel": f"{kind}Subscription", "href": sub["_url"]}]}
        if previous:
            note["previousAccessPointId"] = previous
        if body.get("interestRealm"):
            note["interestRealm"] = body["interestRealm"]
        if body["callbackReference"].get("callbackData"):
            note["callbackData"] = body["callbackReference"]["callbackData"]
        self._send(sub, {"zonalPresenceNotification": note}, c.ue)

    def _location_events(self, c: Change) -> None:
        events = []
        if c.old_zone != c.new_zone:
            if c.old_zone:
                events.append(("Leaving", c.old_zone, c.old_poa, None))
            if c.new_zone:
                events.append(("Entering", c.new_zone, c.new_poa, c.old_poa))
        elif c.old_poa != c.new_poa and c.new_zone:
            events.append(("Transferring", c.new_zone, c.new_poa, c.old_poa))
        for event, zone, current, previous in events:
            for sub in self.loc_subs["zonalTraffic"].values():
                if sub["body"]["zoneId"] == zone:
                    self._presence(sub, "zonalTraffic", c, event, zone, current, previous)
            for sub in self.loc_subs["userTracking"].values():
                if sub["body"]["address"] == c.ue:
                    self._presence(sub, "userTracking", c, event, zone, current, previous)

    def _zone_status(self, changes: list[Change]) -> None:
        per_zone, per_poa = self.counts()
        touched_zones = {z for c in changes for z in (c.old_zone, c.new_zone) if z}
        touched_poas = {p for c in changes for p in (c.old_poa, c.new_poa) if p}
        t = changes[-1].t
        for sub in self.loc_subs["zoneStatus"].values():
            body = sub["body"]
            zone = body["zoneId"]
            base = {"zoneId": zone, "timestamp": self.ts(t),
                    "link": [{"rel": "zoneStatusSubscription", "href": sub["_url"]}]}
            if body["callbackReference"].get("callbackData"):
                base["callbackData"] = body["callbackReference"]["callbackData"]
            zt = body.get("numberOfUsersZoneThreshold")
            if zt is not None and zone in touched_zones and per_zone.get(zone, 0) >= zt:
                self._send(sub, {"zoneStatusNotification": {**base, "numberOfUsersInZone": per_zone[zone]}}, zone)
            at = body.get("numberOfUsersAPThreshold")
            if at is not None:
                for poa in sorted(touched_poas):
                    if self.scenario.poas[poa].zone == zone and per_poa.get(poa, 0) >= at:
                        self._send(sub, {"zoneStatusNotification": {
                            **base, "accessPointId": poa, "numberOfUsersInAP": per_poa[poa]}}, zone)

    def _cell_change(self, c: Change) -> None:
        for sub in self.rni_subs.values():
            f = sub["body"].get("filterCriteriaAssocHo") or {}
            ids = [a.get("value") for a in f.get("associateId") or []]
            if ids and c.ue not in ids:
                continue
            cells = [e.get("cellId") for e in f.get("ecgi") or []]
            src = self.ecgi(c.old_cell) if c.old_cell else None
            trg = self.ecgi(c.new_cell)
            if cells and trg["cellId"] not in cells and (src is None or src["cellId"] not in cells):
                continue
            if f.get("hoStatus") and 3 not in f["hoStatus"] and "COMPLETED" not in f["hoStatus"]:
                continue
            note = {"notificationType": "CellChangeNotification", "timeStamp": self.ts(c.t), "hoStatus": 3,
                    "associateId": [{"type": 1, "value": c.ue}], "trgEcgi": [trg],
                    "_links": {"subscription": {"href": sub["_url"]}}}
            if src:
                note["srcEcgi"] = src
            self._send(sub, note, c.ue)

    def _registrations_for(self, ue: str):
        for reg_id, reg in self.ams_regs.items():
            for dev in reg.get("deviceInformation") or []:
                if (dev.get("associateId") or {}).get("value") == ue:
                    yield reg_id, reg, dev

    def _host_change(self, c: Change) -> None:
        for reg_id, reg, dev in self._registrations_for(c.ue):
            if c.new_host is None or c.old_host is None:
                continue
            dev["contextTransferState"] = "NOT_TRANSFERRED"
            move = {"ue": c.ue, "source": c.old_host, "target": c.new_host, "t": c.t}
            self.pending_moves[(reg_id, c.ue)] = move
            self._mobility_notification(reg, c.ue, "INTERHOST_MOVEOUT_TRIGGERED", move, c.t)

    def _mobility_notification(self, reg: dict, ue: str, status: str, move: dict, t: float | None) -> None:
        app = (reg.get("serviceConsumerId") or {}).get("appInstanceId", "")
        for sub in self.ams_subs.values():
            body = sub["body"]
            if body["subscriptionType"] != "MobilityProcedureSubscription":
                continue
            f = body.get("filterCriteria") or {}
            if f.get("appInstanceId") and f["appInstanceId"] != app:
                continue
            ids = [a.get("value") for a in f.get("associateId") or []]
            if ids and ue not in ids:
                continue
            if f.get("mobilityStatus") and status not in f["mobilityStatus"]:
                continue
            note = {"notificationType": "MobilityProcedureNotification", "timeStamp": self.ts(t),
                    "associateId": [{"type": "UE_IPv4_ADDRESS", "value": ue}], "mobilityStatus": status,
                    "targetAppInfo": {"appInstanceId": app,
                                      "commInterface": {"ipAddresses": [{"host": move["target"], "port": 80}]}},
                    "sourceMecHost": move["source"], "targetMecHost": move["target"],
                    "_links": {"subscription": {"href": sub["_url"]}}}
            self._send(sub, note, ue)

    def _adjacent_apps(self) -> None:
        for sub in self.ams_subs.values():
            body = sub["body"]
            if body["subscriptionType"] != "AdjacentAppInfoSubscription":
                continue
            own = (body.get("filterCriteria") or {}).get("appInstanceId")
            adjacent = []
            for reg in self.ams_regs.values():
                app = (reg.get("serviceConsumerId") or {}).get("appInstanceId")
                if app and app != own:
                    adjacent.append({"appInstanceId": app, "commInterface": {"ipAddresses": []}})
            self._send(sub, {"notificationType": "AdjacentAppInfoNotification", "timeStamp": self.ts(),
                             "adjacentAppInfo": adjacent, "_links": {"subscription": {"href": sub["_url"]}}})


# ==================================================================== request handling

def _parse_query(op: Op, request: web.Request) -> dict:
    known = {p.name: p for p in op.query}
    out: dict = {}
    keys = list(dict.fromkeys(request.query.keys()))
    for key in keys:  # unknown names first: they are the likelier mistake
        if key not in known:
            raise Problem(400, f"unknown query parameter '{key}'" +
                          (f"; allowed: {', '.join(sorted(known))}" if known else "; this resource takes none"))
    for key in keys:
        p = known[key]
        raw = request.query.getall(key)
        values = [v for item in raw for v in item.split(",")] if p.array else raw
        if not p.array and len(values) > 1:
            raise Problem(400, f"query parameter '{key}' given more than once")
        conv = []
        for v in values:
            if p.type == "integer":
                try:
                    v = int(v)
                except ValueError:
                    raise Problem(400, f"query parameter '{key}': {v!r} is not an integer") from None
            elif p.type == "number":
                try:
                    v = float(v)
                except ValueError:
                    raise Problem(400, f"query parameter '{key}': {v!r} is not a number") from None
                if not math.isfinite(v):
                    raise Problem(400, f"query parameter '{key}': {v!r} is not a finite number")
            elif v == "":
                raise Problem(400, f"query parameter '{key}' is empty")
            if p.enum and v not in p.enum:
                raise Problem(400, f"query parameter '{key}': {v!r} is not one of {list(p.enum)}")
            if p.minimum is not None and v < p.minimum or p.maximum is not None and v > p.maximum:
                raise Problem(400, f"query parameter '{key}': {v!r} is out of range [{p.minimum}, {p.maximum}]")
            conv.append(v)
        out[key] = conv if p.array else conv[0]
    for p in op.query:
        if p.required and p.name not in out:
            raise Problem(400, f"query parameter '{p.name}' is required")
    return out


async def _body(request: web.Request) -> dict:
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Problem(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise Problem(400, "request body must be a JSON object")
    return data


def _callback(body: dict, field: str = "callbackReference") -> str:
    ref = body.get(field)
    url = ref.get("notifyURL") if isinstance(ref, dict) else ref
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise Problem(400, f"'{field}' must carry an http(s) URL"
                           + (" in 'notifyURL'" if field == "callbackReference" and isinstance(ref, dict) else ""))
    return url


class Handlers:
    def __init__(self, sb: Sandbox):
        self.sb = sb

    # ------------------------------------------------------------ location queries
    async def users(self, request, q):
        sb = self.sb
        if not q:
            version = sb.mobility.version
            if sb._users_cache is None or sb._users_cache[0] != version:
                body = {"userList": {"user": [sb.user_info(request, n) for n in sb.scenario.ues],
                                     "resourceURL": sb.url(request, f"{LOC}/queries/users")}}
                sb._users_cache = (version, json.dumps(body, separators=(",", ":")).encode())
            return web.Response(body=sb._users_cache[1], content_type="application/json")
        for zone in q.get("zoneId", []):
            if zone not in sb.scenario.zones:
                raise Problem(404, f"zone '{zone}' not found")
        for poa in q.get("accessPointId", []):
            if poa not in sb.scenario.poas:
                raise Problem(404, f"access point '{poa}' not found")
        for addr in q.get("address", []):
            if addr not in sb.scenario.ues:
                raise Problem(404, f"user '{addr}' not found")
        users = []
        for name, st in sb.mobility.states.items():
            if "zoneId" in q and st.zone not in q["zoneId"]:
                continue
            if "accessPointId" in q and st.poa not in q["accessPointId"]:
                continue
            if "address" in q and name not in q["address"]:
                continue
            users.append(sb.user_info(request, name))
        return _json({"userList": {"user": users, "resourceURL": sb.url(request, f"{LOC}/queries/users")}})

    async def zones(self, request, q):
        per_zone, _ = self.sb.counts()
        return _json({"zoneList": {"zone": [self.sb.zone_info(request, z, per_zone) for z in self.sb.scenario.zones],
                                   "resourceURL": self.sb.url(request, f"{LOC}/queries/zones")}})

    def _zone(self, request) -> str:
        zone = request.match_info["zoneId"]
        if zone not in self.sb.scenario.zones:
            raise Problem(404, f"zone '{zone}' not found")
        return zone

    async def zone(self, request, q):
        per_zone, _ = self.sb.counts()
        return _json({"zoneInfo": self.sb.zone_info(request, self._zone(request), per_zone)})

    async def access_points(self, request, q):
        zone = self._zone(request)
        _, per_poa = self.sb.counts()
        aps = [self.sb.poa_info(request, p.name, per_poa) for p in self.sb.scenario.zone_poas(zone)]
        if "interestRealm" in q:
            aps = [a for a in aps if a["interestRealm"] == q["interestRealm"]]
        return _json({"accessPointList": {"zoneId": zone, "accessPoint": aps,
                                          "resourceURL": self.sb.url(request, f"{LOC}/queries/zones/{zone}/accessPoints")}})

    async def access_point(self, request, q):
        zone = self._zone(request)
        ap = request.match_info["accessPointId"]
        poa = self.sb.scenario.poas.get(ap)
        if poa is None or poa.zone != zone:
            raise Problem(404, f"access point '{ap}' not found in zone '{zone}'")
        _, per_poa = self.sb.counts()
        return _json({"accessPointInfo": self.sb.poa_info(request, ap, per_poa)})

    async def distance(self, request, q):
        sb = self.sb
        addrs = q["address"]
        for a in addrs:
            if a not in sb.scenario.ues:
                raise Problem(404, f"user '{a}' not found")
        has_point = "latitude" in q or "longitude" in q
        if has_point and ("latitude" not in q or "longitude" not in q):
            raise Problem(400, "'latitude' and 'longitude' go together")
        if len(addrs) == 2 and not has_point:
            (lon1, lat1), (lon2, lat2) = sb.mobility.lonlat(addrs[0]), sb.mobility.lonlat(addrs[1])
        elif len(addrs) == 1 and has_point:
            (lon1, lat1), (lon2, lat2) = sb.mobility.lonlat(addrs[0]), (q["longitude"], q["latitude"])
        else:
            raise Problem(400, "give two 'address' values, or one 'address' with 'latitude' and 'longitude'")
        return _json({"terminalDistance": {"distance": round(haversine_m(lon1, lat1, lon2, lat2)),
                                           "timestamp": sb.ts()}})

    # ------------------------------------------------------------ location subscriptions
    def _loc_validate(self, kind: str, body: dict) -> dict:
        key = f"{kind}Subscription"
        sub = body.get(key)
        if not isinstance(sub, dict):
            raise Problem(400, f"request body must be {{\"{key}\": {{...}}}}")
        _callback(sub)
        crit = sub.get("userEventCriteria")
        if crit is not None and (not isinstance(crit, list) or any(c not in EVENTS for c in crit)):
            raise Problem(400, f"'userEventCriteria' must be a list of {list(EVENTS)}")
        if kind == "userTracking":
            if sub.get("address") not in self.sb.scenario.ues:
                raise Problem(400, f"'address' must name a user of the scenario, got {sub.get('address')!r}")
        else:
            if sub.get("zoneId") not in self.sb.scenario.zones:
                raise Problem(400, f"'zoneId' must name a zone of the scenario, got {sub.get('zoneId')!r}")
        if kind == "zoneStatus":
            thresholds = [sub.get("numberOfUsersZoneThreshold"), sub.get("numberOfUsersAPThreshold")]
            if all(t is None for t in thresholds):
                raise Problem(400, "give 'numberOfUsersZoneThreshold' and/or 'numberOfUsersAPThreshold'")
            for t in thresholds:
                if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 0):
                    raise Problem(400, "thresholds must be non-negative integers")
        return sub

    def _store(self, store: dict, body: dict, url: str, notify: str, sid: str | None = None) -> dict:
        sid = sid or str(next(self.sb.ids))
        entry = {"_id": sid, "_url": url.format(id=sid), "_notify": notify, "body": body}
        store[sid] = entry
        return entry

    async def loc_sub_list(self, request, q, kind):
        subs = [dict(s["body"], resourceURL=s["_url"]) for s in self.sb.loc_subs[kind].values()]
        return _json({"notificationSubscriptionList": {
            f"{kind}Subscription": subs, "resourceURL": self.sb.url(request, f"{LOC}/subscriptions/{kind}")}})

    async def loc_sub_create(self, request, q, kind):
        sub = self._loc_validate(kind, await _body(request))
        entry = self._store(self.sb.loc_subs[kind], sub, self.sb.url(request, f"{LOC}/subscriptions/{kind}/{{id}}"),
                            _callback(sub))
        out = dict(sub, resourceURL=entry["_url"])
        return _json({f"{kind}Subscription": out}, 201, {"Location": entry["_url"]})

    def _loc_get(self, request, kind) -> dict:
        sid = request.match_info["subscriptionId"]
        entry = self.sb.loc_subs[kind].get(sid)
        if entry is None:
            raise Problem(404, f"{kind} subscription '{sid}' not found")
        return entry

    async def loc_sub_get(self, request, q, kind):
        e = self._loc_get(request, kind)
        return _json({f"{kind}Subscription": dict(e["body"], resourceURL=e["_url"])})

    async def loc_sub_put(self, request, q, kind):
        e = self._loc_get(request, kind)
        sub = self._loc_validate(kind, await _body(request))
        e["body"], e["_notify"] = sub, _callback(sub)
        return _json({f"{kind}Subscription": dict(sub, resourceURL=e["_url"])})

    async def loc_sub_delete(self, request, q, kind):
        e = self._loc_get(request, kind)
        del self.sb.loc_subs[kind][e["_id"]]
        return web.Response(status=204)

    # ------------------------------------------------------------ RNI
    def _rni_filter(self, q) -> tuple[set | None, set | None]:
        cells = set(q["cell_id"]) if "cell_id" in q else None
        ues = set(q["ue_ipv4_address"]) if "ue_ipv4_address" in q else None
        for ue in ues or ():
            if ue not in self.sb.scenario.ues:
                raise Problem(404, f"user '{ue}' not found")
        if cells is not None:
            known = {p.cell_id for p in self.sb.scenario.poas.values() if p.cell_id}
            missing = sorted(cells - known)
            if missing:
                raise Problem(404, f"cell(s) {missing} not found")
        return cells, ues

    def _ues_by_4g_cell(self, cells, ues) -> dict[str, list[str]]:
        by_cell: dict[str, list[str]] = {}
        for name, st in self.sb.mobility.states.items():
            if not st.poa or self.sb.scenario.poas[st.poa].kind != "4g":
                continue
            if ues is not None and name not in ues:
                continue
            if cells is not None and self.sb.scenario.poas[st.poa].cell_id not in cells:
                continue
            by_cell.setdefault(st.poa, []).append(name)
        return by_cell

    async def rab_info(self, request, q):
        cells, ues = self._rni_filter(q)
        if q.get("erab_id", 1) != 1 or q.get("qci", 80) != 80:
            by_cell = {}
        else:
            by_cell = self._ues_by_4g_cell(cells, ues)
        info = [{"ecgi": self.sb.ecgi(poa), "ueInfo": [
            {"associateId": [{"type": 1, "value": ue}],
             "erabInfo": [{"erabId": 1, "erabQosParameters": {"qci": 80}}]} for ue in members]}
            for poa, members in sorted(by_cell.items())]
        body = {"timeStamp": self.sb.ts(), "requestId": str(next(self.sb.ids)), "cellUserInfo": info}
        if "app_ins_id" in q:
            body["appInstanceId"] = q["app_ins_id"]
        return _json(body)

    async def plmn_info(self, request, q):
        plmn = {"mcc": self.sb.scenario.mcc, "mnc": self.sb.scenario.mnc}
        return _json([{"appInstanceId": app, "plmn": [plmn], "timeStamp": self.sb.ts()} for app in q["app_ins_id"]])

    async def layer2_meas(self, request, q):
        cells, ues = self._rni_filter(q)
        by_cell = self._ues_by_4g_cell(cells, ues)
        cell_info, ue_info = [], []
        for poa, members in sorted(by_cell.items()):
            n = len(members)
            cell_info.append({"ecgi": self.sb.ecgi(poa), "dl_gbr_prb_usage_cell": min(100, 10 * n),
                              "ul_gbr_prb_usage_cell": min(100, 5 * n), "dl_nongbr_prb_usage_cell": min(100, 20 * n),
                              "ul_nongbr_prb_usage_cell": min(100, 10 * n), "number_of_active_ue_dl_gbr_cell": n,
                              "number_of_active_ue_ul_gbr_cell": n})
            for ue in members:
                ue_info.append({"ecgi": self.sb.ecgi(poa), "associateId": [{"type": 1, "value": ue}],
                                "dl_gbr_delay_ue": 10, "ul_gbr_delay_ue": 10, "dl_gbr_throughput_ue": 1000,
                                "ul_gbr_throughput_ue": 1000})
        return _json({"timeStamp": self.sb.ts(), "cellInfo": cell_info, "cellUEInfo": ue_info})

    def _rni_validate(self, body: dict) -> dict:
        stype = body.get("subscriptionType")
        if stype != "CellChangeSubscription":
            if isinstance(stype, str) and stype.endswith("Subscription"):
                raise Problem(501, f"subscriptionType '{stype}' is not implemented; only CellChangeSubscription")
            raise Problem(400, "'subscriptionType' must be 'CellChangeSubscription'")
        _callback(body)
        f = body.get("filterCriteriaAssocHo")
        if f is not None and not isinstance(f, dict):
            raise Problem(400, "'filterCriteriaAssocHo' must be an object")
        return body

    def _links(self, body: dict, url: str) -> dict:
        return dict(body, _links={"self": {"href": url}})

    async def rni_sub_list(self, request, q):
        return _json({"_links": {"self": {"href": self.sb.url(request, f"{RNI}/subscriptions")},
                                 "subscription": [{"href": s["_url"], "subscriptionType": s["body"]["subscriptionType"]}
                                                  for s in self.sb.rni_subs.values()]}})

    async def rni_sub_create(self, request, q):
        body = self._rni_validate(await _body(request))
        e = self._store(self.sb.rni_subs, body, self.sb.url(request, f"{RNI}/subscriptions/{{id}}"), _callback(body))
        return _json(self._links(body, e["_url"]), 201, {"Location": e["_url"]})

    def _get(self, store: dict, request, what: str) -> dict:
        sid = request.match_info.get("subscriptionId") or request.match_info.get("appMobilityServiceId")
        e = store.get(sid)
        if e is None:
            raise Problem(404, f"{what} '{sid}' not found")
        return e

    async def rni_sub_get(self, request, q):
        e = self._get(self.sb.rni_subs, request, "subscription")
        return _json(self._links(e["body"], e["_url"]))

    async def rni_sub_put(self, request, q):
        e = self._get(self.sb.rni_subs, request, "subscription")
        body = self._rni_validate(await _body(request))
        e["body"], e["_notify"] = body, _callback(body)
        return _json(self._links(body, e["_url"]))

    async def rni_sub_delete(self, request, q):
        e = self._get(self.sb.rni_subs, request, "subscription")
        del self.sb.rni_subs[e["_id"]]
        return web.Response(status=204)

    # ------------------------------------------------------------ AMS
    def _reg_validate(self, body: dict) -> dict:
        consumer = body.get("serviceConsumerId")
        if not isinstance(consumer, dict) or not (consumer.get("appInstanceId") or consumer.get("mepId")):
            raise Problem(400, "'serviceConsumerId' must hold 'appInstanceId' or 'mepId'")
        devices = body.get("deviceInformation") or []
        if not isinstance(devices, list):
            raise Problem(400, "'deviceInformation' must be a list")
        for i, dev in enumerate(devices):
            aid = dev.get("associateId") if isinstance(dev, dict) else None
            if not isinstance(aid, dict) or not isinstance(aid.get("value"), str):
                raise Problem(400, f"deviceInformation[{i}].associateId must be {{\"type\": ..., \"value\": <UE address>}}")
            if aid["value"] not in self.sb.scenario.ues:
                raise Problem(400, f"deviceInformation[{i}].associateId.value: no user '{aid['value']}' in the scenario")
            state = dev.get("contextTransferState", "NOT_TRANSFERRED")
            if state not in CONTEXT_STATES:
                raise Problem(400, f"deviceInformation[{i}].contextTransferState must be one of {list(CONTEXT_STATES)}")
            dev.setdefault("contextTransferState", "NOT_TRANSFERRED")
            dev.setdefault("appMobilityServiceLevel", "APP_MOBILITY_WITH_CONFIRMATION")
        return body

    async def ams_reg_list(self, request, q):
        return _json([e["body"] for e in self.sb.ams_regs.values()])

    async def ams_reg_create(self, request, q):
        body = self._reg_validate(await _body(request))
        sid = str(next(self.sb.ids))
        body["appMobilityServiceId"] = sid
        url = self.sb.url(request, f"{AMS}/app_mobility_services/{sid}")
        self.sb.ams_regs[sid] = body
        self.sb._adjacent_apps()
        return _json(body, 201, {"Location": url})

    def _reg(self, request) -> tuple[str, dict]:
        sid = request.match_info["appMobilityServiceId"]
        if sid not in self.sb.ams_regs:
            raise Problem(404, f"registration '{sid}' not found")
        return sid, self.sb.ams_regs[sid]

    async def ams_reg_get(self, request, q):
        return _json(self._reg(request)[1])

    async def ams_reg_put(self, request, q):
        sid, old = self._reg(request)
        body = self._reg_validate(await _body(request))
        body["appMobilityServiceId"] = sid
        before = {(d["associateId"]["value"]): d.get("contextTransferState") for d in old.get("deviceInformation") or []}
        self.sb.ams_regs[sid] = body
        for dev in body.get("deviceInformation") or []:
            ue, state = dev["associateId"]["value"], dev.get("contextTransferState")
            if state == before.get(ue) or state == "NOT_TRANSFERRED":
                continue
            move = self.sb.pending_moves.pop((sid, ue), None)
            if move is None:
                continue  # nothing in flight for this UE: a state report without a move
            status = "INTERHOST_MOVEOUT_COMPLETED" if state == "USER_CONTEXT_TRANSFER_COMPLETED" \
                else "INTERHOST_MOVEOUT_FAILED"
            self.sb._mobility_notification(body, ue, status, move, None)
        return _json(body)

    async def ams_reg_delete(self, request, q):
        sid, _ = self._reg(request)
        del self.sb.ams_regs[sid]
        for key in [k for k in self.sb.pending_moves if k[0] == sid]:
            del self.sb.pending_moves[key]
        self.sb._adjacent_apps()
        return web.Response(status=204)

    async def ams_reg_deregister(self, request, q):
        return await self.ams_reg_delete(request, q)

    def _ams_validate(self, body: dict) -> dict:
        stype = body.get("subscriptionType")
        if stype not in ("MobilityProcedureSubscription", "AdjacentAppInfoSubscription"):
            raise Problem(400, "'subscriptionType' must be 'MobilityProcedureSubscription' or "
                               "'AdjacentAppInfoSubscription'")
        _callback(body)
        f = body.get("filterCriteria", {})
        if not isinstance(f, dict):
            raise Problem(400, "'filterCriteria' must be an object")
        statuses = f.get("mobilityStatus")
        if statuses is not None and (not isinstance(statuses, list) or any(s not in MOBILITY_STATUSES for s in statuses)):
            raise Problem(400, f"'filterCriteria.mobilityStatus' must be a list of {list(MOBILITY_STATUSES)}")
        return body

    async def ams_sub_list(self, request, q):
        wanted = {"mobility_proc": "MobilityProcedureSubscription",
                  "adj_app_info": "AdjacentAppInfoSubscription"}.get(q.get("subscriptionType", ""))
        subs = [{"href": s["_url"], "subscriptionType": s["body"]["subscriptionType"]}
                for s in self.sb.ams_subs.values() if wanted in (None, s["body"]["subscriptionType"])]
        return _json({"_links": {"self": {"href": self.sb.url(request, f"{AMS}/subscriptions")}},
                      "subscription": subs})

    async def ams_sub_create(self, request, q):
        body = self._ams_validate(await _body(request))
        e = self._store(self.sb.ams_subs, body, self.sb.url(request, f"{AMS}/subscriptions/{{id}}"), _callback(body))
        return _json(self._links(body, e["_url"]), 201, {"Location": e["_url"]})

    async def ams_sub_get(self, request, q):
        e = self._get(self.sb.ams_subs, request, "subscription")
        return _json(self._links(e["body"], e["_url"]))

    async def ams_sub_put(self, request, q):
        e = self._get(self.sb.ams_subs, request, "subscription")
        body = self._ams_validate(await _body(request))
        e["body"], e["_notify"] = body, _callback(body)
        return _json(self._links(body, e["_url"]))

    async def ams_sub_delete(self, request, q):
        e = self._get(self.sb.ams_subs, request, "subscription")
        del self.sb.ams_subs[e["_id"]]
        return web.Response(status=204)

    # ------------------------------------------------------------ control
    def _clock_body(self) -> dict:
        sb = self.sb
        return {"simTime": round(sb.mobility.time, 6), "speed": sb.clock.speed, "step": sb.mobility.step,
                "epoch": sb.clock.epoch, "timestamp": sb.ts()}

    async def ctrl_clock(self, request, q):
        return _json(self._clock_body())

    async def ctrl_clock_set(self, request, q):
        body = await _body(request)
        now = self.sb.mobility.time
        if "advanceBy" in body:
            value = body["advanceBy"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or value > 86400:
                raise Problem(400, "'advanceBy' must be a number of seconds in [0, 86400]")
            target = now + value
        elif "simTime" in body:
            value = body["simTime"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not now <= value <= now + 86400:
                raise Problem(400, f"'simTime' must be a number in [{now}, {now + 86400}] (the clock only moves ahead)")
            target = value
        else:
            raise Problem(400, "give 'advanceBy' (seconds) or 'simTime'")
        changes = self.sb.mobility.advance_to(target)
        self.sb.clock.jump(max(target, self.sb.mobility.time))
        return _json(dict(self._clock_body(), changes=len(changes)))

    async def ctrl_ues(self, request, q):
        out = []
        for name, st in self.sb.mobility.states.items():
            if "address" in q and name not in q["address"]:
                continue
            lon, lat = self.sb.mobility.lonlat(name)
            out.append({"address": name, "accessPointId": st.poa, "zoneId": st.zone, "cellId": st.cell,
                        "mecHost": st.host, "longitude": round(lon, 6), "latitude": round(lat, 6)})
        return _json({"simTime": self.sb.mobility.time, "ues": out})

    async def ctrl_placement(self, request, q):
        return _json({"placement": self.sb.placement.mode, "hosts": self.sb.placement.hosts(),
                      "zoneToHost": self.sb.placement.zone_to_host})

    async def ctrl_notifications(self, request, q):
        return _json(dict(self.sb.notifier.stats))

    async def not_implemented(self, request, q):
        raise Problem(501, f"{request.method} {request.path} is not implemented by this sandbox")


def _make_handler(handlers: Handlers, op: Op):
    name, _, arg = op.handler.partition(":")
    fn = getattr(handlers, name)
    required = any(p.required for p in op.query)

    async def handle(request: web.Request) -> web.StreamResponse:
        mep = request.match_info.get("mep")
        if mep is not None and mep not in handlers.sb.placement.hosts() and mep not in handlers.sb.scenario.edge_hosts:
            raise Problem(404, f"MEC platform '{mep}' not found")
        handlers.sb.sync()
        q = _parse_query(op, request) if request.query_string or required else {}
        return await (fn(request, q, arg) if arg else fn(request, q))
    return handle


@web.middleware
async def problem_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except Problem as p:
        return problem_response(p.status, p.title, p.detail, request.path)
    except web.HTTPException as exc:
        if exc.status >= 400:
            detail = {404: f"no resource at {request.path}",
                      405: f"method {request.method} is not allowed on {request.path}"}.get(exc.status, exc.reason)
            return problem_response(exc.status, exc.reason, detail, request.path)
        raise
    except Exception:  # a bug: answer ProblemDetails, keep the trace in the log
        LOG.exception("%s %s failed", request.method, request.path)
        return problem_response(500, "Internal Server Error", "the sandbox failed on this request; see its log",
                                request.path)


def build_app(sb: Sandbox) -> web.Application:
    app = web.Application(middlewares=[problem_middleware])
    handlers = Handlers(sb)
    app["sandbox"] = sb
    doc = json.dumps(openapi_document(sb.base, __version__), indent=1).encode()

    async def openapi(request):
        return web.Response(body=doc, content_type="application/json")

    app.router.add_get(f"{sb.base}/openapi.json", openapi)
    for op in OPERATIONS:
        h = _make_handler(handlers, op)
        app.router.add_route(op.method, sb.base + op.path, h)
        if op.tag != "sandbox-ctrl":
            app.router.add_route(op.method, f"{sb.base}/{{mep}}{op.path}", h)

    async def on_startup(app):
        await sb.notifier.start()
        if sb.epoch_from_start:  # simulated time 0 = now, so timestamps match the wall clock at speed 1
            sb.clock.epoch = time.time() - sb.mobility.time
        if sb.clock.speed > 0:
            sb.clock.jump(sb.mobility.time)
            sb._ticker = asyncio.get_running_loop().create_task(sb.run_ticker())

    async def on_cleanup(app):
        if sb._ticker:
            sb._ticker.cancel()
            await asyncio.gather(sb._ticker, return_exceptions=True)
        await sb.notifier.close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app
