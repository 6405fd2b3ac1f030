"""Helpers for tests that use the local lab: its inventory, SSH to its hosts, ansible-playbook runs."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import namedtuple
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "inventories" / "local" / "hosts.yml"
KEY = ROOT / "inventories" / "local" / "id_ed25519"
# The hosts' keys, written by playbooks/lab.yml from the hosts themselves; an unknown or changed key is refused.
KNOWN_HOSTS = ROOT / "inventories" / "local" / "known_hosts"
SSH_OPTS = ["-o", "UserKnownHostsFile=%s" % KNOWN_HOSTS, "-o", "StrictHostKeyChecking=yes", "-o", "LogLevel=ERROR",
            "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]

_CONTROL_DIR = []
_CONTROL_LOCK = threading.Lock()


def ssh_control_opts():
    """ssh options that let this process's commands to one lab host share one SSH connection (OpenSSH's
    ControlMaster; a connection's handshake costs ~0.15 s of CPU on each side and ~0.5 s of wall on a loaded lab, and
    the lab tests run thousands of short commands). The sockets are in a folder of this process's own
    (``tempfile.mkdtemp``: mode 0700) that goes at its exit, with the masters; a master also ends 30 s after its
    last use. The first connection to a host checks its key as any other; tests of SSH itself (which key or host
    key is accepted) use ``SSH_OPTS`` alone, never these."""
    with _CONTROL_LOCK:
        if not _CONTROL_DIR:
            folder = tempfile.mkdtemp(prefix="mec-tests-ssh-")
            atexit.register(_close_masters, folder)
            _CONTROL_DIR.append(folder)
    return ["-o", "ControlMaster=auto", "-o", "ControlPath=%s/%%C" % _CONTROL_DIR[0], "-o", "ControlPersist=30s"]


def _close_masters(folder):
    for name in os.listdir(folder):
        subprocess.run(["ssh", "-o", "ControlPath=" + os.path.join(folder, name), "-O", "exit", "lab-host"],
                       capture_output=True, stdin=subprocess.DEVNULL, timeout=10, check=False)
    shutil.rmtree(folder, ignore_errors=True)


# A host of the lab: its inventory name and the address SSH reaches it at.
LabHost = namedtuple("LabHost", ["name", "address"])


def venv_bin(name):
    """A tool of the virtual environment that runs the tests (ansible-playbook, molecule)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def lab_hosts(inventory=INVENTORY):
    """{'source': LabHost(name, address), 'target': LabHost(name, address)} from the lab's inventory (the address is
    ``ansible_host``, else the name). The one reader of the lab's hosts for the tests."""
    data = yaml.safe_load(Path(inventory).read_text())
    groups = data["all"]["children"]["mec_hosts"]["children"]
    out = {}
    for group in ("source", "target"):
        (name, hostvars), = groups[group]["hosts"].items()
        out[group] = LabHost(name, (hostvars or {}).get("ansible_host", name))
    return out


def ssh(address, command, check=True, timeout=300, input=None):
    """Run a shell command on a lab host as root; returns CompletedProcess with text output."""
    argv = ["ssh", "-i", str(KEY)] + SSH_OPTS + ["root@" + address, command]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError("ssh %s %r failed (rc=%s): %s %s" % (address, command, proc.returncode, proc.stdout,
                                                                  proc.stderr))
    return proc


def ansible_playbook(*args, check=False, timeout=1800, env=None):
    """Run ansible-playbook from the repository root with its ansible.cfg."""
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1")
    full_env.update(env or {})
    proc = subprocess.run([venv_bin("ansible-playbook")] + list(args), cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError("ansible-playbook %s failed (rc=%s):\n%s\n%s" % (" ".join(args), proc.returncode,
                                                                              proc.stdout[-6000:], proc.stderr[-3000:]))
    return proc


def recap(output):
    """{host: {'ok': n, 'changed': n, 'failed': n, ...}} from a PLAY RECAP."""
    result = {}
    for line in output.split("PLAY RECAP", 1)[-1].splitlines():
        match = re.match(r"^(\S+)\s*:\s*(.*)$", line.strip())
        if match and "ok=" in match.group(2):
            result[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return result
