"""The gateway and the apps on the local lab, through the gateway and the local MEC sandbox.

Applies tests/apps/playbooks/gateway_and_apps.yml (roles mec_gateway and mec_apps) to the lab,
then checks the seed's behaviour on the source host: A1 logs RAB info, A2 counts zone changes of a
moving UE as the sandbox's simulated clock jumps ahead and survives a restart from its volume, its
phase switch writes the runtime log to the volume, A3 holds every zone, and an upstream switch of
the gateway takes effect without restarting any application.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from apps_helpers import APPS, REPO, memcached_get
from labutil import SSH_OPTS, ssh_control_opts

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))
from mec_sandbox.credentials import TokenClient  # noqa: E402

pytestmark = pytest.mark.lab

INVENTORY = REPO / "inventories" / "local" / "hosts.yml"
PLAYBOOK = REPO / "tests" / "apps" / "playbooks" / "gateway_and_apps.yml"
SOURCE = "172.30.77.11"
SANDBOX = os.environ.get("MEC_SANDBOX_URL", "http://172.30.77.5:8080/sandbox")
_VENV_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
ANSIBLE_PLAYBOOK = os.environ.get("ANSIBLE_PLAYBOOK") or (
    _VENV_PLAYBOOK if os.path.exists(_VENV_PLAYBOOK) else "ansible-playbook")


_TOKENS = {}


def http_json(url, data=None, timeout=10):
    """GET (POST with data) JSON; to the lab's sandbox with a bearer token of its client mec-control (the role's
    credentials file, ~/.cache/mec-migration/sandbox/credentials.json, or $MEC_SANDBOX_CREDENTIALS)."""
    headers = {"Content-Type": "application/json"}
    if url.startswith(SANDBOX + "/"):
        tokens = _TOKENS.get(SANDBOX) or _TOKENS.setdefault(SANDBOX, TokenClient.from_file(SANDBOX))
        headers.update(tokens.headers())
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read().decode())


def ssh(host, *argv, check=True):
    """Run a command on a lab host as root with the lab's key."""
    command = (["ssh", "-i", str(INVENTORY.parent / "id_ed25519")] + SSH_OPTS + ssh_control_opts()
               + ["root@" + host, " ".join(argv)])
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)


def play(*extra):
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(INVENTORY), str(PLAYBOOK), *extra], cwd=REPO,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result.stdout


def started_at(host, *names):
    out = ssh(host, "docker", "inspect", *names).stdout
    return {item["Name"].lstrip("/"): item["State"]["StartedAt"] for item in json.loads(out)}


def a2_state():
    return http_json("http://%s:3000/state" % SOURCE)


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, ValueError) as exc:
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.5)
    raise AssertionError("%s: gave up, last value %r" % (what, last))


def find_moving_ue():
    """Advance the sandbox clock until some UE changes zone; return that UE's address."""
    first = {ue["address"]: ue["zoneId"] for ue in http_json(SANDBOX + "/sandbox-ctrl/v1/ues")["ues"]}
    for _ in range(30):
        http_json(SANDBOX + "/sandbox-ctrl/v1/clock", {"advanceBy": 60})
        now = {ue["address"]: ue["zoneId"] for ue in http_json(SANDBOX + "/sandbox-ctrl/v1/ues")["ues"]}
        moved = [address for address, zone in now.items() if first.get(address) != zone]
        if moved:
            return sorted(moved)[0]
    pytest.fail("no UE of the sandbox changed zone within 30 simulated minutes")


@pytest.fixture(scope="module")
def lab():
    if not INVENTORY.exists():
        pytest.skip("the lab is not up (inventories/local/hosts.yml is missing)")
    try:
        http_json(SANDBOX + "/location/v2/queries/zones", timeout=5)
    except (OSError, ValueError) as exc:
        pytest.skip("the local MEC sandbox does not answer at %s: %s" % (SANDBOX, exc))
    mover = find_moving_ue()
    play("-e", "mec_apps_a2_ue_address=" + mover)
    yield {"mover": mover}


def test_second_run_changes_nothing(lab):
    out = play("-e", "mec_apps_a2_ue_address=" + lab["mover"])
    recap = [line for line in out.splitlines() if "changed=" in line]
    assert recap and all("changed=0" in line for line in recap), "\n".join(recap)


