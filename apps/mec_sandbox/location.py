"""Location API, ETSI GS MEC 013 (location/v2) as AdvantEDGE 1.9.2 serves it: user, zone, access
point and distance queries; userTracking, zonalTraffic and zoneStatus subscriptions.

MEC 013 v2.1.1 subscriptions carry ``duration`` (seconds; AdvantEDGE stores it and never acts on
it): here a subscription with a positive ``duration`` expires that many seconds after it was created
or replaced; its representation gives the seconds left. The API defines no expiry notification.
"""

from __future__ import annotations

import json
import math

from .core import Sandbox
from .problems import Problem, bytes_response, json_response
from .scenario import haversine_m
from .spec import EVENTS, LOC
from .subscriptions import Subscription, SubscriptionKind

CONNECTION_TYPE = {"4g": "Macro", "5g": "5G", "wifi": "Wifi", "other": "Unknown"}
KINDS = ("userTracking", "zonalTraffic", "zoneStatus")
_DUMPS = json.JSONEncoder(separators=(",", ":")).encode


def cached_per_step(fn):
    """Mark a query handler whose answer depends only on the step, the URL root and the query."""
    fn.cacheable = True
    return fn


class LocationApi:
    def __init__(self, sb: Sandbox):
        self.sb = sb
        for kind in KINDS:
            sb.subs.register(SubscriptionKind(
                name=kind, collection=f"{LOC}/subscriptions/{kind}",
                check=lambda body, kind=kind: self._check(kind, body),
                represent=lambda sub, now, kind=kind: {f"{kind}Subscription": self._represent(sub, now)},
                list_body=lambda subs, url, q, kind=kind: {"notificationSubscriptionList": {
                    f"{kind}Subscription": [self._represent(s, self.sb.now()) for s in subs], "resourceURL": url}},
                deadline=_duration_deadline))
        sb.mobility.listeners.append(self.on_changes)

    # ------------------------------------------------------------ views
    def _user_fragments(self, request) -> dict[str, bytes]:
        """Every UE's userInfo, serialised once per step and URL root."""
        sb = self.sb
        root = sb.root(request)
        cache = sb.cache()
        out = cache.get(("userInfo", root))
        if out is not None:
            return out
        ts = sb.ts()
        prefix = f"{root}{sb.base}/{LOC}/queries/users?address="
        out = {}
        for name, st in sb.mobility.states.items():
            lon, lat = sb.mobility.lonlat(name)
            info = {"address": name, "accessPointId": st.poa or "", "zoneId": st.zone or "",
                    "resourceURL": prefix + name, "timestamp": ts,
                    "locationInfo": {"latitude": [round(lat, 6)], "longitude": [round(lon, 6)], "shape": 2}}
            ue = sb.scenario.ues[name]
            if ue.moving:
                info["locationInfo"]["velocity"] = {"velocityType": 1, "bearing": 0,
                                                    "horizontalSpeed": round(ue.velocity * 3.6)}
            out[name] = _DUMPS(info).encode()
        cache[("userInfo", root)] = out
        return out

    def poa_info(self, request, name: str, per_poa: dict) -> dict:
        p = self.sb.scenario.poas[name]
        return {"accessPointId": name,
                "locationInfo": {"latitude": [p.lat], "longitude": [p.lon], "shape": 2},
                "connectionType": CONNECTION_TYPE[p.kind], "operationStatus": "Serviceable",
                "numberOfUsers": per_poa.get(name, 0), "interestRealm": p.zone,
                "resourceURL": self.sb.url(request, f"{LOC}/queries/zones/{p.zone}/accessPoints/{name}")}

    def zone_info(self, request, zone: str, per_zone: dict) -> dict:
        return {"zoneId": zone, "numberOfAccessPoints": len(self.sb.scenario.zone_poas(zone)),
                "numberOfUnserviceableAccessPoints": 0, "numberOfUsers": per_zone.get(zone, 0),
                "resourceURL": self.sb.url(request, f"{LOC}/queries/zones/{zone}")}

    # ------------------------------------------------------------ queries
    @cached_per_step
    async def users(self, request, q):
        sb = self.sb
        scenario = sb.scenario
        for zone in q.get("zoneId", []):
            if zone not in scenario.zones:
                raise Problem(404, f"zone '{zone}' not found")
        for poa in q.get("accessPointId", []):
            if poa not in scenario.poas:
                raise Problem(404, f"access point '{poa}' not found")
        for addr in q.get("address", []):
            if addr not in scenario.ues:
                raise Problem(404, f"user '{addr}' not found")
        ix = sb.index()
        selected: set[str] | None = None  # AND of the filters; None = everyone
        for key, groups in (("zoneId", ix.by_zone), ("accessPointId", ix.by_poa)):
            if key in q:
                found = {n for g in q[key] for n in groups.get(g, ())}
                selected = found if selected is None else selected & found
        if "address" in q:
            selected = set(q["address"]) if selected is None else selected & set(q["address"])
        fragments = self._user_fragments(request)
        names = fragments.keys() if selected is None else sorted(selected, key=ix.order.__getitem__)
        url = _DUMPS(sb.url(request, f"{LOC}/queries/users")).encode()
        return bytes_response(b'{"userList":{"user":[' + b",".join(fragments[n] for n in names)
                              + b'],"resourceURL":' + url + b"}}")

    @cached_per_step
    async def zones(self, request, q):
        per_zone, _ = self.sb.counts()
        return json_response({"zoneList": {
            "zone": [self.zone_info(request, z, per_zone) for z in self.sb.scenario.zones],
            "resourceURL": self.sb.url(request, f"{LOC}/queries/zones")}})

    def _zone(self, request) -> str:
        zone = request.match_info["zoneId"]
        if zone not in self.sb.scenario.zones:
            raise Problem(404, f"zone '{zone}' not found")
        return zone

    @cached_per_step
    async def zone(self, request, q):
        per_zone, _ = self.sb.counts()
        return json_response({"zoneInfo": self.zone_info(request, self._zone(request), per_zone)})

    @cached_per_step
    async def access_points(self, request, q):
        zone = self._zone(request)
        _, per_poa = self.sb.counts()
        aps = [self.poa_info(request, p.name, per_poa) for p in self.sb.scenario.zone_poas(zone)]
        if "interestRealm" in q:
            aps = [a for a in aps if a["interestRealm"] == q["interestRealm"]]
        return json_response({"accessPointList": {
            "zoneId": zone, "accessPoint": aps,
            "resourceURL": self.sb.url(request, f"{LOC}/queries/zones/{zone}/accessPoints")}})

    @cached_per_step
    async def access_point(self, request, q):
        zone = self._zone(request)
        ap = request.match_info["accessPointId"]
        poa = self.sb.scenario.poas.get(ap)
        if poa is None or poa.zone != zone:
            raise Problem(404, f"access point '{ap}' not found in zone '{zone}'")
        _, per_poa = self.sb.counts()
        return json_response({"accessPointInfo": self.poa_info(request, ap, per_poa)})

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
        return json_response({"terminalDistance": {"distance": round(haversine_m(lon1, lat1, lon2, lat2)),
                                                   "timestamp": sb.ts()}})

    # ------------------------------------------------------------ subscriptions
    def _check(self, kind: str, body: dict) -> tuple[dict, object, str]:
        key = f"{kind}Subscription"
        sub = body.get(key)
        if not isinstance(sub, dict):
            raise Problem(400, f"request body must be {{\"{key}\": {{...}}}}")
        sub = {k: v for k, v in sub.items() if k != "resourceURL"}
        ref = sub.get("callbackReference")
        if not isinstance(ref, dict):
            raise Problem(400, "'callbackReference' must be {\"notifyURL\": <http(s) URL>, ...}")
        crit = sub.get("userEventCriteria")
        if crit is not None and (not isinstance(crit, list) or any(c not in EVENTS for c in crit)):
            raise Problem(400, f"'userEventCriteria' must be a list of {list(EVENTS)}")
        if kind == "userTracking":
            if not isinstance(sub.get("address"), str) or sub["address"] not in self.sb.scenario.ues:
                raise Problem(400, f"'address' must name a user of the scenario, got {sub.get('address')!r}")
        elif not isinstance(sub.get("zoneId"), str) or sub["zoneId"] not in self.sb.scenario.zones:
            raise Problem(400, f"'zoneId' must name a zone of the scenario, got {sub.get('zoneId')!r}")
        if kind == "zoneStatus":
            thresholds = [sub.get("numberOfUsersZoneThreshold"), sub.get("numberOfUsersAPThreshold")]
            if all(t is None for t in thresholds):
                raise Problem(400, "give 'numberOfUsersZoneThreshold' and/or 'numberOfUsersAPThreshold'")
            for t in thresholds:
                if t is not None and (isinstance(t, bool) or not isinstance(t, int) or t < 0):
                    raise Problem(400, "thresholds must be non-negative integers")
        duration = sub.get("duration")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int) or duration < 0):
            raise Problem(400, "'duration' must be a non-negative integer number of seconds")
        return sub, ref.get("notifyURL"), "callbackReference.notifyURL"

    @staticmethod
    def _represent(sub: Subscription, now: float) -> dict:
        out = dict(sub.body, resourceURL=sub.url)
        if sub.expires_at is not None:
            out["duration"] = max(1, math.ceil(sub.expires_at - now))
        return out

    # ------------------------------------------------------------ events -> notifications
    def on_changes(self, changes) -> None:
        subs = self.sb.subs
        if subs.has("zonalTraffic") or subs.has("userTracking"):
            for c in changes:
                self._location_events(c)
        if subs.has("zoneStatus"):
            self._zone_status(changes)

    def _presence(self, sub: Subscription, c, event: str, zone: str, current, previous) -> None:
        body = sub.body
        criteria = body.get("userEventCriteria") or EVENTS
        if event not in criteria:
            return
        note = {"zoneId": zone, "address": c.ue, "userEventType": event, "currentAccessPointId": current or "",
                "timestamp": self.sb.ts(c.t),
                "link": [{"rel": f"{sub.kind.name}Subscription", "href": sub.url}]}
        if previous:
            note["previousAccessPointId"] = previous
        if body.get("interestRealm"):
            note["interestRealm"] = body["interestRealm"]
        if body["callbackReference"].get("callbackData"):
            note["callbackData"] = body["callbackReference"]["callbackData"]
        self.sb.subs.send(sub, {"zonalPresenceNotification": note}, c.ue, self.sb.at(c.t))

    def _location_events(self, c) -> None:
        events = []
        if c.old_zone != c.new_zone:
            if c.old_zone:
                events.append(("Leaving", c.old_zone, c.old_poa, None))
            if c.new_zone:
                events.append(("Entering", c.new_zone, c.new_poa, c.old_poa))
        elif c.old_poa != c.new_poa and c.new_zone:
            events.append(("Transferring", c.new_zone, c.new_poa, c.old_poa))
        if not events:
            return
        zonal, tracking = self.sb.subs.of("zonalTraffic"), self.sb.subs.of("userTracking")
        for event, zone, current, previous in events:
            for sub in zonal:
                if sub.body["zoneId"] == zone:
                    self._presence(sub, c, event, zone, current, previous)
            for sub in tracking:
                if sub.body["address"] == c.ue:
                    self._presence(sub, c, event, zone, current, previous)

    def _zone_status(self, changes) -> None:
        per_zone, per_poa = self.sb.counts()
        touched_zones = {z for c in changes for z in (c.old_zone, c.new_zone) if z}
        touched_poas = {p for c in changes for p in (c.old_poa, c.new_poa) if p}
        t = changes[-1].t
        for sub in self.sb.subs.of("zoneStatus"):
            body = sub.body
            zone = body["zoneId"]
            base = {"zoneId": zone, "timestamp": self.sb.ts(t),
                    "link": [{"rel": "zoneStatusSubscription", "href": sub.url}]}
            if body["callbackReference"].get("callbackData"):
                base["callbackData"] = body["callbackReference"]["callbackData"]
            zt = body.get("numberOfUsersZoneThreshold")
            if zt is not None and zone in touched_zones and per_zone.get(zone, 0) >= zt:
                self.sb.subs.send(sub, {"zoneStatusNotification": {
                    **base, "numberOfUsersInZone": per_zone[zone]}}, zone, self.sb.at(t))
            at = body.get("numberOfUsersAPThreshold")
            if at is not None:
                for poa in sorted(touched_poas):
                    if self.sb.scenario.poas[poa].zone == zone and per_poa.get(poa, 0) >= at:
                        self.sb.subs.send(sub, {"zoneStatusNotification": {
                            **base, "accessPointId": poa, "numberOfUsersInAP": per_poa[poa]}}, zone, self.sb.at(t))


def _duration_deadline(body: dict, now: float) -> float | None:
    duration = body.get("duration")
    return now + duration if duration else None
