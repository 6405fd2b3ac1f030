"""What the UE sees, every ~0.2 s: its zone (the MEC platform's control API) and which zone host's A2 answers."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor


def _get_json(url: str, timeout: float, headers: dict | None = None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


class Probe:
    """One sample: {"t", "sim", "zone", "ap", "up": [hosts whose A2 answered GET /state], "counter": {host: n}}."""

    def __init__(self, sandbox_url: str, ue: str, hosts: dict[str, str], app_port: int = 3000,
                 timeout: float = 0.8, tokens=None):
        self.ues_url = f"{sandbox_url}/sandbox-ctrl/v1/ues?address={ue}"
        self.tokens = tokens  # mec_sandbox.credentials.TokenClient: the sandbox needs a bearer token
        self.ue = ue
        self.state_urls = {name: f"http://{address}:{app_port}/state" for name, address in hosts.items()}
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=len(hosts) + 1, thread_name_prefix="probe")

    def _ue(self):
        try:
            doc = _get_json(self.ues_url, self.timeout, self.tokens.headers() if self.tokens else None)
            ue = next(u for u in doc["ues"] if u["address"] == self.ue)
            return doc["simTime"], ue.get("zoneId"), ue.get("accessPointId")
        except (OSError, ValueError, KeyError, StopIteration, urllib.error.URLError):
            return None, None, None

    def _state(self, url: str):
        try:
            doc = _get_json(url, self.timeout)
            return doc if isinstance(doc, dict) and "counter" in doc else None
        except (OSError, ValueError, urllib.error.URLError):
            return None

    def sample(self) -> dict:
        t = time.time()
        ue = self.pool.submit(self._ue)
        states = {name: self.pool.submit(self._state, url) for name, url in self.state_urls.items()}
        sim, zone, ap = ue.result()
        answers = {name: f.result() for name, f in states.items()}
        up = sorted(name for name, doc in answers.items() if doc is not None)
        return {"t": round(t, 3), "sim": sim, "zone": zone, "ap": ap, "up": up,
                "counter": {name: answers[name]["counter"] for name in up}}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
