"""Helpers of the lab tests: the lab's hosts (tests/labutil.py reads them), ssh to them, the playbook."""
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:  # the benchmarks import this module outside pytest
    sys.path.insert(0, _TESTS)

from labutil import SSH_OPTS, LabHost, lab_hosts, ssh_control_opts, venv_bin  # noqa: E402,F401  (lab_hosts and LabHost: for the importers)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
# the state root of migrate.yml on the hosts (locks/, runs/)
STATE_ROOT = "/var/lib/mec-migration"


def _work_root():
    """migrate.yml's work root on the hosts (one folder per run id): the migration role's default, read from the
    role itself so that the tests follow it; the collection's documented default otherwise."""
    try:
        with open(os.path.join(ROOT, "roles", "migration", "defaults", "main.yml")) as fh:
            value = (yaml.safe_load(fh) or {}).get("migration_work_root")
    except OSError:
        value = None
    return value if isinstance(value, str) and value.startswith("/") and "{" not in value \
        else STATE_ROOT + "/work"


WORK_ROOT = _work_root()
INVENTORY = os.path.join(ROOT, "inventories", "local", "hosts.yml")
BASE_IMAGES = ("mec-lab/base:bookworm", "mec-test/base:bookworm")
KEY = os.path.join(ROOT, "inventories", "local", "id_ed25519")
# the ansible-playbook and ansible of this Python's environment (a venv's bin/), else the ones on PATH
ANSIBLE_PLAYBOOK = venv_bin("ansible-playbook")
ANSIBLE = venv_bin("ansible")


