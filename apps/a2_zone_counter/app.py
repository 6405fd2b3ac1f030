#!/usr/bin/env python3
"""A2, the zone counter (seed appendix A.2, ported from Node.js to the Python standard library).

Every A2_INTERVAL_MS milliseconds it asks the Location Service, through the API gateway, for the
users and counts how often the first UE's ``zoneId`` changes (the first zone seen counts, as in
the seed). The user state ``{"counter": N, "zone": Z}`` is written atomically to
``$A2_DATA_DIR/state.json`` (the Docker volume) on every change and read back on start.

HTTP on A2_PORT (3000):
  GET /changePhase?inMigration=1   enter the migration phase (seed contract)
  GET /changePhase                 leave it; both truncate runtimedata.dat and answer "OK"
  GET /state                       read-only {"counter", "zone", "inMigration", ...} for probes
During the migration phase each polled response is appended to ``$A2_DATA_DIR/runtimedata.dat``.

Environment: MEC_GATEWAY_URL (http://gateway-app), A2_INTERVAL_MS (200), A2_TIMEOUT_S (1.0),
A2_DATA_DIR (/data), A2_PORT (3000), A2_UE_ADDRESS (empty: the first UE, as in the seed).
"""

import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USERS_PATH = "/location/v2/queries/users"
STATE_FILE = "state.json"
RUNTIME_FILE = "runtimedata.dat"
LOG = logging.getLogger("a2")


def load_state(data_dir):
    """Return (counter, zone, message) from state.json; a missing or corrupt file gives (0, None)."""
    path = os.path.join(data_dir, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        return 0, None, "No state present, starting from zero"
    except (OSError, ValueError) as exc:
        return 0, None, "State file %s is corrupt (%s), starting from zero" % (path, exc)
    counter = document.get("counter") if isinstance(document, dict) else None
    if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
        return 0, None, "State file %s is corrupt (no valid counter), starting from zero" % path
    return counter, document.get("zone"), "Using saved state counter=%d zone=%s" % (counter, document.get("zone"))


def save_state(data_dir, counter, zone):
    """Write state.json atomically: a temporary file in the same directory, fsync, rename."""
    path = os.path.join(data_dir, STATE_FILE)
    tmp_path = path + ".tmp"
    with open(tmp_path, "w", encoding="utf-8") as handle:
        json.dump({"counter": counter, "zone": zone}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp_path, path)


def first_zone(document, ue_address=None):
    """Return the zoneId of the chosen UE (the first one, or the one with ``ue_address``), or None."""
    try:
        users = document["userList"]["user"]
        if isinstance(users, dict):
            users = [users]
        if ue_address:
            users = [user for user in users if user.get("address") == ue_address]
        return users[0]["zoneId"]
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


class ZoneCounter:
    """The application's state and its polling step; thread-safe for the HTTP handler."""

    def __init__(self, data_dir, url, timeout, ue_address=None):
        self.data_dir = data_dir
        self.url = url
        self.timeout = timeout
        self.ue_address = ue_address
        self.lock = threading.Lock()
        self.in_migration = False
        self.requests_ok = 0
        self.requests_failed = 0
        self.counter, self.zone, message = load_state(data_dir)
        LOG.info(message)

    def snapshot(self):
        with self.lock:
            return {
                "counter": self.counter,
                "zone": self.zone,
                "inMigration": int(self.in_migration),
                "requestsOk": self.requests_ok,
                "requestsFailed": self.requests_failed,
            }

    def change_phase(self, in_migration):
        with self.lock:
            # Seed contract: every phase change starts an empty runtime log on the volume.
            with open(os.path.join(self.data_dir, RUNTIME_FILE), "w", encoding="utf-8"):
                pass
            self.in_migration = in_migration
        LOG.info("phase changed: inMigration=%d", int(in_migration))

    def _fetch(self):
        with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
            return json.loads(response.read().decode("utf-8"))

    def poll_once(self):
        """Make one request, update the counter, and log the outcome on one line."""
        try:
            document = self._fetch()
        except urllib.error.HTTPError as exc:
            self._failed("HTTP %s from %s" % (exc.code, self.url))
            return
        except (urllib.error.URLError, OSError, ValueError) as exc:
            self._failed("%s (%s)" % (getattr(exc, "reason", exc), self.url))
            return
        zone = first_zone(document, self.ue_address)
        with self.lock:
            self.requests_ok += 1
            write_error = None
            try:
                if zone is not None and zone != self.zone:
                    self.zone = zone
                    self.counter += 1
                    save_state(self.data_dir, self.counter, self.zone)
                if self.in_migration:
                    line = json.dumps({"ts": time.time(), "counter": self.counter, "zone": self.zone,
                                       "response": document}, separators=(",", ":"))
                    with open(os.path.join(self.data_dir, RUNTIME_FILE), "a", encoding="utf-8") as handle:
                        handle.write(line + "\n")
            except OSError as exc:
                write_error = exc
            counter, current, in_migration = self.counter, self.zone, int(self.in_migration)
        if write_error is not None:
            LOG.error("cannot write to %s: %s", self.data_dir, write_error)
        if zone is None:
            LOG.info("No zone info available counter=%d inMigration=%d", counter, in_migration)
        else:
            LOG.info("counter=%d zone=%s inMigration=%d", counter, current, in_migration)

    def _failed(self, reason):
        with self.lock:
            self.requests_failed += 1
        LOG.warning("request failed: %s", reason)


def make_handler(app):
    class Handler(BaseHTTPRequestHandler):
        server_version = "a2-zone-counter"

        def do_GET(self):  # noqa: N802 (http.server naming)
            parsed = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(parsed.query)
            if parsed.path == "/changePhase":
                value = (query.get("inMigration") or [""])[0].strip().lower()
                try:
                    app.change_phase(value not in ("", "0", "false", "no"))
                except OSError as exc:
                    LOG.error("cannot truncate %s: %s", RUNTIME_FILE, exc)
                    self._reply(500, "text/plain", b"runtime log not writable")
                    return
                self._reply(200, "text/plain", b"OK")
            elif parsed.path == "/state":
                self._reply(200, "application/json", json.dumps(app.snapshot()).encode("utf-8"))
            else:
                self._reply(404, "text/plain", b"Not Found")

        def _reply(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt, *args):
            LOG.info("http %s %s", self.client_address[0], fmt % args)

    return Handler


def main():
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    base = os.environ.get("MEC_GATEWAY_URL", "http://gateway-app").rstrip("/")
    interval = int(os.environ.get("A2_INTERVAL_MS", "200")) / 1000.0
    timeout = float(os.environ.get("A2_TIMEOUT_S", "1.0"))
    data_dir = os.environ.get("A2_DATA_DIR", "/data")
    port = int(os.environ.get("A2_PORT", "3000"))
    stop = threading.Event()

    def _on_signal(signum, _frame):
        LOG.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    app = ZoneCounter(data_dir, base + USERS_PATH, timeout, os.environ.get("A2_UE_ADDRESS") or None)
    server = ThreadingHTTPServer(("0.0.0.0", port), make_handler(app))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    LOG.info("Started app: port %d, polling %s every %d ms", port, app.url, interval * 1000)

    next_tick = time.monotonic()
    while not stop.is_set():
        app.poll_once()
        next_tick += interval
        delay = next_tick - time.monotonic()
        if delay < 0:
            next_tick, delay = time.monotonic(), 0
        stop.wait(delay)
    server.shutdown()
    server.server_close()
    LOG.info("stopped counter=%d zone=%s", app.counter, app.zone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
