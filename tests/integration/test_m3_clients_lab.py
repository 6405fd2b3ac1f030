"""m3 (live migration with CRIU) on the local lab with clients connected, as every real service has them.

The seed's apps A1-A3 (deployed on the source by playbooks/apps.yml) move with strategy m3 while a client
holds an established connection: HTTP with a request in flight to A2, a memcached client to A3, and A1's
own outbound polls of the MEC APIs. The migration succeeds (the runtime's CRIU closes established
connections: migration_criu_tcp=close), the state is on the target, the old connection is reset and the
client reconnects to the target and reads the state the source had. Each app is moved back at the end.
A3 with its connected client also runs on the Podman lab's two Podman hosts (issue 20; id ending [podman],
~45 s: its m3 there and back).

Also: the preflight refuses, before anything changes, what would make CRIU refuse the dump (a non-root
process on a host without CAP_SYS_RESOURCE, established connections with migration_criu_tcp=refuse); a dump
that CRIU refuses leaves the source serving and the record names CRIU's reason; a bad policy is refused.
These tests fail (never skip) when the lab or CRIU is missing.
"""
import os
import shlex
import socket
import sys
import time
import uuid

import pytest

from labtools import LAB_PAIRS, ROOT, http_json, migrate

sys.path.insert(0, os.path.join(ROOT, "apps"))
from mec_experiment.probe import Probe  # noqa: E402

pytestmark = pytest.mark.lab

CAP_SYS_RESOURCE = 24


@pytest.fixture(scope="module")
def hosts(lab_pair):
    """The lab's pair (labtools.LabPair: ``src, dst = hosts``; the local lab unless the test is parametrized over
    LAB_PAIRS) with the services up as playbooks/apps.yml leaves them and CRIU working on both hosts."""
    lab_pair.apps_up()
    for h in lab_pair:
        if h.run(["criu", "check"], check=False).returncode != 0:
            pytest.fail("criu check fails on %s: the lab's criu role must make CRIU work" % h.address)
    return lab_pair


class Memcached(object):
    """A persistent memcached text-protocol client (A3's clients keep their connection)."""

    def __init__(self, address):
        self.address = address
        self.sock = socket.create_connection((address, 11211), timeout=5)

    def get(self, key):
        self.sock.sendall(b"get %s\r\n" % key.encode())
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionResetError("memcached closed the connection")
            data += chunk
        lines = data.split(b"\r\n")
        return lines[1].decode() if lines[0].startswith(b"VALUE") else None

    def close(self):
        self.sock.close()


def _was_reset(sock):
    """Whether a held connection was closed under its client (EOF or reset), as the migration must do."""
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except OSError:
        return True


def _established(host, name):
    pid = host.docker("container", "inspect", "-f", "{{.State.Pid}}", name)
    return int(host.out("cat /proc/%s/net/tcp /proc/%s/net/tcp6 2>/dev/null | awk '$4 == \"01\"' | wc -l"
                        % (pid, pid)))


def _move(pair, tmp_path, app, frm=None, to=None, **extra):
    """m3 of ``app`` on the lab's pair, from ``frm`` to ``to`` (the source to the target unless given)."""
    kw = dict(strategy="m3", network_label="lab", migration_cleanup=True)
    kw.update(extra)
    return pair.move(tmp_path, app, frm or pair.src, to or pair.dst, **kw)


@pytest.fixture
def back_home(hosts, tmp_path_factory):
    """Moves every app the test moved back to the source with m3 (which checks the way back too)."""
    moved = []
    yield moved
    src, dst = hosts
    for app in moved:
        if dst.running(app) and not src.running(app):
            rc, out, record = _move(hosts, tmp_path_factory.mktemp("back"), app, dst, src)
            assert rc == 0 and record["status"] == "ok", "moving %s back failed: %s" % (app, out[-2000:])


