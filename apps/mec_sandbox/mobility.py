"""Mobility, point-of-access selection and MEC host placement in simulated time.

The simulation advances in fixed steps of ``step`` simulated seconds counted from time 0, so the
state at simulated time t depends only on the scenario and t: tests can jump ahead and get the same
result as a run in real time.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from .scenario import Scenario, Ue

PLACEMENTS = ("per-ap", "per-5g", "per-zone", "coverage")


def position_at(ue: Ue, t: float) -> tuple[float, float]:
    """Planar position (x, y in metres) of a UE at simulated time t."""
    if not ue.moving:
        return ue.path_xy[0] if ue.path_xy else ue.home_xy
    length = ue.cum[-1]
    s = ue.velocity * max(0.0, t) + ue.velocity * ue.time_offset
    if ue.eop_mode == "REVERSE":
        s %= 2 * length
        if s > length:
            s = 2 * length - s
    else:
        s %= length
    i = bisect.bisect_right(ue.cum, s) - 1
    i = min(max(i, 0), len(ue.cum) - 2)
    seg = ue.cum[i + 1] - ue.cum[i]
    f = 0.0 if seg <= 0 else (s - ue.cum[i]) / seg
    (x1, y1), (x2, y2) = ue.path_xy[i], ue.path_xy[i + 1]
    return (x1 + f * (x2 - x1), y1 + f * (y2 - y1))


def parse_coverage(spec: str) -> dict[str, str]:
    """'mep1:zone01:zone02/mep2:zone04' -> {zone01: mep1, zone02: mep1, zone04: mep2}."""
    zone_to_host: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in spec.split("/"))):
        items = [s.strip() for s in part.split(":") if s.strip()]
        if len(items) < 2:
            raise ValueError(f"coverage entry {part!r}: expected 'host:zone[:zone...]'")
        for zone in items[1:]:
            zone_to_host[zone] = items[0]
    return zone_to_host


class Placement:
    """Which MEC host serves a UE, given its point of access and zone."""

    def __init__(self, scenario: Scenario, mode: str = "per-zone", coverage: str | None = None):
        if mode not in PLACEMENTS:
            raise ValueError(f"unknown placement {mode!r}; choose one of {', '.join(PLACEMENTS)}")
        self.mode = mode
        self.scenario = scenario
        self.zone_to_host: dict[str, str] = {}
        if mode == "coverage":
            if coverage:
                self.zone_to_host = parse_coverage(coverage)
            else:  # each EDGE node of the scenario covers its own zone
                self.zone_to_host = {h.zone: h.name for h in scenario.edge_hosts.values()}
            unknown = sorted(set(self.zone_to_host) - set(scenario.zones))
            if unknown:
                raise ValueError(f"coverage names unknown zone(s) {unknown}; scenario zones: {scenario.zones}")

    def hosts(self) -> list[str]:
        if self.mode == "per-ap":
            return [f"mep-{p}" for p in self.scenario.poas]
        if self.mode == "per-5g":
            return [f"mep-{p.name}" for p in self.scenario.poas.values() if p.kind == "5g"]
        if self.mode == "per-zone":
            return [f"mep-{z}" for z in self.scenario.zones]
        return sorted(set(self.zone_to_host.values()))

    def host_for(self, poa: str | None, zone: str | None, previous: str | None) -> str | None:
        if poa is None:
            return previous if self.mode == "per-5g" else None
        if self.mode == "per-ap":
            return f"mep-{poa}"
        if self.mode == "per-5g":
            # one host beside each 5G small cell; on WiFi or a macro cell the UE keeps its last host
            return f"mep-{poa}" if self.scenario.poas[poa].kind == "5g" else previous
        if self.mode == "per-zone":
            return f"mep-{zone}"
        return self.zone_to_host.get(zone or "")


@dataclass
class UeState:
    x: float = 0.0
    y: float = 0.0
    poa: str | None = None
    zone: str | None = None
    host: str | None = None
    cell: str | None = None  # last cellular (4G/5G) POA, what RNIS reports
    poa_distance: float = 0.0


@dataclass
class Change:
    """One UE changed point of access (and maybe zone, cell and MEC host) at simulated time t."""
    t: float
    ue: str
    old_poa: str | None
    new_poa: str | None
    old_zone: str | None
    new_zone: str | None
    old_cell: str | None
    new_cell: str | None
    old_host: str | None
    new_host: str | None
    extra: dict = field(default_factory=dict)


def _priority_rank(kind: str, prio: tuple[str, ...]) -> int:
    """AdvantEDGE's getPoaTypePriority: higher is preferred, -1 unsupported."""
    try:
        return len(prio) - prio.index(kind)
    except ValueError:
        return -1


