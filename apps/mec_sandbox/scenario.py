"""AdvantEDGE scenario loading and geometry.

A scenario is AdvantEDGE's JSON: ``deployment.domains[].zones[].networkLocations[]`` are points of
access (POA-4G, POA-5G, POA-WIFI) with ``geoData.location`` ([lon, lat]) and ``geoData.radius`` (m);
their ``physicalLocations[]`` hold UEs (``geoData.path`` a GeoJSON LineString, ``velocity`` m/s,
``eopMode`` LOOP or REVERSE) and EDGE/FOG nodes (MEC hosts).

Every structural problem raises :class:`ScenarioError` naming the file and the JSON field, so that a
malformed scenario fails at startup with a message a user can act on.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

EARTH_RADIUS_M = 6371008.8
POA_TYPES = {"POA-4G": "4g", "POA-5G": "5g", "POA-WIFI": "wifi", "POA": "other"}
DEFAULT_PRIORITY = ("wifi", "5g", "4g", "other")
SCENARIO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")
DEFAULT_SCENARIO = os.path.join(SCENARIO_DIR, "4g-5g-wifi-macro.json")


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the file and the field."""

    def __init__(self, source: str, field_path: str, problem: str):
        self.source = source
        self.field_path = field_path
        self.problem = problem
        super().__init__(f"{source}: field '{field_path}': {problem}")


@dataclass
class Poa:
    name: str
    kind: str  # 4g | 5g | wifi | other
    zone: str
    lon: float
    lat: float
    radius: float
    cell_id: str | None = None
    mac_id: str | None = None
    x: float = 0.0
    y: float = 0.0


@dataclass
class EdgeHost:
    name: str
    zone: str
    lon: float
    lat: float


@dataclass
class Ue:
    name: str
    mac_id: str | None
    lon: float
    lat: float
    velocity: float = 0.0
    eop_mode: str = "LOOP"
    path_lonlat: list[tuple[float, float]] = field(default_factory=list)
    priority: tuple[str, ...] = DEFAULT_PRIORITY
    time_offset: float = 0.0  # seconds of travel already done at simulated time 0 (clones)
    # filled by Geometry
    path_xy: list[tuple[float, float]] = field(default_factory=list)
    home_xy: tuple[float, float] = (0.0, 0.0)
    cum: list[float] = field(default_factory=list)

    @property
    def moving(self) -> bool:
        return self.velocity > 0 and len(self.path_xy) >= 2 and self.cum[-1] > 0

    @property
    def path_length(self) -> float:
        return self.cum[-1] if self.cum else 0.0