@pytest.fixture
def on_source(hosts, tmp_path_factory):
    """``on_source(app)``: the app runs on the source (moved back from the target where an earlier test or
    benchmark left it)."""
    src, dst = hosts

    def ensure(app):
        if not src.running(app) and dst.running(app):
            rc, out, record = _move(hosts, tmp_path_factory.mktemp("home"), app, dst, src)
            assert rc == 0, "moving %s to the source first failed: %s" % (app, out[-2000:])
        assert src.running(app), "%s must run on the source (playbooks/apps.yml)" % app
    return ensure


def _assert_migrated(rc, out, record, src, dst, app):
    assert rc == 0, out[-3000:]
    assert record["status"] == "ok" and record["strategy"] == "m3"
    assert record["criu"]["tcp_policy"] == "close" and record["criu"]["errors"] == []
    assert dst.running(app) and not src.running(app)
    assert 0 < record["sizes"]["checkpoint_delta"] < record["sizes"]["checkpoint_final"]
    _assert_stages(record, serves=app != "a1", engine=dst.cli)


SPLIT = ("engine_before_criu", "criu_restore", "criu_hooks", "engine_after_criu", "running_check")


def _assert_stages(record, serves=True, engine="docker"):
    """The downtime stage by stage (records.DOWNTIME_STAGES): the final checkpoint split by CRIU's dump log, the
    target's start by CRIU's restore log (read on the target: Docker's network set-up is the runtime's
    setup-namespaces hook; Podman's restore log is in the container's own folder, with Podman's --print-stats
    figures beside it), the split parts within the start step, and the stages, gaps included, the wall."""
    stages, wall = record["downtime"]["stages"], record["downtime"]["wall"]
    for k in ("source_pause", "source_criu_dump", "source_runtime", "transfer", "target_receive") + SPLIT:
        assert isinstance(stages[k], (int, float)) and stages[k] >= 0, (k, stages)
    assert stages["source_criu_dump"] == record["criu"]["dump_duration"]
    if engine == "docker":
        assert record["criu"]["restore_log"] and "setup-namespaces" in record["criu"]["restore_hooks"], \
            record["criu"]
    else:
        assert record["criu"]["restore_log"].endswith("/userdata/restore.log"), record["criu"]
        restore = record["criu"]["engine_restore_stats"]
        assert restore and restore["runtime_us"] > 0 and restore["pages_restored"] > 0, record["criu"]
    assert stages["criu_restore"] == record["criu"]["restore_duration"] > 0
    start = record["durations"]["relocation"]["target"]["start"]
    assert sum(stages[k] for k in SPLIT) <= start + 0.01, (stages, start)
    assert abs(sum(v for k, v in stages.items() if k != "target_receive" and v is not None) - wall) < 1e-4
    # what no step measured (the gaps between the steps; one clock on the lab's hosts): a few ms, not a stage
    assert abs(stages["unaccounted"]) < 0.1, stages
    # the app's first TCP connection on the target (A1 exposes no port: a client of the MEC APIs only)
    assert (record["downtime"]["serving_after_running"] is not None) == serves, record["downtime"]
    if engine == "docker":
        # the page images went into the engine's checkpoint folder as links (out of the engine's round trip; Podman
        # restores from the folder the delta patched in place: nothing to place)
        assert isinstance(stages["target_place"], (int, float)), stages
        assert record["sizes"]["checkpoint_linked"] > 0.8 * record["sizes"]["checkpoint_final"], record["sizes"]


