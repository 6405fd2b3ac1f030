"""Helpers and fixtures for the V2X apps and the gateway: a fake MEC upstream, app processes, memcached, httpd.

Everything runs for real on loopback: the apps are started as processes with the interpreter
running pytest, the upstream is a small http.server serving the sandbox's JSON shapes.
"""

import contextlib
import importlib.util
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APPS = REPO / "apps"
SANDBOX_BASE = "/sandbox"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_module(relative_path, name):
    """Import an app's module from its file (the apps are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, APPS / relative_path)
    module = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True
    spec.loader.exec_module(module)
    return module


def rab_info(erab_info):
    """A rab_info document as the sandbox serves it (unwrapped, ETSI MEC 012)."""
    ue_info = [{"associateId": [{"type": 1, "value": "10.100.0.1"}], "erabInfo": erab_info}]
    return {"timeStamp": {"seconds": 1}, "cellUserInfo": [{"ecgi": {"cellId": "1"}, "ueInfo": ue_info}]}


def users(zone_id, address="10.100.0.1"):
    """A users document (ETSI MEC 013 v2 userList) with one UE in ``zone_id``."""
    return {"userList": {"resourceURL": "x", "user": [
        {"address": address, "accessPointId": zone_id + "-poa", "zoneId": zone_id, "resourceURL": "x"}]}}


def zones(pairs):
    """A zones document from (zoneId, numberOfAccessPoints) pairs."""
    return {"zoneList": {"resourceURL": "x", "zone": [
        {"zoneId": zone_id, "numberOfAccessPoints": n, "numberOfUnserviceableAccessPoints": 0,
         "numberOfUsers": 0, "resourceURL": "x"} for zone_id, n in pairs]}}


class FakeUpstream:
    """A fake MEC sandbox: ``routes[path] = (status, document)``; it records every path asked."""

    def __init__(self):
        self.routes = {}
        self.seen = []
        self.lock = threading.Lock()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with upstream.lock:
                    upstream.seen.append(self.path)
                    status, document = upstream.routes.get(self.path, (404, {"problem": "not found"}))
                body = json.dumps(document).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d%s" % (self.port, SANDBOX_BASE)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)

    def set(self, path, document, status=200):
        with self.lock:
            self.routes[SANDBOX_BASE + path] = (status, document)

    def count(self, path):
        with self.lock:
            return sum(1 for seen in self.seen if seen == SANDBOX_BASE + path)


@contextlib.contextmanager
def serving_upstream():
    """A started FakeUpstream, shut down on exit."""
    fake = FakeUpstream()
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


@pytest.fixture
def upstream():
    with serving_upstream() as fake:
        yield fake


@pytest.fixture
def dead_url():
    """A URL on a loopback port where nothing listens."""
    return "http://127.0.0.1:%d/sandbox" % free_port()


class AppProcess:
    """An app started as a real process; its stdout lines are collected by a reader thread."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, bufsize=1)
        self.lines = []
        self._queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern, timeout=10.0, since=0):
        """Return the first line from index ``since`` (collected or arriving within ``timeout``)
        that matches ``pattern``."""
        regex = re.compile(pattern)
        for line in self.lines[since:]:
            if regex.search(line):
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if regex.search(line):
                return line
        raise AssertionError("no line matching %r within %.1fs; output:\n%s"
                             % (pattern, timeout, "\n".join(self.lines[-40:])))

    def count(self, pattern):
        regex = re.compile(pattern)
        return sum(1 for line in self.lines if regex.search(line))

    def stop(self, timeout=5.0):
        """Send SIGTERM and return the exit status (raises if the process outlives ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=timeout)
        while True:  # collect the last lines the process wrote before it exited
            try:
                line = self._queue.get(timeout=1.0)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
        return status


@pytest.fixture
def start_app():
    """Start ``apps/<script>`` with environment overrides; every process is stopped at teardown."""
    started = []

    def _start(script, **env_overrides):
        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
        env.update({key: str(value) for key, value in env_overrides.items()})
        app = AppProcess([sys.executable, str(APPS / script)], env)
        started.append(app)
        return app

    yield _start
    for app in started:
        if app.proc.poll() is None:
            app.proc.kill()
            app.proc.wait(timeout=5)


@pytest.fixture
def memcached():
    """A real memcached on a free loopback port; yields (host, port)."""
    binary = shutil.which("memcached")
    if binary is None:
        pytest.skip("memcached is not installed (apt-get install memcached)")
    port = free_port()
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "16"]
    if os.geteuid() == 0:
        argv += ["-u", "nobody"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("memcached did not start on port %d" % port)
            time.sleep(0.05)
    yield "127.0.0.1", port
    proc.terminate()
    proc.wait(timeout=5)


def memcached_get(host, port, keys):
    """Independent text-protocol client for assertions: {key: value} of the keys present."""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(("get %s\r\n" % " ".join(keys)).encode())
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    values = {}
    lines = data.split(b"\r\n")
    for index, line in enumerate(lines):
        if line.startswith(b"VALUE "):
            values[line.split()[1].decode()] = lines[index + 1].decode()
    return values
