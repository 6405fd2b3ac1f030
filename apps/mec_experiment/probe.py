"""UE-side downtime probe: ask an app for service every 20 ms on the source and on the target.

Each endpoint is asked on a fixed 20 ms grid, each request in its own worker (at most ``MAX_IN_FLIGHT``
at once), so that a request that hangs (the app frozen by the commit's pause or CRIU's pre-relocation dump)
does not stop the next ones: the probe's resolution stays one interval while requests hang. An answer is
*good* when the app served it (A2: ``GET /state`` answered 200 with JSON; A3: memcached answered a ``get``
with ``END``). Two figures come from the good answers' arrival times (on the controller's clock):
- the user-seen downtime of the relocation: from the source's last good answer before the target's first
  good answer to that first good answer;
- the pre-relocation freezes: gaps between consecutive good answers of the source while it still served
  (the app paused for the commit, frozen for the pre-relocation checkpoint); the longest is its own column.
The probe also reports its resolution: the longest spacing of its requests (``send_gap_max``) and how many
grid points it skipped because ``MAX_IN_FLIGHT`` requests were hanging.

A1 has no endpoint: its own requests, as the MEC hosts' gateways logged them, are its answers
(``gateway_gap``), with A1's request interval (200 ms) as the resolution.

Only the addresses given are contacted; every request has a timeout and the probe a hard deadline.
"""

from __future__ import annotations

import json
import queue
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime

INTERVAL = 0.020
# requests of one endpoint in flight at once: while they hang the grid goes on (a frozen app answers them
# all when it thaws); beyond this many, grid points are skipped and counted
MAX_IN_FLIGHT = 64
# a request is given this long: longer than any freeze the probe should see as one (a commit's pause, a dump)
REQUEST_TIMEOUT = 10.0
# gaps between good answers longer than this many intervals are freezes
FREEZE_INTERVALS = 3


@dataclass
class Sample:
    sent: float
    answered: float
    good: bool
    value: object = None


@dataclass
class EndpointLog:
    """What one endpoint answered: every good answer's time, the failure count, the last value."""

    name: str
    good_times: list = field(default_factory=list)
    failures: int = 0
    last_value: object = None
    first_value: object = None
    last_error: str = ""

    def add(self, sample: Sample, error: str = "") -> None:
        if sample.good:
            self.good_times.append(sample.answered)
            if self.first_value is None:
                self.first_value = sample.value
            self.last_value = sample.value
        else:
            self.failures += 1
            self.last_error = error


def http_state(address: str, port: int = 3000, path: str = "/state", timeout: float = 0.5):
    """A2: GET /state; (good, value or error)."""
    try:
        with urllib.request.urlopen("http://%s:%d%s" % (address, port, path), timeout=timeout) as resp:
            body = resp.read()
            if resp.status != 200:
                return False, "HTTP %d" % resp.status
            return True, json.loads(body.decode("utf-8"))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, str(exc)


class MemcachedGetter:
    """A3: one persistent text-protocol connection, reopened after any failure."""

    def __init__(self, address: str, port: int = 11211, keys=("zone01",), timeout: float = 0.5):
        self.address, self.port, self.keys, self.timeout = address, port, list(keys), timeout
        self.sock = None

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None

    def get(self):
        """(good, {key: value}) where good means memcached answered the get (hits or misses)."""
        try:
            if self.sock is None:
                self.sock = socket.create_connection((self.address, self.port), timeout=self.timeout)
                self.sock.settimeout(self.timeout)
            self.sock.sendall(("get %s\r\n" % " ".join(self.keys)).encode())
            data = b""
            while not (data.endswith(b"END\r\n") or data.startswith(b"ERROR") or data.startswith(b"SERVER_ERROR")):
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                data += chunk
            if not data.endswith(b"END\r\n"):
                raise OSError(data.decode(errors="replace").strip())
            return True, parse_get_reply(data)
        except OSError as exc:
            self.close()
            return False, str(exc)


def parse_get_reply(data: bytes) -> dict:
    """{key: value} from a memcached text-protocol reply to ``get k1 k2 ...``."""
    values, lines, i = {}, data.split(b"\r\n"), 0
    while i < len(lines):
        parts = lines[i].split()
        if len(parts) >= 4 and parts[0] == b"VALUE":
            values[parts[1].decode()] = lines[i + 1].decode(errors="replace") if i + 1 < len(lines) else ""
            i += 2
            continue
        i += 1
    return values


