"""Helpers of the lab tests: the lab's hosts (tests/labutil.py reads them), ssh to them, the playbook."""
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time

import pytest
import yaml

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:  # the benchmarks import this module outside pytest
    sys.path.insert(0, _TESTS)

from labutil import SSH_OPTS, LabHost, lab_hosts  # noqa: E402,F401  (lab_hosts and LabHost: for the importers)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INVENTORY = os.path.join(ROOT, "inventories", "local", "hosts.yml")
BASE_IMAGES = ("mec-lab/base:bookworm", "mec-test/base:bookworm")
KEY = os.path.join(ROOT, "inventories", "local", "id_ed25519")
# the ansible-playbook of this Python's environment (a venv's bin/), else the one on PATH
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
if not os.path.exists(ANSIBLE_PLAYBOOK):
    ANSIBLE_PLAYBOOK = shutil.which("ansible-playbook") or "ansible-playbook"


class Host(object):
    def __init__(self, address):
        """``address``: a lab host's address, or its ``LabHost`` from ``lab_hosts()``."""
        self.address = address.address if isinstance(address, LabHost) else address

    def run(self, argv, check=True, timeout=120, stdin=None):
        """Run ``argv`` on the host over ssh (each word quoted)."""
        cmd = argv if isinstance(argv, str) else " ".join(shlex.quote(a) for a in argv)
        # stdin: never pytest's own (ssh may make an inherited one non-blocking, which breaks Ansible runs)
        p = subprocess.run(["ssh", "-i", KEY] + SSH_OPTS + ["root@" + self.address, cmd], capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin,
                           text=stdin is None)
        if check and p.returncode != 0:
            raise AssertionError("on %s: %s -> rc %s: %s" % (self.address, cmd, p.returncode, p.stderr))
        return p

    def out(self, argv, **kw):
        res = self.run(argv, **kw)
        return (res.stdout if isinstance(res.stdout, str) else res.stdout.decode()).strip()

    def docker(self, *args, **kw):
        return self.out(["docker"] + list(args), **kw)

    def inspect(self, name):
        # a container only: a bare `docker inspect` also matches an image whose id starts with the name
        p = self.run(["docker", "container", "inspect", name], check=False)
        return json.loads(p.stdout)[0] if p.returncode == 0 else None

    def running(self, name):
        info = self.inspect(name)
        return bool(info and info["State"]["Running"])

    def read(self, name, path):
        """A file of a running container (docker exec cat)."""
        return self.docker("exec", name, "cat", path)

    def wait_int(self, name, path, minimum=1, timeout=20):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            p = self.run(["docker", "exec", name, "cat", path], check=False)
            try:
                last = int(p.stdout.strip())
                if last >= minimum:
                    return last
            except ValueError:
                pass
            time.sleep(0.2)
        raise AssertionError("%s:%s on %s stayed at %s (< %s)" % (name, path, self.address, last, minimum))

    def stopped_file(self, name, path):
        """A file of a stopped container (docker cp)."""
        tmp = "/tmp/mec-test-cp-%s" % name
        try:
            self.out(["docker", "cp", "%s:%s" % (name, path), tmp])
            return self.out(["cat", tmp])
        finally:
            self.run(["rm", "-f", tmp], check=False)

    def volume_file(self, volume, path):
        mp = self.docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume)
        return self.out(["cat", os.path.join(mp, path)])


def load_image(image, host):
    """docker save on this machine | docker load on the lab host (no registry)."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    try:
        host.run(["docker", "load"], stdin=save.stdout, timeout=600)
    finally:
        save.stdout.close()
        save.wait()


def migrate(results_dir, timeout=900, inventory=INVENTORY, **extra):
    """Run playbooks/migrate.yml on the lab; returns (rc, output, record or None)."""
    extra.setdefault("results_dir", str(results_dir))
    args = [ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(ROOT, "playbooks", "migrate.yml"),
            "-e", json.dumps(extra)]
    p = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    records = sorted(f for f in os.listdir(str(results_dir)) if f.endswith(".json")) \
        if os.path.isdir(str(results_dir)) else []
    record = None
    if records:
        with open(os.path.join(str(results_dir), records[-1])) as fh:
            record = json.load(fh)
    return p.returncode, p.stdout + p.stderr, record


def reverse_inventory():
    """The lab's inventory with source and target swapped (inventories/local/hosts-reverse.yml, beside the
    lab's own so that its key and known_hosts paths hold): to move an app back with migrate.yml."""
    with open(INVENTORY) as fh:
        inv = yaml.safe_load(fh)
    groups = inv["all"]["children"]["mec_hosts"]["children"]
    groups["source"], groups["target"] = groups["target"], groups["source"]
    path = os.path.join(os.path.dirname(INVENTORY), "hosts-reverse.yml")
    with open(path, "w") as fh:
        fh.write("# The local lab with source and target swapped (written by the tests and benchmarks).\n")
        yaml.safe_dump(inv, fh, default_flow_style=False, sort_keys=False)
    return path


def http_json(address, port=3000, path="/state", timeout=15.0):
    """GET ``path`` from a host's published port as JSON (A2's state), retried on a fresh connection each time
    until it answers or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=2) as s:
                s.sendall(b"GET " + path.encode() + b" HTTP/1.0\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            return json.loads(data.split(b"\r\n\r\n", 1)[1])
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def docker_cli(*args, check=True, timeout=300):
    return subprocess.run(["docker"] + list(args), check=check, capture_output=True, text=True, timeout=timeout)


def local_base_image():
    """A base image already on this engine (never pulled: there is no registry)."""
    for ref in BASE_IMAGES:
        if docker_cli("image", "inspect", ref, check=False).returncode == 0:
            return ref
    return None


def skip_or_fail(reason):
    """Skip outside CI; in CI (env CI=true) what a test needs must be there, so fail."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("%s (CI=true: a missing prerequisite is a failure, not a skip)" % reason)
    pytest.skip(reason)