def test_a2_with_a_client_holding_a_connection(hosts, on_source, back_home, tmp_path):
    src, dst = hosts
    on_source("a2")
    before = http_json(src.address)
    held = socket.create_connection((src.address, 3000), timeout=5)
    held.sendall(b"GET /state HTTP/1.1\r\nHost: a2\r\n")  # a request in flight: the server thread waits
    time.sleep(0.3)
    assert _established(src, "a2") >= 1, "the client's connection must be established in A2 during the dump"
    # clients asking both hosts every 20 ms all along: the target refuses them until it serves the source's state
    probe = Probe("http", src.address, dst.address).start()
    rc, out, record = _move(hosts, tmp_path, "a2", state_check_url="http://127.0.0.1:3000/state")
    back_home.append("a2")
    probe.wait_target_good(hold=0.5, limit=10)
    seen = probe.stop()
    _assert_migrated(rc, out, record, src, dst, "a2")
    # the target's first answer already carries the source's state (no answer from a fresh, empty app)
    assert seen["target"]["good"] > 0 and seen["target"]["failed"] > 0, seen
    assert seen["target"]["first_value"]["requestsOk"] >= before["requestsOk"], (before, seen)
    assert seen["downtime"] is not None and seen["downtime"] < 10, seen
    assert record["state_check"]["passed"] is True
    assert _was_reset(held), "the old connection must be closed under the client (it lived on the source)"
    held.close()
    after = http_json(dst.address)  # the client reconnects, to the target now
    # memory and volume state went along: the counters continue, they did not start again
    assert after["requestsOk"] >= before["requestsOk"] and after["counter"] >= before["counter"], (before, after)
    # an ordinary container of the target's engine: listed, its logs readable, stopped and started again by the
    # engine (from its image now, its volume kept); back_home then migrates it once more (m3)
    assert dst.out(["docker", "ps", "--filter", "name=^a2$", "--format", "{{.Names}} {{.State}}"]) == "a2 running"
    dst.out(["docker", "logs", "--tail", "3", "a2"])
    dst.out(["docker", "stop", "-t", "2", "a2"])
    assert not dst.running("a2")
    dst.out(["docker", "start", "a2"])
    again = http_json(dst.address)
    assert dst.running("a2") and again["counter"] >= after["counter"], (after, again)


@pytest.mark.parametrize("lab_pair", LAB_PAIRS, indirect=True)
def test_a3_with_a_memcached_client_connected(hosts, on_source, back_home, tmp_path):
    src, dst = hosts
    on_source("a3")
    client = Memcached(src.address)
    zones = dict((z, client.get(z)) for z in ("zone01", "zone02", "zone03", "zone04"))
    assert all(v is not None for v in zones.values()), "A3's loader must have filled the zones: %s" % zones
    key = "mt" + uuid.uuid4().hex[:8]
    client.sock.sendall(b"set %s 0 0 5\r\nhello\r\n" % key.encode())
    assert client.sock.recv(64) == b"STORED\r\n"
    rc, out, record = _move(hosts, tmp_path, "a3")
    back_home.append("a3")
    _assert_migrated(rc, out, record, src, dst, "a3")
    with pytest.raises(OSError):
        client.get("zone01")  # the old connection was closed with the source's process
    client.close()
    again = Memcached(dst.address)
    try:
        # memory-only state (memcached has no volume): only a live migration keeps it
        assert again.get(key) == "hello"
        assert dict((z, again.get(z)) for z in zones) == zones
    finally:
        again.close()


def test_a1_while_it_polls_the_mec_apis(hosts, on_source, back_home, tmp_path):
    src, dst = hosts
    on_source("a1")
    # A1 polls the RNI API through the gateway every 200 ms: its own connections are in flight at the dump
    rc, out, record = _move(hosts, tmp_path, "a1")
    back_home.append("a1")
    _assert_migrated(rc, out, record, src, dst, "a1")
    time.sleep(1.5)
    logs = dst.run(["docker", "logs", "a1"]).stderr + dst.run(["docker", "logs", "a1"]).stdout
    # the same process goes on polling on the target (restored, not restarted: no second start line)
    assert "erabInfo" in logs, logs[-2000:]
    assert "Started app" not in logs, "m3 must restore A1's process, not start it again"


