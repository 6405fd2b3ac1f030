"""Lab access from the controller: the inventory's two hosts (with the engine each runs), SSH to them (host keys
checked against the inventory's known_hosts when it names one), ansible-playbook runs and their first fatal cause."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("docker", "podman")


def lab_hosts(inventory):
    """{'source': {...}, 'target': {...}} with name, address, user, key, known_hosts and engine (the host's
    ``migration_engine``, docker when unset: the CLI the experiment uses there) from a lab inventory (YAML)."""
    data = yaml.safe_load(Path(inventory).read_text())
    mec = data["all"]["children"]["mec_hosts"]
    hostvars = mec.get("vars", {}) or {}
    inv_dir = str(Path(inventory).resolve().parent)
    out = {}
    for group in ("source", "target"):
        (name, hv), = mec["children"][group]["hosts"].items()
        hv = dict(hostvars, **(hv or {}))
        key = str(hv.get("ansible_ssh_private_key_file", "")).replace("{{ inventory_dir }}", inv_dir)
        common = str(hv.get("ansible_ssh_common_args", "")).replace("{{ inventory_dir }}", inv_dir)
        known = re.search(r"UserKnownHostsFile=(\S+)", common)
        engine = hv.get("migration_engine", "docker")
        if engine not in ENGINES:
            raise ValueError("%s in %s has migration_engine %r: docker or podman" % (name, inventory, engine))
        out[group] = {"name": name, "address": hv.get("ansible_host", name), "user": hv.get("ansible_user", "root"),
                      "key": key, "known_hosts": known.group(1) if known else "", "engine": engine}
    return out


def cli(host):
    """The engine CLI of a host from lab_hosts (docker for a host dict without one)."""
    return host.get("engine", "docker")


def ssh_argv(host, command):
    argv = ["ssh", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    if host.get("known_hosts"):
        argv += ["-o", "UserKnownHostsFile=%s" % host["known_hosts"], "-o", "StrictHostKeyChecking=yes"]
    if host.get("key"):
        argv += ["-i", host["key"]]
    return argv + ["%s@%s" % (host["user"], host["address"]), command]


def ssh(host, command, timeout=60, input=None):
    return subprocess.run(ssh_argv(host, command), capture_output=True, text=True, timeout=timeout, input=input)


def ansible_playbook(inventory, playbook, extra, timeout):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(playbook)]
    for item in extra:
        argv += ["-e", item if isinstance(item, str) else json.dumps(item)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def ansible_cause(output: str) -> str:
    """The first fatal task and its message from ansible-playbook's output."""
    task, lines = "", output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("TASK ["):
            task = line[6:].split("]")[0]
        if line.startswith(("fatal:", "failed:")) or "ERROR!" in line:
            m = re.search(r'"msg": "((?:[^"\\]|\\.)*)"', line + " ".join(lines[i + 1:i + 3]))
            msg = m.group(1) if m else line
            return ("%s: %s" % (task, msg))[:600]
    return (output.strip().splitlines() or ["no output"])[-1][:600]
