"""The Podman lab for the tests (playbooks/vars/lab_podman.yml writes inventories/podman/): its hosts as the
inventory names them, and SSH to them with the lab's key and its known_hosts (host keys checked). The one reader of
that inventory for tests/integration/test_podman_lab.py and the Podman migration tests."""

from __future__ import annotations

import os
import subprocess
from collections import namedtuple
from pathlib import Path

import pytest
import yaml

from labutil import ROOT, ssh_control_opts

INVENTORY_DIR = Path(ROOT) / "inventories" / "podman"
INVENTORY = INVENTORY_DIR / "hosts.yml"
SSH_OPTS = ["-i", str(INVENTORY_DIR / "id_ed25519"), "-o", "UserKnownHostsFile=%s" % (INVENTORY_DIR / "known_hosts"),
            "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=10"]

# A host of the Podman lab: inventory name, SSH address, inventory group, migration_engine (docker when unset).
PodmanLabHost = namedtuple("PodmanLabHost", ["name", "address", "group", "engine"])


def podman_lab_hosts():
    """{name: PodmanLabHost} of the Podman lab; a lab that is not up fails the test (it is never skipped)."""
    if not INVENTORY.exists():
        pytest.fail("the Podman lab is not up (no %s): bring it up with `ansible-playbook playbooks/lab.yml "
                    "-e @playbooks/vars/lab_podman.yml` or scripts/test.sh" % os.path.relpath(INVENTORY, ROOT))
    groups = yaml.safe_load(INVENTORY.read_text())["all"]["children"]["mec_hosts"]["children"]
    hosts = {}
    for group, body in groups.items():
        for name, hostvars in (body.get("hosts") or {}).items():
            hostvars = hostvars or {}
            hosts[name] = PodmanLabHost(name, hostvars.get("ansible_host", name), group,
                                        hostvars.get("migration_engine", "docker"))
    return hosts


def ssh(address, command, check=True, timeout=300):
    """A shell command as root on a host of the Podman lab; CompletedProcess with text output."""
    proc = subprocess.run(["ssh"] + SSH_OPTS + ssh_control_opts() + ["root@" + address, command], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError("on %s: %s -> rc %s: %s %s" % (address, command, proc.returncode, proc.stdout[-2000:],
                                                            proc.stderr[-2000:]))
    return proc


def podman_pair():
    """(source, target) of the Podman lab as labtools.Host objects with the podman CLI (mec-pod-source and
    mec-pod-target, the hosts of its groups ``source`` and ``target``), each answering; the lab's absence fails."""
    from labtools import Host

    class PodHost(Host):
        cli = "podman"

        def ssh_argv(self):
            return ["ssh"] + SSH_OPTS + ssh_control_opts() + ["root@" + self.address]

    hosts = podman_lab_hosts()
    pair = []
    for group in ("source", "target"):
        host = next(h for h in hosts.values() if h.group == group)
        assert host.engine == "podman", "the Podman lab's %s %s runs %s" % (group, host.name, host.engine)
        h = PodHost(host.address)
        h.name = host.name
        h.out(["podman", "version", "--format", "{{.Version}}"])
        pair.append(h)
    return tuple(pair)