def test_preflight_refuses_non_root_without_cap_sys_resource(hosts, tmp_path):
    src, dst = hosts
    capbnd = int(src.out("awk '/^CapBnd/ {print $2}' /proc/self/status"), 16)
    if capbnd & (1 << CAP_SYS_RESOURCE):
        pytest.fail("this lab's hosts have CAP_SYS_RESOURCE: the check cannot be exercised here (the local lab "
                    "runs its hosts in the capabilities mode, without it)")
    name = "mt" + uuid.uuid4().hex[:8]
    src.out(["docker", "run", "-d", "--name", name, "--user", "1000", "--label", "mec.migration.test=1",
             "mec-apps/a2:latest", "sleep", "600"])
    try:
        before = src.inspect(name)
        rc, out, record = migrate(tmp_path, app=name, strategy="m3", network_label="lab")
        assert rc != 0
        assert "lacks CAP_SYS_RESOURCE" in out and "Run the app as root" in out, out[-3000:]
        assert record["status"] == "failed" and record["outcome"] == "unchanged" and record["phase"] == "preflight"
        # nothing changed: the source runs the same container, the target has nothing of it
        assert src.inspect(name)["Id"] == before["Id"] and src.running(name)
        assert dst.inspect(name) is None
        assert dst.out("ls /var/tmp/mec-migration 2>/dev/null | grep -c %s || true" % record["run_id"]) == "0"
    finally:
        for h in (src, dst):
            h.run(["docker", "rm", "-f", name], check=False)


def test_refuse_policy_with_a_connected_client_stops_at_the_preflight(hosts, on_source, tmp_path):
    src, dst = hosts
    on_source("a2")
    held = socket.create_connection((src.address, 3000), timeout=5)
    held.sendall(b"GET /state HTTP/1.1\r\n")
    try:
        time.sleep(0.3)
        rc, out, record = migrate(tmp_path, app="a2", strategy="m3", network_label="lab", migration_criu_tcp="refuse")
        assert rc != 0
        assert "established TCP connection(s) and the TCP policy is refuse" in out, out[-3000:]
        assert record["outcome"] == "unchanged" and src.running("a2") and dst.inspect("a2") is None
    finally:
        held.close()


def test_unknown_tcp_policy_is_refused_with_the_valid_values(hosts, on_source, tmp_path):
    src, dst = hosts
    on_source("a2")
    rc, out, record = migrate(tmp_path, app="a2", strategy="m3", network_label="lab", migration_criu_tcp="keep")
    assert rc != 0
    assert "migration_criu_tcp=keep" in out and "close" in out and "established" in out and "refuse" in out
    assert src.running("a2") and dst.inspect("a2") is None


UNIX_HOLDER = ("import socket, time\n"
               "s = socket.socket(socket.AF_UNIX)\n"
               "s.connect('/run/mec-test/peer.sock')\n"
               "while True:\n"
               "    time.sleep(0.1)\n")


def test_a_dump_criu_refuses_leaves_the_source_serving_and_the_record_names_why(hosts, tmp_path):
    """A connection to a unix socket of the host (outside the container) is one CRIU will not dump, and one
    the preflight cannot see: the pre-relocation checkpoint fails, the source goes on, CRIU says why."""
    src, dst = hosts
    name = "mt" + uuid.uuid4().hex[:8]
    sock_dir = "/run/mec-test-" + name
    server = ("import os, socket, time\n"
              "s = socket.socket(socket.AF_UNIX); s.bind('%s/peer.sock'); s.listen(1)\n"
              "c, _ = s.accept(); time.sleep(600)\n" % sock_dir)
    src.out("mkdir -p %s && (setsid python3 -c %s > /dev/null 2>&1 < /dev/null &) ; sleep 0.5"
            % (sock_dir, shlex.quote(server)))
    try:
        src.out(["docker", "run", "-d", "--name", name, "--user", "0", "--label", "mec.migration.test=1",
                 "-v", "%s:/run/mec-test" % sock_dir, "mec-apps/a2:latest", "python3", "-c", UNIX_HOLDER])
        time.sleep(1)
        assert src.running(name)
        rc, out, record = migrate(tmp_path, app=name, strategy="m3", network_label="lab")
        assert rc != 0
        assert record["status"] == "failed" and record["outcome"] == "rolled_back", record
        assert record["criu"]["errors"], "the record must name CRIU's reason"
        assert any("unix" in e.lower() or "socket" in e.lower() for e in record["criu"]["errors"]), record["criu"]
        assert "CRIU says:" in out
        assert src.running(name), "the source must go on serving"
        assert dst.inspect(name) is None
    finally:
        for h in (src, dst):
            h.run(["docker", "rm", "-f", name], check=False)
        src.run("pkill -f %s; rm -rf %s" % (sock_dir, sock_dir), check=False)
