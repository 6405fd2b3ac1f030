#!/usr/bin/env python3
"""A1, the RAB logger (seed appendix A.1, ported from Node.js to the Python standard library).

Every A1_INTERVAL_MS milliseconds it asks the Radio Network Information Service, through the
API gateway, for the RAB information and logs the first UE's ``erabInfo``, or
"No RAB info available". It keeps no state. It logs one line per request outcome and stops
promptly on SIGTERM/SIGINT.

Environment:
  MEC_GATEWAY_URL   base URL of the API gateway (default http://gateway-app)
  A1_INTERVAL_MS    polling period in milliseconds (default 200)
  A1_TIMEOUT_S      timeout of one request in seconds (default 1.0)
"""

import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request

RAB_INFO_PATH = "/rni/v2/queries/rab_info"
LOG = logging.getLogger("a1")


def first_erab_info(document):
    """Return the first UE's erabInfo of a rab_info document, or None when there is none."""
    try:
        erab_info = document["cellUserInfo"][0]["ueInfo"][0]["erabInfo"]
    except (KeyError, IndexError, TypeError):
        return None
    return erab_info


def poll_once(url, timeout):
    """Make one request and log its outcome on one line. Return True when RAB info was logged."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            document = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        LOG.warning("request failed: HTTP %s from %s", exc.code, url)
        return False
    except (urllib.error.URLError, OSError, ValueError) as exc:
        LOG.warning("request failed: %s (%s)", getattr(exc, "reason", exc), url)
        return False
    erab_info = first_erab_info(document)
    if erab_info is None:
        LOG.info("No RAB info available")
        return False
    LOG.info("erabInfo %s", json.dumps(erab_info, separators=(",", ":")))
    return True


def run(url, interval, timeout, stop):
    """Poll until ``stop`` is set, on a fixed period (not period plus request time)."""
    next_tick = time.monotonic()
    while not stop.is_set():
        poll_once(url, timeout)
        next_tick += interval
        delay = next_tick - time.monotonic()
        if delay < 0:
            next_tick = time.monotonic()
            delay = 0
        stop.wait(delay)


def main():
    logging.basicConfig(
        stream=sys.stdout,
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(name)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    base = os.environ.get("MEC_GATEWAY_URL", "http://gateway-app").rstrip("/")
    interval = int(os.environ.get("A1_INTERVAL_MS", "200")) / 1000.0
    timeout = float(os.environ.get("A1_TIMEOUT_S", "1.0"))
    stop = threading.Event()

    def _on_signal(signum, _frame):
        LOG.info("received signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    LOG.info("Started app: polling %s every %d ms", base + RAB_INFO_PATH, interval * 1000)
    run(base + RAB_INFO_PATH, interval, timeout, stop)
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