class Poller(threading.Thread):
    """Starts ``ask()`` every ``interval`` seconds, each call in its own thread (at most ``max_in_flight`` at
    once), until stopped or the deadline passes. ``ask_factory`` (optional) makes an ``ask`` that serves one
    request at a time (an endpoint whose client is not thread-safe, such as a memcached connection): the
    clients are kept and reused, one per request in flight."""

    def __init__(self, name: str, ask, interval: float = INTERVAL, deadline: float = 600.0, clock=time.time,
                 max_in_flight: int = MAX_IN_FLIGHT, ask_factory=None):
        super().__init__(name="probe-" + name, daemon=True)
        self.ask, self.interval, self.clock = ask, interval, clock
        self.ask_factory = ask_factory
        self.log = EndpointLog(name)
        self.stop_event = threading.Event()
        self.deadline = time.monotonic() + deadline
        self.max_in_flight = max_in_flight
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._lock = threading.Lock()
        self._idle = queue.SimpleQueue()
        self._workers = []
        self.sent_times = []
        self.skipped = 0

    def _ask(self):
        if self.ask_factory is None:
            return self.ask()
        try:
            ask = self._idle.get_nowait()  # a client no request uses now (at most max_in_flight are made)
        except queue.Empty:
            ask = self.ask_factory()
        try:
            return ask()
        finally:
            self._idle.put(ask)

    def _one(self, sent):
        try:
            try:
                good, value = self._ask()
            except Exception as exc:  # noqa: BLE001 - a probe's failure is a failed answer
                good, value = False, "%s: %s" % (type(exc).__name__, exc)
            answered = self.clock()
            with self._lock:
                self.log.add(Sample(sent, answered, good, value if good else None), "" if good else str(value))
        finally:
            self._slots.release()

    def run(self) -> None:
        tick = time.monotonic()
        while not self.stop_event.is_set() and time.monotonic() < self.deadline:
            if self._slots.acquire(blocking=False):
                sent = self.clock()
                self.sent_times.append(sent)
                w = threading.Thread(target=self._one, args=(sent,), daemon=True)
                w.start()
                self._workers.append(w)
                self._workers = [t for t in self._workers if t.is_alive()]
            else:
                self.skipped += 1
            tick += self.interval
            pause = tick - time.monotonic()
            if pause > 0:
                self.stop_event.wait(pause)
            else:
                tick = time.monotonic()  # this thread itself fell behind: restart the grid from now

    def stop(self, wait: float = 2.0) -> None:
        """Stop sending; wait up to ``wait`` seconds for the requests in flight."""
        self.stop_event.set()
        end = time.monotonic() + wait
        for w in list(self._workers):
            w.join(max(0.0, end - time.monotonic()))

    def resolution(self) -> dict:
        """The longest spacing of the requests sent, and the grid points skipped (too many in flight)."""
        gaps = [b - a for a, b in zip(self.sent_times, self.sent_times[1:])]
        return {"send_gap_max": round(max(gaps), 6) if gaps else None, "skipped": self.skipped,
                "sent": len(self.sent_times)}


def freezes(good_times, interval: float = INTERVAL, factor: int = FREEZE_INTERVALS) -> dict:
    """The gaps between consecutive good answers longer than ``factor`` intervals: a frozen app (the user waits
    for an answer while it serves). {'longest', 'total', 'count', 'gaps': [[start, seconds]...]}."""
    times = sorted(good_times)
    gaps = [(a, round(b - a, 6)) for a, b in zip(times, times[1:]) if b - a > factor * interval]
    return {"longest": max((g for _, g in gaps), default=0.0) if len(times) > 1 else None,
            "total": round(sum(g for _, g in gaps), 6), "count": len(gaps),
            "gaps": [[round(t, 6), g] for t, g in gaps]}


def user_gap(source: EndpointLog, target: EndpointLog) -> dict:
    """The downtime the user sees: last good source answer before the target's first good one, to that one."""
    if not target.good_times:
        return {"downtime": None, "source_last_good": source.good_times[-1] if source.good_times else None,
                "target_first_good": None, "reason": "the target never answered well: " + target.last_error}
    first_target = target.good_times[0]
    before = [t for t in source.good_times if t <= first_target]
    if not before:
        return {"downtime": None, "source_last_good": None, "target_first_good": first_target,
                "reason": "the source never answered well before the target did"}
    return {"downtime": round(first_target - before[-1], 6), "source_last_good": before[-1],
            "target_first_good": first_target, "reason": None}


