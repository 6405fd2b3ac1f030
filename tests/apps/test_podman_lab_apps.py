"""The gateway and the apps deployed by playbooks/apps.yml on the Podman lab (inventories/podman/hosts.yml):
mec-pod-source and mec-pod-target run Podman, mec-pod-docker runs Docker, and the lab has its own MEC sandbox on its
network (the shared lab's sandbox is not reachable from there).

The module's fixture runs the playbook once with ``apps_reset=true`` (the apps back on mec-pod-source whatever ran
before), then the tests check: a second run changes nothing; each host runs the gateway with its own engine at the
same address, the apps run under Podman as root with the gateway's fixed address (Podman's network has no DNS for
names); A2 counts the zone changes of the sandbox's moving UE through the Podman host's gateway; A3 holds every zone;
A1 logs RAB information. Cost: ~1.5 min (two playbook runs of ~35 s when nothing changes, and the counter).
Markers lab and podman_lab: a lab that is not up fails the test."""

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from apps_helpers import APPS, REPO, memcached_get
from labutil import ssh_control_opts

if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))
from mec_sandbox.credentials import TokenClient  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.podman_lab]

INVENTORY_DIR = REPO / "inventories" / "podman"
INVENTORY = INVENTORY_DIR / "hosts.yml"
PLAYBOOK = REPO / "playbooks" / "apps.yml"
SSH_OPTS = ["-i", str(INVENTORY_DIR / "id_ed25519"), "-o", "UserKnownHostsFile=%s" % (INVENTORY_DIR / "known_hosts"),
            "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10"]
_VENV_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
ANSIBLE_PLAYBOOK = os.environ.get("ANSIBLE_PLAYBOOK") or (
    _VENV_PLAYBOOK if os.path.exists(_VENV_PLAYBOOK) else "ansible-playbook")
GATEWAY_ADDRESS = "10.77.0.2"


class PodLab:
    """What the lab's inventory says: its hosts (address, engine) and its own sandbox."""

    def __init__(self, inventory):
        doc = yaml.safe_load(inventory.read_text())["all"]
        self.hosts = {}
        for group, body in doc["children"]["mec_hosts"]["children"].items():
            for name, hostvars in (body.get("hosts") or {}).items():
                self.hosts[name] = dict(address=hostvars["ansible_host"], group=group,
                                        engine=hostvars.get("migration_engine", "docker"))
        labvars = doc.get("vars") or {}
        self.sandbox = labvars.get("mec_gateway_upstream_url")
        self.credentials = os.path.join(labvars.get("mec_sandbox_credentials_dir", ""), "credentials.json")
        self.source = next(h for h in self.hosts.values() if h["group"] == "source")
        self._tokens = None

    def ssh(self, host, *argv):
        """Run a command on a lab host as root; its output."""
        out = subprocess.run(["ssh"] + SSH_OPTS + ssh_control_opts() + ["root@" + host["address"], " ".join(argv)],
                             capture_output=True, text=True, timeout=120)
        what = "%s on %s" % (" ".join(argv), host["address"])
        assert out.returncode == 0, "%s: rc=%s %s" % (what, out.returncode, out.stderr[-2000:])
        return out.stdout

    def inspect(self, host, *names):
        return {i["Name"].lstrip("/"): i for i in json.loads(self.ssh(host, host["engine"], "inspect", *names))}

    def sandbox_json(self, path, data=None):
        """The lab's sandbox, with a token of its client mec-control (the lab's own credentials)."""
        if self._tokens is None:
            self._tokens = TokenClient.from_file(self.sandbox, self.credentials)
        headers = dict(self._tokens.headers(), **{"Content-Type": "application/json"})
        body = None if data is None else json.dumps(data).encode()
        with urllib.request.urlopen(urllib.request.Request(self.sandbox + path, data=body, headers=headers),
                                    timeout=10) as resp:
            return json.loads(resp.read().decode())

    def a2_state(self):
        with urllib.request.urlopen("http://%s:3000/state" % self.source["address"], timeout=10) as resp:
            return json.loads(resp.read().decode())