def test_a1_logs_rab_info_through_the_gateway(lab):
    def rab_logged():
        logs = ssh(SOURCE, "docker", "logs", "--tail", "50", "a1").stdout
        return "erabInfo [" in logs or None
    wait_until(rab_logged, 30, "A1 logging erabInfo")


def test_a2_counts_zone_changes_and_survives_a_restart(lab):
    before = wait_until(lambda: a2_state()["counter"] >= 1 and a2_state(), 30, "A2 counting a first zone")
    for _ in range(20):
        http_json(SANDBOX + "/sandbox-ctrl/v1/clock", {"advanceBy": 60})
        time.sleep(1)
        if a2_state()["counter"] > before["counter"]:
            break
    grown = a2_state()
    assert grown["counter"] > before["counter"], (before, grown)
    ssh(SOURCE, "docker", "restart", "a2")
    after = wait_until(a2_state, 30, "A2 answering after a restart")
    assert after["counter"] >= grown["counter"]
    logs = ssh(SOURCE, "docker", "logs", "--tail", "100", "a2").stdout
    assert "Using saved state counter=" in logs


def test_a2_phase_switch_writes_the_runtime_log_to_its_volume(lab):
    with urllib.request.urlopen("http://%s:3000/changePhase?inMigration=1" % SOURCE, timeout=10) as response:
        assert response.read() == b"OK"
    try:
        def lines_on_volume():
            out = ssh(SOURCE, "docker", "exec", "a2", "cat", "/data/runtimedata.dat").stdout
            return len(out.splitlines()) >= 5 and out
        content = wait_until(lines_on_volume, 30, "runtimedata.dat growing")
        assert all("userList" in json.loads(line)["response"] for line in content.splitlines())
    finally:
        urllib.request.urlopen("http://%s:3000/changePhase" % SOURCE, timeout=10).read()
    assert a2_state()["inMigration"] == 0


def test_a3_holds_every_zone(lab):
    zones = http_json(SANDBOX + "/location/v2/queries/zones")["zoneList"]["zone"]
    held = memcached_get(SOURCE, 11211, [zone["zoneId"] for zone in zones])
    assert held == {zone["zoneId"]: str(zone["numberOfAccessPoints"]) for zone in zones}


def test_upstream_switch_reloads_the_gateway_only(lab):
    names = ("a1", "a2", "a3", "mec-gateway")
    before = started_at(SOURCE, *names)
    mover = lab["mover"]
    # Switch to an upstream where nothing listens: the apps see gateway errors but keep running.
    play("-e", "mec_apps_a2_ue_address=" + mover, "-e", "mec_apps_a3_load=false",
         "-e", "mec_gateway_upstream_url=http://172.30.77.5:9/sandbox")
    try:
        wait_until(lambda: "request failed: HTTP 50" in ssh(SOURCE, "docker", "logs", "--tail", "20", "a1").stdout,
                   30, "A1 seeing gateway errors after the switch")
        assert started_at(SOURCE, *names) == before
    finally:
        play("-e", "mec_apps_a2_ue_address=" + mover)
    wait_until(lambda: "erabInfo [" in ssh(SOURCE, "docker", "logs", "--tail", "20", "a1").stdout,
               30, "A1 logging RAB info again after switching back")
    assert started_at(SOURCE, *names) == before


def test_images_reach_the_target_host(lab):
    """mec_apps_distribute_to: the target gets the source's images (same ids), a second run sends nothing."""
    target = "172.30.77.12"
    images = ["mec-apps/a1:latest", "mec-apps/a2:latest", "mec-apps/a3:latest", "mec-apps/a3-loader:latest"]
    distribute = REPO / "tests" / "apps" / "playbooks" / "apps_distribute.yml"
    for _ in range(2):
        result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(INVENTORY), str(distribute),
                                 "-e", "mec_apps_a2_ue_address=" + lab["mover"]],
                                cwd=REPO, capture_output=True, text=True, timeout=1800)
        assert result.returncode == 0, result.stdout[-6000:]
    assert "changed=0" in [line for line in result.stdout.splitlines() if "mec-lab-source" in line and "ok=" in line][0]

    def ids(host):
        inspected = json.loads(ssh(host, "docker", "image", "inspect", *images).stdout)
        return {item["RepoTags"][0]: item["Id"] for item in inspected}
    assert ids(target) == ids(SOURCE)
