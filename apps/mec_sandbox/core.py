"""The sandbox's shared state: scenario, mobility in simulated time, the clock, the subscription
store, and what the query handlers share per simulation step (indexes and cached answers).

Everything a query answers depends only on the simulation step, the request's URL root (the
``resourceURL`` links are built from the Host the client used, unless ``--public-url`` is set) and
the query itself; so answers are cached per step under (root, operation, query string) and the cache
is dropped when the step changes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiohttp import web

from .callbacks import LOOPBACK, CallbackPolicy, parse_networks
from .mobility import Mobility, Placement
from .notify import Notifier
from .scenario import Scenario
from .subscriptions import SubscriptionStore, timestamp

LOG = logging.getLogger("mec_sandbox")
CACHE_LIMIT = 4096  # answers kept per step; a flood of distinct query strings only resets the cache


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


@dataclass
class StepIndex:
    """Who is where at one simulation step; built once per step, on first use."""
    order: dict[str, int]  # UE -> its rank in the scenario (answers list UEs in that order)
    by_zone: dict[str, list[str]]
    by_poa: dict[str, list[str]]
    per_zone: dict[str, int]
    per_poa: dict[str, int]
    by_4g_poa: dict[str, list[str]]  # 4G access point -> its UEs (what rab_info and layer2_meas report)


class Sandbox:
    """State of one sandbox; the APIs (location, rni, ams) hang their handlers and listeners on it."""

    def __init__(self, scenario: Scenario, placement: Placement, base_path: str = "", speed: float = 1.0,
                 step: float = 0.05, tick: float | None = None, start_epoch: float | None = None,
                 public_url: str = "", notifier: Notifier | None = None,
                 callback_policy: CallbackPolicy | None = None):
        self.scenario = scenario
        self.placement = placement
        self.meps = frozenset(placement.hosts()) | frozenset(scenario.edge_hosts)
        self.base = base_path.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.mobility = Mobility(scenario, placement, step=step)
        self.clock = Clock(speed, time.time() if start_epoch is None else start_epoch)
        self.epoch_from_start = start_epoch is None
        self.tick = tick if tick is not None else step
        self.policy = callback_policy or CallbackPolicy(parse_networks(LOOPBACK))
        self.notifier = notifier or Notifier()
        if self.notifier.resolver_factory is None:
            self.notifier.resolver_factory = self.policy.resolver
        self.subs = SubscriptionStore(self.notifier, self.policy, self.now, self.url)
        self.ids = self.subs.ids  # one sequence for every identifier the sandbox hands out
        self._cache_step = -1
        self._cache: dict = {}
        self._index: StepIndex | None = None
        self._index_version = -1
        self._roots: dict[str, str] = {}
        self._ticker: asyncio.Task | None = None

    # ---------------------------------------------------------------- time
    def now(self) -> float:
        """Sandbox time: the Unix time the current simulated instant stands for."""
        return self.clock.epoch + self.mobility.time

    def at(self, sim_time: float) -> float:
        return self.clock.epoch + sim_time

    def ts(self, t: float | None = None) -> dict:
        return timestamp(self.clock.epoch + (self.mobility.time if t is None else t))

    def advance_to(self, sim_time: float) -> list:
        """Move the simulation (listeners send the notifications), then expire subscriptions."""
        changes = self.mobility.advance_to(sim_time)
        self.subs.expire()
        return changes

    def sync(self) -> None:
        """Catch the simulation up with the clock (cheap when already there)."""
        if self.clock.speed > 0:
            self.advance_to(self.clock.target())

    async def run_ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.sync()
            except Exception:  # keep the simulation alive whatever a listener does
                LOG.exception("simulation step failed")

    # ---------------------------------------------------------------- urls
    def root(self, request: web.Request | None) -> str:
        if self.public_url:
            return self.public_url
        if request is None:
            return ""
        host = request.headers.get("Host", "")
        root = self._roots.get(host)
        if root is None:
            root = f"{request.scheme}://{request.host}"
            if len(self._roots) < 256:
                self._roots[host] = root
        return root

    def url(self, request: web.Request | None, path: str) -> str:
        return f"{self.root(request)}{self.base}/{path.lstrip('/')}"

    # ---------------------------------------------------------------- per-step index and answers
    def index(self) -> StepIndex:
        version = self.mobility.version
        if self._index is not None and self._index_version == version:
            return self._index
        poas = self.scenario.poas
        by_zone: dict[str, list[str]] = {z: [] for z in self.scenario.zones}
        by_poa: dict[str, list[str]] = {p: [] for p in poas}
        by_4g: dict[str, list[str]] = {}
        order = {}
        for rank, (name, st) in enumerate(self.mobility.states.items()):
            order[name] = rank
            if st.poa:
                by_poa[st.poa].append(name)
                by_zone.setdefault(st.zone, []).append(name)
                if poas[st.poa].kind == "4g":
                    by_4g.setdefault(st.poa, []).append(name)
        self._index = StepIndex(order, by_zone, by_poa, {z: len(v) for z, v in by_zone.items()},
                                {p: len(v) for p, v in by_poa.items()}, by_4g)
        self._index_version = version
        return self._index

    def counts(self) -> tuple[dict, dict]:
        ix = self.index()
        return ix.per_zone, ix.per_poa

    def cache(self) -> dict:
        """Answers of this simulation step (dropped at the next step)."""
        k = self.mobility.k
        if self._cache_step != k or len(self._cache) > CACHE_LIMIT:
            self._cache = {}
            self._cache_step = k
        return self._cache

    def ecgi(self, poa: str) -> dict:
        return {"cellId": self.scenario.poas[poa].cell_id or "",
                "plmn": {"mcc": self.scenario.mcc, "mnc": self.scenario.mnc}}
