"""Delivery of notifications to subscribers' callback URLs.

One ordered queue and one worker per callback URL and key (the UE, zone, ... the notification is
about): a receiver gets the notifications about one UE in the order they were made (Leaving before
Entering), notifications about different UEs travel in parallel, and a receiver that is slow or
unreachable only delays itself. Workers exist only while their queue has work. Every POST has a bounded
timeout and a capped number of retries; after that the failure is logged and counted, and the subscription
is kept. Redirects are not followed (a 3xx answer is a failed delivery: following it would take the POST
past the callback networks' check), and an https callback's certificate is verified against the
configured CA file (else the system's CAs) and its host name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections import defaultdict, deque

import aiohttp

LOG = logging.getLogger("mec_sandbox.notify")


class Notifier:
    def __init__(self, timeout: float = 2.0, retries: int = 2, backoff: float = 0.2, queue_size: int = 1000,
                 resolver_factory=None, ca_file: str | None = None):
        self.timeout = timeout
        # https callbacks: verified against this CA bundle (None: the system's), host name included
        self.ssl_context = ssl.create_default_context(cafile=ca_file)
        # e.g. CallbackPolicy.resolver: names resolve only to addresses inside the allowed networks
        self.resolver_factory = resolver_factory
        self.retries = retries
        self.backoff = backoff
        self.queue_size = queue_size
        self._queues: dict[tuple[str, str], deque] = {}
        self._workers: dict[tuple[str, str], asyncio.Task] = {}
        self._session: aiohttp.ClientSession | None = None
        self.stats = defaultdict(lambda: {"delivered": 0, "failed": 0, "dropped": 0})

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            connector=aiohttp.TCPConnector(limit=256, limit_per_host=16, ssl=self.ssl_context,
                                           resolver=self.resolver_factory() if self.resolver_factory else None),
            json_serialize=json.dumps)

    async def close(self) -> None:
        for task in list(self._workers.values()):
            task.cancel()
        await asyncio.gather(*self._workers.values(), return_exceptions=True)
        self._workers.clear()
        if self._session is not None:
            await self._session.close()

    def send(self, url: str, payload: dict, sub_id: str, key: str = "") -> None:
        """Queue one notification (never blocks; drops the oldest when that queue is full)."""
        slot = (url, key)
        queue = self._queues.get(slot)
        if queue is None:
            queue = self._queues[slot] = deque()
            self._workers[slot] = asyncio.get_running_loop().create_task(self._worker(slot, url, queue))
        if len(queue) >= self.queue_size:
            _body, dropped_sub = queue.popleft()
            self.stats[dropped_sub]["dropped"] += 1
            LOG.warning("callback %s is not keeping up: dropped one notification of subscription %s",
                        url, dropped_sub)
        queue.append((json.dumps(payload).encode(), sub_id))

    async def _worker(self, slot: tuple[str, str], url: str, queue: deque) -> None:
        try:
            while queue:
                body, sub_id = queue.popleft()
                await self._deliver(url, body, sub_id)
        finally:
            # no await between the last emptiness check and this: send() cannot slip in between
            if self._queues.get(slot) is queue:
                del self._queues[slot]
                del self._workers[slot]

    async def _deliver(self, url: str, body: bytes, sub_id: str) -> None:
        last_error = ""
        for attempt in range(self.retries + 1):
            try:
                async with self._session.post(url, data=body, headers={"Content-Type": "application/json"},
                                              allow_redirects=False) as resp:
                    await resp.read()
                    if resp.status < 300:
                        self.stats[sub_id]["delivered"] += 1
                        return
                    last_error = f"HTTP {resp.status}"
                    if 300 <= resp.status < 400:
                        last_error += " (a redirect, not followed: callbacks go only to the URL subscribed)"
                        break
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        break  # the receiver rejects it: retrying will not help
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                last_error = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            if attempt < self.retries:
                await asyncio.sleep(self.backoff * (2 ** attempt))
        self.stats[sub_id]["failed"] += 1
        LOG.warning("notification for subscription %s to %s failed after %d attempt(s): %s; subscription kept",
                    sub_id, url, attempt + 1, last_error)
