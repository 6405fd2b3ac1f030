"""The probe measures a known, injected gap: a 'source' container is killed, a 'target' container is started
one second later; the probe's gap must match the gap in the servers' own logs within 50 ms."""

from __future__ import annotations

import subprocess
import time
import uuid

import pytest
from mec_experiment import probe

pytestmark = pytest.mark.docker

IMAGE = "mec-lab/host:bookworm"  # Debian 12 with python3, built by the lab from a local debootstrap
LABEL = "mec.migration.test=1"
PORT = 18571
# answers GET /state like A2, and logs the epoch time of every answer it sends
SERVER = r"""
import http.server, json, sys, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"counter": 7}).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body); self.wfile.flush()
        print("answered %.6f" % time.time(), flush=True)
    def log_message(self, *a): pass
http.server.HTTPServer(("0.0.0.0", 8000), H).serve_forever()
"""


def docker(*args, check=True):
    proc = subprocess.run(["docker"] + list(args), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("docker %s: %s" % (" ".join(args), proc.stderr))
    return proc


def answered_times(name):
    out = docker("logs", name).stdout
    return [float(line.split()[1]) for line in out.splitlines() if line.startswith("answered ")]


@pytest.fixture
def two_servers():
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.skip("%s is not on this engine (playbooks/lab.yml builds it)" % IMAGE)
    tag = uuid.uuid4().hex[:8]
    names = {"source": "mec-probe-src-" + tag, "target": "mec-probe-tgt-" + tag}
    addresses = {"source": "127.0.0.2", "target": "127.0.0.3"}
    try:
        for role in ("source", "target"):
            docker("create", "--name", names[role], "--label", LABEL, "-p", "%s:%d:8000" % (addresses[role], PORT),
                   IMAGE, "python3", "-u", "-c", SERVER)
        yield names, addresses
    finally:
        for name in names.values():
            docker("rm", "-f", name, check=False)


def wait_answering(address, limit=20.0):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if probe.http_state(address, PORT, timeout=0.5)[0]:
            return
        time.sleep(0.05)
    raise AssertionError("%s:%d never answered" % (address, PORT))


def test_probe_measures_an_injected_gap_within_50ms(two_servers):
    names, addresses = two_servers
    docker("start", names["source"])
    wait_answering(addresses["source"])
    injected = 1.0
    p = probe.Probe("http", addresses["source"], addresses["target"], port=PORT, deadline=60).start()
    time.sleep(1.0)
    docker("kill", names["source"])
    time.sleep(injected)
    docker("start", names["target"])
    assert p.wait_target_good(hold=0.5, limit=20)
    result = p.stop()

    truth = answered_times(names["target"])[0] - answered_times(names["source"])[-1]
    print("probe gap %.4f s, servers' logs %.4f s, injected %.1f s" % (result["downtime"] or -1, truth, injected))
    assert result["downtime"] is not None, result
    assert abs(result["downtime"] - truth) <= 0.05, (result["downtime"], truth)
    assert result["downtime"] >= injected
    # 20 ms polling: about 50 answers a second from the source before the kill
    assert result["source"]["good"] >= 30
    assert result["source"]["last_value"] == {"counter": 7}