class Mobility:
    """Deterministic stepped simulation of all UEs of a scenario."""

    def __init__(self, scenario: Scenario, placement: Placement, step: float = 0.05):
        if step <= 0:
            raise ValueError("step must be > 0")
        self.scenario = scenario
        self.placement = placement
        self.step = step
        self.k = 0  # number of steps done; simulated time = k * step
        self.version = 0  # bumps whenever any UE position changes (response caches key on it)
        self.listeners: list[Callable[[list[Change]], None]] = []
        self._poas = [(p.name, p.kind, p.zone, p.x, p.y, p.radius * p.radius) for p in scenario.poas.values()]
        self._cell = max(100.0, max(p.radius for p in scenario.poas.values()))
        self._grid: dict[tuple[int, int], list] = {}
        self.states: dict[str, UeState] = {name: UeState() for name in scenario.ues}
        self._update(0.0, initial=True)

    @property
    def time(self) -> float:
        return self.k * self.step

    def advance_to(self, t: float) -> list[Change]:
        """Step until simulated time reaches t (never backwards); return the changes seen."""
        changes: list[Change] = []
        target = math.floor(t / self.step + 1e-9)
        while self.k < target:
            self.k += 1
            changes.extend(self._update(self.k * self.step))
        if changes:
            for listener in self.listeners:
                listener(changes)
        return changes

    def _candidates(self, x: float, y: float) -> list:
        """Points of access whose circle touches the grid cell of (x, y), in scenario order."""
        key = (math.floor(x / self._cell), math.floor(y / self._cell))
        found = self._grid.get(key)
        if found is None:
            x0, y0 = key[0] * self._cell, key[1] * self._cell
            found = []
            for poa in self._poas:
                px, py, r2 = poa[3], poa[4], poa[5]
                dx = max(x0 - px, 0.0, px - (x0 + self._cell))
                dy = max(y0 - py, 0.0, py - (y0 + self._cell))
                if dx * dx + dy * dy <= r2:
                    found.append(poa)
            self._grid[key] = found
        return found

    def _select(self, ue: Ue, st: UeState, x: float, y: float) -> tuple[str | None, float]:
        """AdvantEDGE's POA selection: keep the current POA while in range unless a POA of a more
        preferred type is in range; among those, take the closest."""
        prio = ue.priority
        in_range = []
        for name, kind, _zone, px, py, r2 in self._candidates(x, y):
            d2 = (px - x) ** 2 + (py - y) ** 2
            if d2 <= r2:
                in_range.append((name, kind, d2))
        if not in_range:
            return None, 0.0
        selected, sel_rank, sel_d2, cur_rank = None, -1, 0.0, -1
        for name, kind, d2 in in_range:
            if name == st.poa and _priority_rank(kind, prio) >= 0:
                selected, sel_rank, sel_d2, cur_rank = name, _priority_rank(kind, prio), d2, _priority_rank(kind, prio)
        for name, kind, d2 in in_range:
            rank = _priority_rank(kind, prio)
            if rank < 0:
                continue
            if selected is None or rank > sel_rank or (rank == sel_rank and rank > cur_rank and d2 < sel_d2):
                selected, sel_rank, sel_d2 = name, rank, d2
        return selected, math.sqrt(sel_d2)

    def _update(self, t: float, initial: bool = False) -> list[Change]:
        changes = []
        poas = self.scenario.poas
        moved = initial
        for name, ue in self.scenario.ues.items():
            st = self.states[name]
            if ue.moving or initial:
                st.x, st.y = position_at(ue, t)
                moved = True
            else:
                continue
            poa, dist = self._select(ue, st, st.x, st.y)
            st.poa_distance = dist
            if poa == st.poa and not initial:
                continue
            zone = poas[poa].zone if poa else None
            cell = poa if poa and poas[poa].kind in ("4g", "5g") else st.cell
            host = self.placement.host_for(poa, zone, st.host)
            change = Change(t, name, st.poa, poa, st.zone, zone, st.cell, cell, st.host, host)
            st.poa, st.zone, st.cell, st.host = poa, zone, cell, host
            if not initial:
                changes.append(change)
        if moved:
            self.version += 1
        return changes

    def lonlat(self, ue: str) -> tuple[float, float]:
        st = self.states[ue]
        return self.scenario.to_lonlat(st.x, st.y)
