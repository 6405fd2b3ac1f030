"""Helpers for the sandbox tests: a real sandbox process on loopback with a manual clock (one per test module,
``sandbox``, or one per test, ``fresh_sandbox``) with its own client credentials, an in-process simulation of
the same scenario at its time (``mirror``), and a real HTTP callback receiver on loopback."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests
from mec_sandbox.credentials import DEFAULT_CLIENTS, TokenClient, generate, load_client
from mec_sandbox.mobility import Mobility, Placement  # apps/ is on the path (conftest.py)
from mec_sandbox.scenario import load_scenario

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = os.path.normpath(os.path.join(HERE, "..", "..", "apps"))
BASE = "/sbx-test"
START_TIME = 1700000000  # the sandbox's --start-time: its wall clock = START_TIME + simulated time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BearerAuth(requests.auth.AuthBase):
    """requests' hook that sends a TokenClient's bearer token."""

    def __init__(self, tokens: TokenClient):
        self.tokens = tokens

    def __call__(self, r):
        r.headers["Authorization"] = f"Bearer {self.tokens.token()}"
        return r


class SandboxProcess:
    """``python -m mec_sandbox`` as a child process; ``url(path)`` builds URLs under the base path; ``http`` is a
    requests session with a bearer token of the client ``mec-control`` (every scope); ``creds`` the folder of
    its credentials (``sandbox-auth.json``, ``credentials.json``)."""

    def __init__(self, *extra: str, clients: dict | None = None):
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="sbx-creds-")
        self.creds = os.path.join(self._tmp.name, "creds")
        generate(self.creds, clients or DEFAULT_CLIENTS)
        env = dict(os.environ, PYTHONPATH=APPS)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mec_sandbox", "--host", "127.0.0.1", "--port", str(self.port),
             "--base-path", BASE, "--speed", "0", "--start-time", str(START_TIME), "--notify-timeout", "1",
             "--notify-retries", "1", "--auth-file", os.path.join(self.creds, "sandbox-auth.json"), *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.root = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.auth = BearerAuth(self.client("mec-control"))
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(self.url("sandbox-ctrl/v1/clock"), timeout=1)
                break
            except requests.ConnectionError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    out = self.proc.stdout.read() if self.proc.poll() is not None else ""
                    self.stop()
                    raise RuntimeError(f"sandbox did not start: {out}") from exc
                time.sleep(0.1)

    def url(self, path: str) -> str:
        return f"{self.root}{BASE}/{path.lstrip('/')}"

    def client(self, name: str, scope: str | None = None) -> TokenClient:
        """A token client of one of this sandbox's clients (``mec-control``, ``mec-eda``, ``mec-gateway``)."""
        cid, secret = load_client(os.path.join(self.creds, "credentials.json"), name)
        return TokenClient(self.root + BASE, cid, secret, scope=scope)

    def get(self, path: str, **kw):
        return self.http.get(self.url(path), timeout=5, **kw)

    def post(self, path: str, body, **kw):
        return self.http.post(self.url(path), json=body, timeout=5, **kw)

    def put(self, path: str, body, **kw):
        return self.http.put(self.url(path), json=body, timeout=5, **kw)

    def delete(self, path: str, **kw):
        return self.http.delete(self.url(path), timeout=5, **kw)

    def advance(self, seconds: float) -> dict:
        r = self.post("sandbox-ctrl/v1/clock", {"advanceBy": seconds})
        r.raise_for_status()
        return r.json()

    def sim_time(self) -> float:
        """The sandbox's simulated time (seconds)."""
        return self.get("sandbox-ctrl/v1/clock").json()["simTime"]

    def ues(self) -> dict:
        return {u["address"]: u for u in self.get("sandbox-ctrl/v1/ues").json()["ues"]}

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.http.close()
        self._tmp.cleanup()
        return self.proc.stdout.read() if self.proc.stdout and not self.proc.stdout.closed else ""


def _sandbox_process():
    sb = SandboxProcess()
    yield sb
    sb.stop()


# one sandbox for a test module; fresh_sandbox for a test that needs the simulation at its start
sandbox = pytest.fixture(scope="module", name="sandbox")(_sandbox_process)
fresh_sandbox = pytest.fixture(name="fresh_sandbox")(_sandbox_process)


def mirror(sb: SandboxProcess):
    """An in-process simulation of the scenario (per-zone placement) at the sandbox's current simulated time."""
    s = load_scenario()
    mob = Mobility(s, Placement(s, "per-zone"), step=0.05)
    mob.advance_to(sb.sim_time())
    return mob


def next_host_change(mob, ue, horizon=900):
    """Advance the simulation ``mob`` second by second to the next change of the MEC host serving ``ue``."""
    t0 = mob.time
    while mob.time < t0 + horizon:
        for c in mob.advance_to(mob.time + 1):
            if c.ue == ue and c.old_host != c.new_host:
                return c
    raise AssertionError("no host change of %s within %s s of simulated time" % (ue, horizon))


class Receiver:
    """Loopback HTTP server recording every POSTed JSON body with its path and arrival time; over TLS with
    ``ssl_context``; answering ``307 Location: redirect_to`` instead of 204 when that is given."""

    def __init__(self, delay: float = 0.0, host: str = "127.0.0.1", ssl_context=None, redirect_to: str = ""):
        self.items: list[tuple[str, dict, float]] = []
        self.cond = threading.Condition()
        self.delay = delay
        self.host, self.scheme = host, "https" if ssl_context else "http"
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                with outer.cond:  # record before answering, so the order seen is the order sent
                    outer.items.append((self.path, json.loads(body), arrived))
                    outer.cond.notify_all()
                if outer.delay:
                    time.sleep(outer.delay)
                if redirect_to:
                    self.send_response(307)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/cb") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    def wait_for(self, predicate, timeout: float = 10.0) -> list:
        """Wait until predicate(items) holds; returns the items (the caller asserts on them)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.items) and time.monotonic() < deadline:
                self.cond.wait(0.1)
            return list(self.items)

    def bodies(self, path: str | None = None) -> list[dict]:
        with self.cond:
            return [b for p, b, _ in self.items if path is None or p == path]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()