@dataclass
class Scenario:
    name: str
    source: str
    mcc: str
    mnc: str
    zones: list[str]
    poas: dict[str, Poa]
    ues: dict[str, Ue]
    edge_hosts: dict[str, EdgeHost]
    lon0: float = 0.0
    lat0: float = 0.0

    # --- local planar projection (equirectangular around the scenario's centre) ---
    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        k = math.pi / 180.0 * EARTH_RADIUS_M
        return ((lon - self.lon0) * k * math.cos(math.radians(self.lat0)), (lat - self.lat0) * k)

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        k = math.pi / 180.0 * EARTH_RADIUS_M
        return (self.lon0 + x / (k * math.cos(math.radians(self.lat0))), self.lat0 + y / k)

    def zone_poas(self, zone: str) -> list[Poa]:
        return [p for p in self.poas.values() if p.zone == zone]


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class _Reader:
    """Typed access to nested JSON that reports the field path on error."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, path: str, problem: str) -> ScenarioError:
        return ScenarioError(self.source, path, problem)

    def obj(self, value: Any, path: str) -> dict:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        return value

    def lst(self, value: Any, path: str, allow_null: bool = True) -> list:
        if value is None and allow_null:
            return []
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list, got {type(value).__name__}")
        return value

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(path, "expected a non-empty string")
        return value

    def number(self, value: Any, path: str, minimum: float | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(path, f"expected a number, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {value!r}")
        return float(value)

    def point(self, value: Any, path: str) -> tuple[float, float]:
        coords = self.lst(value, path, allow_null=False)
        if len(coords) < 2:
            raise self.fail(path, "expected [longitude, latitude]")
        lon = self.number(coords[0], f"{path}[0]")
        lat = self.number(coords[1], f"{path}[1]")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise self.fail(path, f"[{lon}, {lat}] is not a valid [longitude, latitude]")
        return lon, lat


def _priority(raw: Any, reader: _Reader, path: str) -> tuple[str, ...]:
    if raw in (None, ""):
        return DEFAULT_PRIORITY
    if not isinstance(raw, str):
        raise reader.fail(path, "expected a comma-separated string such as 'wifi,5g,4g'")
    items = tuple(s.strip().lower() for s in raw.split(",") if s.strip())
    unknown = [s for s in items if s not in DEFAULT_PRIORITY]
    if unknown:
        raise reader.fail(path, f"unknown wireless type(s) {unknown}; allowed {list(DEFAULT_PRIORITY)}")
    return items or DEFAULT_PRIORITY


def parse_scenario(data: Any, source: str = "<scenario>", priority: tuple[str, ...] | None = None) -> Scenario:
    """Build a :class:`Scenario` from AdvantEDGE JSON (already decoded)."""
    r = _Reader(source)
    root = r.obj(data, "$")
    name = root.get("name") or os.path.splitext(os.path.basename(source))[0]
    dep = r.obj(root.get("deployment"), "deployment")
    domains = r.lst(dep.get("domains"), "deployment.domains", allow_null=False)
    mcc, mnc = "001", "001"
    zones: list[str] = []
    poas: dict[str, Poa] = {}
    ues: dict[str, Ue] = {}
    edges: dict[str, EdgeHost] = {}
    for di, dom in enumerate(domains):
        dpath = f"deployment.domains[{di}]"
        dom = r.obj(dom, dpath)
        cfg = dom.get("cellularDomainConfig") or {}
        if isinstance(cfg, dict) and cfg.get("mcc"):
            mcc, mnc = str(cfg.get("mcc")), str(cfg.get("mnc", "001"))
        for zi, zone in enumerate(r.lst(dom.get("zones"), f"{dpath}.zones")):
            zpath = f"{dpath}.zones[{zi}]"
            zone = r.obj(zone, zpath)
            zname = r.string(zone.get("name"), f"{zpath}.name")
            if zone.get("type") == "ZONE":
                zones.append(zname)
            for ni, nl in enumerate(r.lst(zone.get("networkLocations"), f"{zpath}.networkLocations")):
                npath = f"{zpath}.networkLocations[{ni}]"
                nl = r.obj(nl, npath)
                nname = r.string(nl.get("name"), f"{npath}.name")
                ntype = nl.get("type")
                if ntype in POA_TYPES:
                    geo = r.obj(nl.get("geoData"), f"{npath}.geoData")
                    loc = r.obj(geo.get("location"), f"{npath}.geoData.location")
                    lon, lat = r.point(loc.get("coordinates"), f"{npath}.geoData.location.coordinates")
                    radius = r.number(geo.get("radius"), f"{npath}.geoData.radius", minimum=0)
                    cell_id = ((nl.get("poa4GConfig") or {}).get("cellId")
                               or (nl.get("poa5GConfig") or {}).get("cellId"))
                    mac_id = (nl.get("poaWifiConfig") or {}).get("macId")
                    if nname in poas:
                        raise r.fail(f"{npath}.name", f"duplicate point of access '{nname}'")
                    poas[nname] = Poa(nname, POA_TYPES[ntype], zname, lon, lat, radius, cell_id, mac_id)
                for pi, pl in enumerate(r.lst(nl.get("physicalLocations"), f"{npath}.physicalLocations")):
                    ppath = f"{npath}.physicalLocations[{pi}]"
                    pl = r.obj(pl, ppath)
                    pname = r.string(pl.get("name"), f"{ppath}.name")
                    ptype = pl.get("type")
                    if ptype == "UE":
                        ues[pname] = _parse_ue(r, pl, ppath, pname, priority)
                    elif ptype in ("EDGE", "FOG"):
                        geo = pl.get("geoData") or {}
                        loc = geo.get("location") or {}
                        coords = loc.get("coordinates")
                        lon, lat = r.point(coords, f"{ppath}.geoData.location.coordinates") if coords else (0.0, 0.0)
                        edges[pname] = EdgeHost(pname, zname, lon, lat)
    if not poas:
        raise r.fail("deployment.domains[].zones[].networkLocations", "no point of access (POA-4G/5G/WIFI) found")
    for ue_name, ue in ues.items():
        if not ue.path_lonlat and ue.lon == 0 and ue.lat == 0:
            raise r.fail(f"UE {ue_name}.geoData", "neither a location nor a path")
    scenario = Scenario(name, source, mcc, mnc, zones, poas, ues, edges)
    scenario.lon0 = sum(p.lon for p in poas.values()) / len(poas)
    scenario.lat0 = sum(p.lat for p in poas.values()) / len(poas)
    for p in poas.values():
        p.x, p.y = scenario.to_xy(p.lon, p.lat)
    for ue in ues.values():
        _project_ue(scenario, ue)
    return scenario


def _parse_ue(r: _Reader, pl: dict, ppath: str, name: str, priority: tuple[str, ...] | None) -> Ue:
    geo = r.obj(pl.get("geoData") or {}, f"{ppath}.geoData")
    loc = geo.get("location")
    lon = lat = 0.0
    if loc is not None:
        loc = r.obj(loc, f"{ppath}.geoData.location")
        lon, lat = r.point(loc.get("coordinates"), f"{ppath}.geoData.location.coordinates")
    path_pts: list[tuple[float, float]] = []
    if geo.get("path") is not None:
        path = r.obj(geo.get("path"), f"{ppath}.geoData.path")
        if path.get("type") != "LineString":
            raise r.fail(f"{ppath}.geoData.path.type", f"expected 'LineString', got {path.get('type')!r}")
        coords = r.lst(path.get("coordinates"), f"{ppath}.geoData.path.coordinates", allow_null=False)
        path_pts = [r.point(c, f"{ppath}.geoData.path.coordinates[{i}]") for i, c in enumerate(coords)]
    velocity = 0.0
    if geo.get("velocity") is not None:
        velocity = r.number(geo.get("velocity"), f"{ppath}.geoData.velocity", minimum=0)
    eop = geo.get("eopMode") or "LOOP"
    if eop not in ("LOOP", "REVERSE"):
        raise r.fail(f"{ppath}.geoData.eopMode", f"expected LOOP or REVERSE, got {eop!r}")
    prio = priority or _priority(pl.get("wirelessType"), r, f"{ppath}.wirelessType")
    if path_pts and loc is None:
        lon, lat = path_pts[0]
    return Ue(name, pl.get("macId"), lon, lat, velocity, eop, path_pts, prio)


def _project_ue(scenario: Scenario, ue: Ue) -> None:
    ue.path_xy = [scenario.to_xy(lon, lat) for lon, lat in ue.path_lonlat]
    ue.home_xy = scenario.to_xy(ue.lon, ue.lat)
    ue.cum = [0.0]
    for (x1, y1), (x2, y2) in zip(ue.path_xy, ue.path_xy[1:]):
        ue.cum.append(ue.cum[-1] + math.hypot(x2 - x1, y2 - y1))


def load_scenario(path: str | None = None, priority: tuple[str, ...] | None = None) -> Scenario:
    """Read and validate a scenario file (default: the packaged Monaco 4g-5g-wifi-macro)."""
    path = path or DEFAULT_SCENARIO
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ScenarioError(path, "$", f"cannot read file: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ScenarioError(path, "$", f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    return parse_scenario(data, source=path, priority=priority)


def add_clones(scenario: Scenario, total: int) -> None:
    """Add copies of the moving UEs (spread along their paths) until there are ``total`` UEs.

    Clones get addresses 10.200.<n>.<m>; they are deterministic, so a load test with 100 UEs sees the
    same city every time.
    """
    movers = sorted((u for u in scenario.ues.values() if u.moving), key=lambda u: u.name)
    if not movers:
        return
    n = 0
    while len(scenario.ues) < total:
        src = movers[n % len(movers)]
        copy_no = n // len(movers) + 1
        name = f"10.200.{n // 250}.{n % 250 + 1}"
        period = src.path_length / src.velocity
        clone = Ue(name, f"0200{n:08X}", src.lon, src.lat, src.velocity, src.eop_mode, list(src.path_lonlat),
                   src.priority, time_offset=(copy_no * 0.6180339887 * period) % period)
        _project_ue(scenario, clone)
        scenario.ues[name] = clone
        n += 1