class Probe:
    """Poll one app on source and target in the background; ``stop()`` returns the findings."""

    def __init__(self, kind: str, source: str, target: str, *, port: int | None = None, keys=None,
                 interval: float = INTERVAL, deadline: float = 600.0, timeout: float = REQUEST_TIMEOUT):
        self.kind, self.source, self.target = kind, source, target
        self.started_at = time.time()
        self.pollers = {}
        self._getters = []
        if kind == "http":
            port = port or 3000
            self.pollers = {role: Poller(role, lambda a=addr: http_state(a, port, timeout=timeout), interval, deadline)
                            for role, addr in (("source", source), ("target", target))}
        elif kind == "memcached":
            def factory(addr):
                def make():
                    getter = MemcachedGetter(addr, port or 11211, keys or ["zone01"], timeout)
                    self._getters.append(getter)
                    return getter.get
                return make
            self.pollers = {role: Poller(role, None, interval, deadline, ask_factory=factory(addr))
                            for role, addr in (("source", source), ("target", target))}
        elif kind != "none":
            raise ValueError("probe kind must be http, memcached or none, not %r" % kind)

    def start(self) -> "Probe":
        for poller in self.pollers.values():
            poller.start()
        return self

    def wait_target_good(self, hold: float = 1.0, limit: float = 15.0) -> bool:
        """Wait until the target has answered well for ``hold`` seconds (at most ``limit`` seconds)."""
        if "target" not in self.pollers:
            return False
        end = time.monotonic() + limit
        log = self.pollers["target"].log
        while time.monotonic() < end:
            if log.good_times and time.time() - log.good_times[0] >= hold:
                return True
            time.sleep(0.05)
        return bool(log.good_times)

    def stop(self) -> dict:
        for poller in self.pollers.values():
            poller.stop_event.set()
        for poller in self.pollers.values():
            poller.join(timeout=5)
            poller.stop()
        for getter in list(self._getters):
            getter.close()
        if not self.pollers:
            return {"kind": self.kind, "interval": None}
        src, tgt = self.pollers["source"].log, self.pollers["target"].log
        src.good_times.sort()
        tgt.good_times.sort()
        out = {"kind": self.kind, "interval": self.pollers["source"].interval, "started_at": self.started_at,
               "stopped_at": time.time()}
        out.update(user_gap(src, tgt))
        # the source's freezes while it served: its good answers up to its last one before the target's first
        served = [t for t in src.good_times if out.get("target_first_good") is None or t <= out["target_first_good"]]
        out["freeze"] = freezes(served, self.pollers["source"].interval)
        out["resolution"] = {role: p.resolution() for role, p in self.pollers.items()}
        out["source"] = {"good": len(src.good_times), "failed": src.failures, "first_value": src.first_value,
                         "last_value": src.last_value, "last_error": src.last_error}
        out["target"] = {"good": len(tgt.good_times), "failed": tgt.failures, "first_value": tgt.first_value,
                         "last_value": tgt.last_value, "last_error": tgt.last_error}
        return out


# ---------------------------------------------------------------------------------------------- A1 via gateway logs
_LOG_LINE = re.compile(r'^(\S+) (\S+) "(\S+) (\S+)[^"]*" (\d{3}) ')


def parse_gateway_log(text: str, path_prefix: str = "/rni/v2/queries/rab_info") -> list[float]:
    """Epoch times of the successful (2xx) requests for ``path_prefix`` in a mec-gateway access log."""
    times = []
    for line in text.splitlines():
        m = _LOG_LINE.match(line.strip())
        if not m or not m.group(4).startswith(path_prefix) or not m.group(5).startswith("2"):
            continue
        try:
            times.append(datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp())
        except ValueError:
            continue
    return sorted(times)


def gateway_gap(source_times: list[float], target_times: list[float], since: float) -> dict:
    """A1's user-seen downtime from its requests as the two gateways logged them (after ``since``)."""
    src = EndpointLog("source", good_times=[t for t in source_times if t >= since])
    tgt = EndpointLog("target", good_times=[t for t in target_times if t >= since])
    tgt.last_error = "no A1 request reached the target's gateway"
    out = {"kind": "gateway-log", "interval": None}
    out.update(user_gap(src, tgt))
    out["source"] = {"good": len(src.good_times)}
    out["target"] = {"good": len(tgt.good_times)}
    return out