def play(*extra):
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(INVENTORY), str(PLAYBOOK), *extra], cwd=REPO,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def podlab():
    if not INVENTORY.exists():
        pytest.fail("the Podman lab is not up (no %s): ansible-playbook playbooks/lab.yml "
                    "-e @playbooks/vars/lab_podman.yml" % INVENTORY)
    lab = PodLab(INVENTORY)
    assert lab.sandbox and lab.sandbox.startswith("http://172.30.81."), (
        "the Podman lab's inventory names no sandbox of its own on its network (mec_gateway_upstream_url=%r): "
        "bring the lab up again with playbooks/lab.yml -e @playbooks/vars/lab_podman.yml" % lab.sandbox)
    lab.first_run = play("-e", "apps_reset=true")
    return lab


def test_second_run_changes_nothing(podlab):
    recap = [line for line in play().splitlines() if "changed=" in line]
    assert len(recap) == 1 + len(podlab.hosts), recap  # localhost (the sandbox) and every host
    assert all("changed=0" in line for line in recap), "\n".join(recap)


def test_each_host_runs_the_gateway_with_its_engine_at_the_same_address(podlab):
    engines = {h["engine"] for h in podlab.hosts.values()}
    assert engines == {"docker", "podman"}, podlab.hosts
    for name, host in podlab.hosts.items():
        gateway = podlab.inspect(host, "mec-gateway")["mec-gateway"]
        assert gateway["State"]["Running"], (name, gateway["State"])
        endpoint = gateway["NetworkSettings"]["Networks"]["mec-apps"]
        assert endpoint["IPAddress"] == GATEWAY_ADDRESS, (name, endpoint)
        subnets = json.loads(podlab.ssh(host, host["engine"], "network", "inspect", "mec-apps"))[0]
        subnets = [c["Subnet"] for c in (subnets.get("IPAM") or {}).get("Config") or []] + [
            s["subnet"] for s in subnets.get("subnets") or []]
        assert subnets == ["10.77.0.0/24"], (name, subnets)
        # the other engine's CLI is not what runs it (a Podman host has no docker CLI at all)
        other = "docker" if host["engine"] == "podman" else "podman"
        assert subprocess.run(["ssh"] + SSH_OPTS + ["root@" + host["address"], other, "inspect", "mec-gateway"],
                              capture_output=True, timeout=60).returncode != 0, name


def test_the_apps_run_under_podman_as_root_with_the_gateways_address(podlab):
    source = podlab.source
    assert source["engine"] == "podman"
    apps = podlab.inspect(source, "a1", "a2", "a3")
    for name, info in apps.items():
        assert info["State"]["Running"], (name, info["State"])
        assert info["Config"]["User"] in ("0", "root"), (name, info["Config"]["User"])
    for name in ("a1", "a2"):
        assert "MEC_GATEWAY_URL=http://%s" % GATEWAY_ADDRESS in apps[name]["Config"]["Env"], apps[name]["Config"]["Env"]
    assert any(m.get("Name") == "a2-data" and m["Destination"] == "/data" for m in apps["a2"]["Mounts"])


def test_a2_counts_zone_changes_through_the_podman_hosts_gateway(podlab):
    def state():
        deadline = time.monotonic() + 30
        while True:
            try:
                return podlab.a2_state()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    before = state()
    for _ in range(30):
        podlab.sandbox_json("/sandbox-ctrl/v1/clock", {"advanceBy": 60})
        time.sleep(1)
        if state()["counter"] > before["counter"]:
            break
    after = state()
    assert after["counter"] > before["counter"], (before, after)
    assert after["requestsOk"] > before["requestsOk"], (before, after)


def test_a3_holds_every_zone(podlab):
    zones = podlab.sandbox_json("/location/v2/queries/zones")["zoneList"]["zone"]
    held = memcached_get(podlab.source["address"], 11211, [zone["zoneId"] for zone in zones])
    assert held == {zone["zoneId"]: str(zone["numberOfAccessPoints"]) for zone in zones}


def test_a1_logs_rab_info_through_the_gateway(podlab):
    deadline = time.monotonic() + 30
    while "erabInfo [" not in podlab.ssh(podlab.source, "podman", "logs", "--tail", "20", "a1"):
        assert time.monotonic() < deadline, "A1 logged no erabInfo within 30 s"
        time.sleep(1)
