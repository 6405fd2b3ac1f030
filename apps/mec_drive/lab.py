"""The zones lab as the drive uses it: its inventory, its hosts over SSH, the services A2 needs (apps.yml)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
ZONES_INVENTORY = ROOT / "inventories" / "zones" / "hosts.yml"
LAB_UP = "ansible-playbook playbooks/lab.yml -e @playbooks/vars/lab_zones.yml"


class DriveError(RuntimeError):
    """A problem that stops the drive, said so that the user knows what to do."""


@dataclass
class Host:
    name: str
    address: str
    zones: list[str]


class ZonesLab:
    def __init__(self, inventory: Path = ZONES_INVENTORY):
        self.inventory = Path(inventory)
        self.inv_dir = self.inventory.parent
        if not self.inventory.exists():
            raise DriveError(f"the zones lab is not up ({self.inventory} is missing): bring it up with `{LAB_UP}` "
                             "(about 10 min; it does not touch the shared two-host lab)")
        doc = yaml.safe_load(self.inventory.read_text(encoding="utf-8"))
        self.hosts: dict[str, Host] = {}
        self._walk(doc.get("all", {}), False)
        self.zone_host: dict[str, str] = {}
        for h in self.hosts.values():
            for z in h.zones:
                if z in self.zone_host:
                    raise DriveError(f"zone {z} is served by {self.zone_host[z]} and {h.name} in {self.inventory}: "
                                     "one host per zone")
                self.zone_host[z] = h.name
        if not self.zone_host:
            raise DriveError(f"no host of {self.inventory} says which zone it serves (mec_zones / mec_zone)")

    def _walk(self, group: dict, in_mec_hosts: bool) -> None:
        for name, hv in (group.get("hosts") or {}).items():
            hv = hv or {}
            if in_mec_hosts:
                zones = list(hv.get("mec_zones") or ([hv["mec_zone"]] if hv.get("mec_zone") else []))
                self.hosts[name] = Host(name, hv.get("ansible_host", name), zones)
        for child_name, child in (group.get("children") or {}).items():
            self._walk(child or {}, in_mec_hosts or child_name == "mec_hosts")

    def ssh(self, host: str, command: str, timeout: float = 60, check: bool = True) -> str:
        h = self.hosts[host]
        argv = ["ssh", "-i", str(self.inv_dir / "id_ed25519"),
                "-o", f"UserKnownHostsFile={self.inv_dir / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
                "-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "root@" + h.address, command]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DriveError(f"on {host} ({h.address}): `{command}` did not answer within {timeout:.0f} s") from None
        if check and p.returncode != 0:
            raise DriveError(f"on {host} ({h.address}): `{command}` exited {p.returncode}: {p.stderr.strip()[-400:]}")
        return p.stdout.strip()

    def check(self) -> None:
        """Every host answers over SSH and its engine runs; else say which and how to bring the lab up."""
        down = []
        for name in self.hosts:
            try:
                self.ssh(name, "docker info --format '{{.ServerVersion}}'", timeout=20)
            except DriveError as exc:
                down.append(str(exc))
        if down:
            raise DriveError("the zones lab does not answer: " + "; ".join(down) + f". Bring it up with `{LAB_UP}`")

    def remove_app(self, app: str, volume: str) -> dict:
        """Remove the app's container, its volume and the images earlier hops brought, on every host."""
        removed = {}
        for name in self.hosts:
            removed[name] = self.ssh(name, (
                f"docker container inspect {app} >/dev/null 2>&1 && docker rm -f {app} >/dev/null && echo container; "
                f"docker volume inspect {volume} >/dev/null 2>&1 && docker volume rm -f {volume} >/dev/null && "
                "echo volume; "
                f"docker images -q 'mec-migration/{app}' | sort -u | xargs -r docker rmi -f >/dev/null 2>&1; true"))
        return removed

    def running_on(self, app: str) -> list[str]:
        return [n for n in self.hosts
                if self.ssh(n, f"docker inspect -f '{{{{.State.Running}}}}' {app} 2>/dev/null || true") == "true"]


def ansible_env() -> dict:
    venv_bin = str(Path(sys.executable).parent)
    return dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), PATH=f"{venv_bin}:{os.environ['PATH']}")


def deploy_a2(lab: ZonesLab, sandbox_url: str, ue: str, log_path: Path, token_file: Path) -> None:
    """playbooks/apps.yml on the zones lab: the gateways of every host pointing at the drive's sandbox with its
    gateways' token (``token_file``, made for that URL), A2 (alone) on the source host counting ``ue``'s zones."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(lab.inventory), "playbooks/apps.yml",
            "-e", json.dumps({"apps_local_sandbox": False, "mec_gateway_upstream_url": sandbox_url,
                              "mec_gateway_upstream_token_file": str(token_file),
                              "apps_a2_ue_address": ue, "mec_apps_enabled": ["a2"]})]
    with open(log_path, "w", encoding="utf-8") as log:
        p = subprocess.run(argv, cwd=ROOT, env=ansible_env(), stdout=log, stderr=subprocess.STDOUT, timeout=1800)
    if p.returncode != 0:
        raise DriveError(f"starting A2 and the gateways on the zones lab failed (playbooks/apps.yml exited "
                         f"{p.returncode}); its output is in {log_path}")


def start_from_run_config(lab: ZonesLab, host: str, app: str) -> None:
    """Start the app on ``host`` with the docker run that roles/mec_apps wrote there (/opt/mec-apps/run-<app>.json):
    the same image and options as playbooks/apps.yml gives it, without a playbook run."""
    path = f"/opt/mec-apps/run-{app}.json"
    try:
        argv = json.loads(lab.ssh(host, f"cat {path}"))["argv"]
    except (DriveError, ValueError, KeyError) as exc:
        raise DriveError(f"on {host}: no usable {path} ({exc}): run the drive once without --skip-deploy "
                         "(playbooks/apps.yml writes it)") from None
    lab.ssh(host, " ".join(shlex.quote(a) for a in argv))
