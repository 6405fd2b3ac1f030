"""The one subscription resource every API uses: create, list, read, replace, delete; callback
checks; expiry; notification delivery.

Each API describes its kinds of subscription with a :class:`SubscriptionKind` (how a request body is
checked, how the resource and the list look, when it expires, what its expiry notification is); the
store does the rest the same way for all of them.

Expiry is in the sandbox's time (its timestamps: ``--start-time`` plus simulated time; at ``--speed 1``
from the start that is the wall clock). An event at or after a subscription's deadline is not
notified, even when the clock jumps over both at once; after the deadline the subscription is gone
(404) and, where the API defines one, an expiry notification is sent.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from aiohttp import web

from .callbacks import CallbackPolicy
from .notify import Notifier
from .problems import Problem, json_response, read_body, timestamp_field

LOG = logging.getLogger("mec_sandbox.subscriptions")


@dataclass(eq=False)
class Subscription:
    id: str
    kind: SubscriptionKind
    url: str  # the resource's URL, as the creating request saw the sandbox
    notify_url: str
    body: dict  # what the client sent (checked), without resource links
    expires_at: float | None = None  # sandbox time (Unix seconds)
    created_at: float = 0.0


@dataclass(frozen=True)
class SubscriptionKind:
    """What differs between the APIs' subscriptions."""
    name: str  # e.g. "zonalTraffic", "rni", "ams"
    collection: str  # path of the collection under the base path, e.g. "rni/v2/subscriptions"
    # request body -> (body to store, its callback URL, the field that holds it); raises Problem on a bad body
    check: Callable[[dict], tuple[dict, object, str]]
    # a subscription -> its representation (GET, POST and PUT answers)
    represent: Callable[[Subscription, float], dict]
    # (subscriptions, the collection's URL, query) -> the list's representation
    list_body: Callable[[list[Subscription], str, dict], dict]
    # (body, now) -> deadline in sandbox time, or None
    deadline: Callable[[dict, float], float | None]
    # (subscription, now) -> the expiry notification, or None where the API defines none
    expiry_note: Callable[[Subscription, float], dict | None] = lambda sub, now: None


def timestamp(value: float) -> dict:
    seconds = math.floor(value)
    return {"seconds": int(seconds), "nanoSeconds": int((value - seconds) * 1e9)}


