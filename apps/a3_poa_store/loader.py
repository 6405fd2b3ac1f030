#!/usr/bin/env python3
"""A3's loader (seed appendix A.3): fills the memcached POA store from the Location Service.

It reads ``location/v2/queries/zones`` through the API gateway and stores, for every zone,
``zoneId -> numberOfAccessPoints`` in memcached with the text protocol over a plain socket.
It runs once and exits, in its own container (image mec-apps/a3-loader) on the mec-apps network,
as the seed ran its loader apart from the memcached container.

Exit status: 0 when every zone is in the store afterwards; 1 when the upstream or memcached
cannot be reached or a zone is missing afterwards; 2 when the zone list is empty (nothing loaded).

Environment: MEC_GATEWAY_URL (http://gateway-app), MEMCACHED_HOST (a3), MEMCACHED_PORT (11211),
LOADER_EXPTIME (0: never expire; the seed used 100 s), LOADER_MODE (add: keep values already
present, as the seed; or set: overwrite), LOADER_CONNECT_WAIT_S (10: wait for memcached to come up).
"""

import json
import logging
import os
import socket
import sys
import time
import urllib.error
import urllib.request

ZONES_PATH = "/location/v2/queries/zones"
LOG = logging.getLogger("a3-loader")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_EMPTY = 2


class MemcachedError(Exception):
    """A memcached server answered with an error or closed the connection."""


class MemcachedClient:
    """The few memcached text protocol commands the loader needs (storage commands and get)."""

    def __init__(self, host, port, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def close(self):
        self.reader.close()
        self.sock.close()

    def _line(self):
        line = self.reader.readline()
        if not line.endswith(b"\r\n"):
            raise MemcachedError("connection closed by memcached")
        return line[:-2]

    def store(self, command, key, value, exptime=0):
        """Run ``set``/``add``/``replace``; return True for STORED and False for NOT_STORED."""
        data = str(value).encode("utf-8")
        header = "%s %s 0 %d %d\r\n" % (command, key, exptime, len(data))
        self.sock.sendall(header.encode("utf-8") + data + b"\r\n")
        reply = self._line()
        if reply == b"STORED":
            return True
        if reply == b"NOT_STORED":
            return False
        raise MemcachedError("%s %s: %s" % (command, key, reply.decode("utf-8", "replace")))

    def get_many(self, keys):
        """Return {key: value} for the keys present (one ``get`` with every key)."""
        values = {}
        if not keys:
            return values
        self.sock.sendall(("get %s\r\n" % " ".join(keys)).encode("utf-8"))
        while True:
            line = self._line()
            if line == b"END":
                return values
            parts = line.split()
            if len(parts) < 4 or parts[0] != b"VALUE":
                raise MemcachedError("unexpected reply to get: %r" % line)
            payload = self.reader.read(int(parts[3]) + 2)[:-2]
            values[parts[1].decode("utf-8")] = payload.decode("utf-8")


def fetch_zones(url, timeout=5.0):
    """Return the list of (zoneId, numberOfAccessPoints) from a zones document."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        document = json.loads(response.read().decode("utf-8"))
    zones = (document.get("zoneList") or {}).get("zone") or []
    if isinstance(zones, dict):
        zones = [zones]
    result = []
    for zone in zones:
        zone_id = str(zone.get("zoneId", ""))
        if not zone_id or any(ch.isspace() or ord(ch) < 33 for ch in zone_id) or len(zone_id) > 250:
            LOG.warning("skipping zone with an unusable zoneId: %r", zone.get("zoneId"))
            continue
        result.append((zone_id, zone.get("numberOfAccessPoints", 0)))
    return result


def connect(host, port, wait_s):
    """Connect to memcached, retrying for up to ``wait_s`` seconds while it starts."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return MemcachedClient(host, port)
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise
            LOG.info("memcached at %s:%d not reachable yet (%s), retrying", host, port, exc)
            time.sleep(0.5)


def load(zones_url, host, port, exptime=0, mode="add", wait_s=10.0):
    """Load every zone into memcached and verify; return the process exit status."""
    try:
        zones = fetch_zones(zones_url)
    except urllib.error.HTTPError as exc:
        LOG.error("cannot read zones: HTTP %s from %s", exc.code, zones_url)
        return EXIT_FAILED
    except (urllib.error.URLError, OSError, ValueError, AttributeError) as exc:
        LOG.error("cannot read zones from %s: %s", zones_url, getattr(exc, "reason", exc))
        return EXIT_FAILED
    if not zones:
        LOG.error("the zone list from %s is empty: nothing loaded", zones_url)
        return EXIT_EMPTY
    try:
        client = connect(host, port, wait_s)
    except OSError as exc:
        LOG.error("cannot connect to memcached at %s:%d: %s", host, port, exc)
        return EXIT_FAILED
    try:
        for zone_id, n_poa in zones:
            if client.store(mode, zone_id, n_poa, exptime):
                LOG.info("Added %s=%s", zone_id, n_poa)
            else:
                LOG.info("Not added %s. May be present already", zone_id)
        present = client.get_many([zone_id for zone_id, _ in zones])
    except (OSError, MemcachedError) as exc:
        LOG.error("memcached at %s:%d failed: %s", host, port, exc)
        return EXIT_FAILED
    finally:
        client.close()
    missing = [zone_id for zone_id, _ in zones if zone_id not in present]
    LOG.info("%d/%d zones present in memcached at %s:%d", len(present), len(zones), host, port)
    if missing:
        LOG.error("zones missing after loading: %s", ", ".join(missing))
        return EXIT_FAILED
    return EXIT_OK


def main():
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    base = os.environ.get("MEC_GATEWAY_URL", "http://gateway-app").rstrip("/")
    mode = os.environ.get("LOADER_MODE", "add")
    if mode not in ("add", "set"):
        LOG.error("LOADER_MODE must be add or set, not %r", mode)
        return EXIT_FAILED
    return load(
        base + ZONES_PATH,
        os.environ.get("MEMCACHED_HOST", "a3"),
        int(os.environ.get("MEMCACHED_PORT", "11211")),
        exptime=int(os.environ.get("LOADER_EXPTIME", "0")),
        mode=mode,
        wait_s=float(os.environ.get("LOADER_CONNECT_WAIT_S", "10")),
    )


if __name__ == "__main__":
    sys.exit(main())