def module(host, name, /, inventory=INVENTORY, **args):
    """Run mec.migration.<name> on the lab host ``host`` (its inventory name) with ad-hoc ``ansible``; returns its
    result (the JSON the ad-hoc output prints after "<host> | SUCCESS =>" or "| FAILED! =>")."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="minimal")
    argv = [ANSIBLE, "-i", inventory, host, "-m", "mec.migration." + name] + (["-a", json.dumps(args)] if args else [])
    p = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    m = re.search(r"^%s \| ([A-Z!]+) => (\{.*)" % re.escape(host), p.stdout, re.M | re.S)
    try:
        result = json.loads(m.group(2))
    except (AttributeError, ValueError) as exc:
        raise AssertionError("ansible %s -m %s: rc %s\n%s\n%s" % (host, name, p.returncode, p.stdout[-2000:],
                                                                  p.stderr[-2000:])) from exc
    if m.group(1) not in ("SUCCESS", "CHANGED"):
        result["failed"] = True
    return result


def wait_container_int(run, cli, name, path, where, minimum=1, timeout=20):
    """The integer in ``path`` of the running container ``name`` (``cli exec ... cat`` through ``run``, a host's
    run), read every 0.2 s until it is at least ``minimum``; AssertionError naming ``where`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        p = run([cli, "exec", name, "cat", path], check=False)
        try:
            last = int(p.stdout.strip())
            if last >= minimum:
                return last
        except ValueError:
            pass
        time.sleep(0.2)
    raise AssertionError("%s:%s on %s stayed at %s (< %s)" % (name, path, where, last, minimum))


class Host(object):
    """A lab host reached over SSH as root, with the CLI of its engine (``cli``: docker, or podman on a Podman host:
    the subcommands the tests use are the same)."""

    cli = "docker"

    def __init__(self, address):
        """``address``: a lab host's address, or its ``LabHost`` from ``lab_hosts()`` (then ``name`` is its inventory
        name; the address otherwise)."""
        self.address = address.address if isinstance(address, LabHost) else address
        self.name = address.name if isinstance(address, LabHost) else address

    def ssh_argv(self):
        """``ssh`` and its options up to the destination (the local lab's key and known_hosts; one shared connection
        per host, labutil.ssh_control_opts)."""
        return ["ssh", "-i", KEY] + SSH_OPTS + ssh_control_opts() + ["root@" + self.address]

    def run(self, argv, check=True, timeout=120, stdin=None):
        """Run ``argv`` on the host over ssh (each word quoted)."""
        cmd = argv if isinstance(argv, str) else " ".join(shlex.quote(a) for a in argv)
        # stdin: never pytest's own (ssh may make an inherited one non-blocking, which breaks Ansible runs)
        p = subprocess.run(self.ssh_argv() + [cmd], capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin,
                           text=stdin is None)
        if check and p.returncode != 0:
            raise AssertionError("on %s: %s -> rc %s: %s" % (self.address, cmd, p.returncode, p.stderr))
        return p

    def put(self, data, argv, timeout=120):
        """Run ``argv`` on the host with ``data`` (bytes) on its stdin."""
        cmd = " ".join(shlex.quote(a) for a in argv)
        p = subprocess.run(self.ssh_argv() + [cmd], input=data, capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("on %s: %s -> rc %s: %s" % (self.address, cmd, p.returncode, p.stderr))

    def out(self, argv, **kw):
        res = self.run(argv, **kw)
        return (res.stdout if isinstance(res.stdout, str) else res.stdout.decode()).strip()

    def docker(self, *args, **kw):
        """The host's engine CLI (docker, or podman on a Podman host)."""
        return self.out([self.cli] + list(args), **kw)

    def inspect(self, name):
        # a container only: a bare `docker inspect` also matches an image whose id starts with the name
        p = self.run([self.cli, "container", "inspect", name], check=False)
        info = json.loads(p.stdout)[0] if p.returncode == 0 else None
        # the container called ``name``, not one whose ID merely starts with it (the engines answer an ID prefix
        # when no container has the name: a missing "a3" was answered by A2's container a343df09...)
        return info if info and (info["Name"].lstrip("/") == name or info["Id"] == name) else None

    def running(self, name):
        info = self.inspect(name)
        return bool(info and info["State"]["Running"])

    def read(self, name, path):
        """A file of a running container (docker exec cat)."""
        return self.docker("exec", name, "cat", path)

    def wait_int(self, name, path, minimum=1, timeout=20):
        return wait_container_int(self.run, self.cli, name, path, self.address, minimum, timeout)

    def stopped_file(self, name, path):
        """A file of a stopped container (docker cp)."""
        tmp = "/tmp/mec-test-cp-%s" % name
        try:
            self.out([self.cli, "cp", "%s:%s" % (name, path), tmp])
            return self.out(["cat", tmp])
        finally:
            self.run(["rm", "-f", tmp], check=False)

    def volume_file(self, volume, path):
        mp = self.docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume)
        return self.out(["cat", os.path.join(mp, path)])

    def app_images(self, name):
        """The repositories of the host's images that a migration of app ``name`` made (mec-migration/<name>; Podman
        names them localhost/mec-migration/<name>), one per line; empty when there is none."""
        return self.run("%s images --format '{{.Repository}}' | grep -F 'mec-migration/%s' || true"
                        % (self.cli, name)).stdout.strip()


def load_image(image, host):
    """docker save on this machine | docker load (or podman load) on the lab host (no registry)."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    try:
        host.run([host.cli, "load"], stdin=save.stdout, timeout=600)
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


# the labs a test that runs on either lab is parametrized over: ``@pytest.mark.parametrize("lab_pair", LAB_PAIRS,
# indirect=True)`` (conftest.py's fixture lab_pair gives the LabPair); the Podman lab's cases are marked podman_lab
LAB_PAIRS = [pytest.param("local", id="local"), pytest.param("podman", id="podman", marks=pytest.mark.podman_lab)]


class LabPair(object):
    """The two hosts of one lab, for the tests that run on either lab (parametrized over ``LAB_PAIRS``): ``which``
    is "local" (the local lab's two Docker hosts, inventories/local) or "podman" (the Podman lab's two Podman hosts,
    inventories/podman); ``src`` and ``dst`` (Host objects with the engine's CLI and the inventory name in ``name``)
    are the hosts of the inventory's groups source and target."""

    def __init__(self, which):
        self.which = which
        if which == "local":
            hosts = lab_hosts()
            self.src, self.dst = Host(hosts["source"]), Host(hosts["target"])
            self.inventory = INVENTORY
        else:
            from podman_labtools import INVENTORY as PODMAN_INVENTORY, podman_pair
            self.src, self.dst = podman_pair()
            self.inventory = str(PODMAN_INVENTORY)
        self.engine = self.src.cli

    def __repr__(self):
        return "LabPair(%s: %s -> %s)" % (self.which, self.src.name, self.dst.name)

    def __iter__(self):
        """``src, dst = pair``."""
        return iter((self.src, self.dst))

    def other(self, host):
        return self.dst if host is self.src else self.src

    def running_on(self, name):
        """The one host of the pair that runs the container ``name``; AssertionError when none or both do."""
        on = [h for h in (self.src, self.dst) if h.running(name)]
        assert len(on) == 1, "%s must run on exactly one host of the %s lab, it runs on %s" % (
            name, self.which, [h.name for h in on])
        return on[0]

    def move(self, results_dir, app, frm, to, timeout=900, **extra):
        """migrate.yml for ``app`` from host ``frm`` to host ``to`` of this lab (migration_source_host and
        migration_target_host: either way with the lab's own inventory); (rc, output, record)."""
        return migrate(results_dir, timeout=timeout, inventory=self.inventory, app=app,
                       migration_source_host=frm.name, migration_target_host=to.name, **extra)

    def apps_up(self):
        """The MEC apps as playbooks/apps.yml leaves them on this lab: the gateway on both hosts, each app on one
        (earlier tests restart the hosts' engines, which stops the apps and gateways). apps.yml (it starts what is
        stopped, changes nothing else; ~25 s on the local lab, ~35 s on the Podman lab) runs only when something
        is not running. Whether it ran."""
        if all(h.running("mec-gateway") for h in self) and \
                all(sum(1 for h in self if h.running(a)) == 1 for a in ("a1", "a2", "a3")):
            return False
        p = subprocess.run([ANSIBLE_PLAYBOOK, "-i", self.inventory, os.path.join(ROOT, "playbooks", "apps.yml")],
                           cwd=ROOT, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, "playbooks/apps.yml failed on the %s lab: %s" % (self.which, p.stdout[-3000:])
        return True


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


def lab_expected():
    """Why the lab (and this machine's engine, CRIU, base image) must be there, or None: CI=true, or the local
    lab's inventory exists (playbooks/lab.yml wrote it: the lab was brought up on this machine)."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return "CI=true"
    if os.path.exists(INVENTORY):
        return "the local lab is up (%s exists)" % os.path.relpath(INVENTORY, ROOT)
    return None


def skip_or_fail(reason):
    """Skip only where no lab is expected; in CI or beside a lab that is up, a missing prerequisite fails."""
    why = lab_expected()
    if why:
        pytest.fail("%s (%s: a missing prerequisite is a failure, not a skip)" % (reason, why))
    pytest.skip(reason)


# ------------------------------------------------------------------------------------- the counter app's state
#
# The counter app (tests/integration/files/counter_app) keeps two counters: /data/count in its volume and
# /tmp/mem.value (in memory only; the file is written, never read back). At each start it prints
# "counter started: volume count N" (N read from the volume); a CRIU restore prints nothing.

STARTED = re.compile(r"^counter started: volume count (\d+)$", re.M)


def counter_starts(host, name):
    """The volume counts the container ``name`` on ``host`` started from, oldest first (its log's start lines;
    a restored process adds none)."""
    p = host.run([host.cli, "logs", name], check=False)
    return [int(n) for n in STARTED.findall((p.stdout or "") + (p.stderr or ""))]


def read_int_now(host, name, path):
    """One read of a counter file of a running container, no waiting: an int, or None."""
    p = host.run([host.cli, "exec", name, "cat", path], check=False)
    try:
        return int(p.stdout.strip())
    except ValueError:
        return None


def read_failure(host, name, path):
    """Why a counter file of ``name`` on ``host`` reads as no int now (for a failed assertion's message)."""
    p = host.run([host.cli, "exec", name, "cat", path], check=False)
    return "%s exec %s cat %s on %s: rc %d, out %r, err %r" % (host.cli, name, path, host.address, p.returncode,
                                                               p.stdout[-200:], p.stderr[-200:])


class StateWatch(object):
    """The counter app's state on its host, read from the host side every 50 ms while a migration runs, so that
    the values at the app's stop are known even when a rollback starts it again.

    A shell loop on ``host`` prints "<volume count> <memory count>" (the volume's count file, the container's
    /tmp/mem.value in its writable layer; "-" for a file that is missing or being written) while the block runs.
    ``volume()`` and ``memory()`` are the series; ``drop(series)`` the first step back, or None."""

    def __init__(self, host, name, volume, volume_file="count", memory_file="/tmp/mem.value"):
        self.host, self.name = host, name
        mp = host.docker("volume", "inspect", "-f", "{{.Mountpoint}}", volume)
        upper = host.docker("container", "inspect", "-f", "{{.GraphDriver.Data.UpperDir}}", name)
        script = ("i=0; while [ $i -lt 24000 ]; do v=$(cat %s 2>/dev/null); m=$(cat %s 2>/dev/null);"
                  " echo \"${v:--} ${m:--}\"; sleep 0.05; i=$((i+1)); done"
                  % (shlex.quote(mp + "/" + volume_file), shlex.quote(upper + memory_file)))
        self._proc = subprocess.Popen(host.ssh_argv() + [script],
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + 10
        while not self.lines and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.lines:
            raise AssertionError("the state watch on %s printed nothing" % host.address)

    def _read(self):
        for line in self._proc.stdout:
            self.lines.append(line.split())

    def stop(self):
        if self._proc.poll() is None:
            self._proc.terminate()
        self._proc.wait(10)
        self._reader.join(10)

    def _series(self, col, missing_is_zero):
        out = []
        for parts in self.lines:
            v = parts[col] if len(parts) > col else "-"
            if v.isdigit():
                out.append(int(v))
            elif missing_is_zero:
                out.append(0)
        return out

    def volume(self, missing_is_zero=True):
        """The volume's count, sample by sample. A missing count file is 0 (the file is replaced atomically,
        so it is never missing while the volume keeps its data), or left out (``missing_is_zero=False``: where
        the volume is removed on purpose, by migration_cleanup)."""
        return self._series(0, missing_is_zero)

    def memory(self):
        """The in-memory count, sample by sample (reads of a file being written are left out)."""
        return self._series(1, False)

    @staticmethod
    def drop(series):
        """The first (before, after) where the series went back, or None."""
        for a, b in zip(series, series[1:]):
            if b < a:
                return (a, b)
        return None