@dataclass
class SubscriptionStore:
    notifier: Notifier
    policy: CallbackPolicy
    now: Callable[[], float]  # sandbox time, Unix seconds
    url: Callable[[web.Request, str], str]  # (request, path under the base) -> absolute URL
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    kinds: dict[str, SubscriptionKind] = field(default_factory=dict)
    active: dict[str, dict[str, Subscription]] = field(default_factory=dict)
    _deadlines: list = field(default_factory=list)  # heap of (deadline, seq, subscription)
    _seq: Iterator[int] = field(default_factory=itertools.count)

    def register(self, kind: SubscriptionKind) -> None:
        self.kinds[kind.name] = kind
        self.active[kind.name] = {}

    def of(self, kind: str) -> Iterable[Subscription]:
        """The live subscriptions of a kind (a snapshot: senders may expire them meanwhile)."""
        return list(self.active[kind].values())

    def has(self, kind: str) -> bool:
        return bool(self.active[kind])

    # ------------------------------------------------------------ notifications
    def send(self, sub: Subscription, payload: dict, key: str = "", at: float | None = None) -> None:
        """Queue a notification about an event at sandbox time ``at`` (default now)."""
        if sub.expires_at is not None and (self.now() if at is None else at) >= sub.expires_at:
            return  # the subscription had expired when this happened
        if self.active[sub.kind.name].get(sub.id) is not sub:
            return  # deleted or replaced
        try:
            self.notifier.send(sub.notify_url, payload, sub.id, key)
        except RuntimeError:  # no running loop (pure simulation use): nothing to deliver
            pass

    def expire(self, now: float | None = None) -> list[Subscription]:
        """Remove the subscriptions whose deadline has passed and send their expiry notifications."""
        now = self.now() if now is None else now
        gone = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, _, sub = heapq.heappop(self._deadlines)
            if self.active[sub.kind.name].get(sub.id) is not sub or sub.expires_at != deadline:
                continue  # deleted, or replaced with another deadline
            del self.active[sub.kind.name][sub.id]
            gone.append(sub)
            LOG.info("subscription %s (%s) expired", sub.id, sub.kind.name)
            note = sub.kind.expiry_note(sub, now)
            if note is not None:
                try:
                    self.notifier.send(sub.notify_url, note, sub.id, "")
                except RuntimeError:
                    pass
        return gone

    def _schedule(self, sub: Subscription) -> None:
        if sub.expires_at is not None:
            heapq.heappush(self._deadlines, (sub.expires_at, next(self._seq), sub))

    # ------------------------------------------------------------ resource
    async def _checked(self, kind: SubscriptionKind, request: web.Request) -> tuple[dict, str, float | None]:
        body, callback, field_name = kind.check(await read_body(request))
        url = await self.policy.check(callback, field_name)
        now = self.now()
        deadline = kind.deadline(body, now)
        if deadline is not None and deadline <= now:
            raise Problem(400, f"the subscription would expire at {deadline:.3f}, which is not after the "
                               f"sandbox's current time {now:.3f}")
        return body, url, deadline

    def _find(self, kind: SubscriptionKind, request: web.Request) -> Subscription:
        sid = request.match_info["subscriptionId"]
        sub = self.active[kind.name].get(sid)
        if sub is None:
            raise Problem(404, f"subscription '{sid}' not found")
        return sub

    async def list(self, request: web.Request, q: dict, kind_name: str) -> web.Response:
        kind = self.kinds[kind_name]
        return json_response(kind.list_body(self.of(kind_name), self.url(request, kind.collection), q))

    async def create(self, request: web.Request, q: dict, kind_name: str) -> web.Response:
        kind = self.kinds[kind_name]
        body, notify_url, deadline = await self._checked(kind, request)
        sid = str(next(self.ids))
        sub = Subscription(sid, kind, self.url(request, f"{kind.collection}/{sid}"), notify_url, body, deadline,
                           self.now())
        self.active[kind.name][sid] = sub
        self._schedule(sub)
        return json_response(kind.represent(sub, self.now()), 201, {"Location": sub.url})

    async def get(self, request: web.Request, q: dict, kind_name: str) -> web.Response:
        kind = self.kinds[kind_name]
        return json_response(kind.represent(self._find(kind, request), self.now()))

    async def put(self, request: web.Request, q: dict, kind_name: str) -> web.Response:
        kind = self.kinds[kind_name]
        old = self._find(kind, request)
        body, notify_url, deadline = await self._checked(kind, request)
        sub = Subscription(old.id, kind, old.url, notify_url, body, deadline, self.now())
        self.active[kind.name][old.id] = sub
        self._schedule(sub)
        return json_response(kind.represent(sub, self.now()))

    async def delete(self, request: web.Request, q: dict, kind_name: str) -> web.Response:
        kind = self.kinds[kind_name]
        del self.active[kind.name][self._find(kind, request).id]
        return web.Response(status=204)


# ------------------------------------------------------------------ shapes shared by MEC 012 and MEC 021

def links_list(subs: list[Subscription], self_url: str) -> dict:
    """SubscriptionLinkList of MEC 012 and MEC 021 (AdvantEDGE 1.9.2): the links under ``_links``."""
    return {"_links": {"self": {"href": self_url},
                       "subscription": [{"href": s.url, "subscriptionType": s.body["subscriptionType"]}
                                        for s in subs]}}


def with_self_link(sub: Subscription, now: float) -> dict:
    return dict(sub.body, _links={"self": {"href": sub.url}})


def expiry_deadline(body: dict, now: float) -> float | None:
    return timestamp_field(body, "expiryDeadline")


def expiry_notification(sub: Subscription, now: float) -> dict:
    """ExpiryNotification of MEC 012 and MEC 021."""
    return {"notificationType": "ExpiryNotification", "timeStamp": timestamp(now),
            "_links": {"subscription": {"href": sub.url}}, "expiryDeadline": sub.body["expiryDeadline"]}
