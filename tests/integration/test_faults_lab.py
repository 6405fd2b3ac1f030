"""Fault campaign on the local lab: playbooks/migrate.yml (and recover.yml) under faults, for m1, m2 and m3.

After each fault: the app runs on exactly one host and lost nothing, nothing that takes disk is left (tarball,
image, work directory on the target; the source's work directory), the app's locks are free and a record says
what happened. "Lost nothing" is measured, not waited for (labtools.StateWatch reads the app's counters on the
source host every 50 ms during the run):
- the volume keeps a mark written before the run, on whichever host runs the app;
- the volume's count never went back on the source (a volume started again empty, or from an older copy, does);
- the app on the target started from the count the source stopped at, read from the stopped source after the
  run (m1/m2: the start line of its log; m3: restored, no start line at all, and the count goes on);
- m3 keeps the in-memory count: on the target it is at least the stopped source's, and the process was restored
  (a restarted one prints a start line and counts from 1); after a rollback it never went back on the source.
Every injected fault leaves a "fired" marker on its host (the time its action took effect), which the test
asserts: a fault that did not happen fails the test instead of passing it.
The campaign's table is written to results/fault_campaign.json and printed at the end.

The faults injected while one migrate.yml runs are a table (``FAULTS``) run by one test; the controller's
death, the lock and m1's lost configuration have tests of their own.
Then bad inputs: each refused with a clear message before anything changes on either host (on the Podman pair
too: the unknown container, which the source's Podman is asked about, and one of the controller's refusals; see
PODMAN_BAD_INPUTS for why not all of them).
Every test uses its own app name and a migration port of its own (4780x), so runs of other sessions on the
same lab do not collide with these.

A representative set runs on the Podman lab's pair too (mec-pod-source -> mec-pod-target, inventories/podman;
marker podman_lab; ids ending in -podman): the faults whose injection or handling is Podman's own (no daemon: its
API service killed on the target during the relocation, and on the source before the pre-relocation's engine calls;
the target's volume in Podman's store full; the controller killed, then recover.yml) and, for m3, CRIU missing on the
target (refused at the preflight, ~30 s) and CRIU broken on the target for an app without a restart policy (the
source's final checkpoint is then runc's own dump, not Podman's: the target's restore fails after the stop and the
rollback restores the source in place from that dump, its in-memory count going on; ~30 s). ~70-80 s each
otherwise, ~6 min together.
"""
import contextlib
import errno
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from labtools import (ANSIBLE_PLAYBOOK, INVENTORY, ROOT, STATE_ROOT, WORK_ROOT, StateWatch, counter_starts,
                      docker_cli, load_image, migrate, read_failure, read_int_now)
from podman_labtools import INVENTORY as PODMAN_INVENTORY, podman_pair

pytestmark = pytest.mark.lab

STRATEGIES = ("m1", "m2", "m3")
# the relocation's transfer; the product's default unless MEC_TEST_TRANSFER says otherwise (e.g. ssh)
TRANSFER = os.environ.get("MEC_TEST_TRANSFER")
# one row per fault run; tests/integration/conftest.py writes results/fault_campaign.json and prints the table
FAULT_CAMPAIGN = []
_PORTS = iter(range(47810, 47900))


class App(object):
    """A counter app on the lab's source; everything it leaves on both hosts is removed at teardown. ``engine``:
    the lab's (docker: the local lab, inventories/local; podman: the Podman lab's two Podman hosts,
    inventories/podman)."""

    def __init__(self, lab, image, strategy, engine="docker", restart="unless-stopped"):
        self.src, self.dst = lab
        self.image, self.strategy, self.engine, self.restart = image, strategy, engine, restart
        self.inventory = INVENTORY if engine == "docker" else str(PODMAN_INVENTORY)
        self.cli = self.src.cli
        self.name = "mf" + uuid.uuid4().hex[:8]
        self.volume = self.name + "-data"
        self.port = next(_PORTS)
        self.run_ids = []
        self.mark = uuid.uuid4().hex
        self.watch = None

    def start(self):
        argv = [self.cli, "run", "-d", "--name", self.name, "--label", "mec.migration.test=1",
                "-v", self.volume + ":/data"] + (["--restart", self.restart] if self.restart else [])
        if self.strategy == "m3":
            argv += ["--user", "0"]  # CRIU dumps only root tasks on hosts without CAP_SYS_RESOURCE
        self.src.out(argv + [self.image])
        self.src.wait_int(self.name, "/data/count", minimum=3)
        # the volume's mark: a volume made again (empty) on either host lacks it
        self.src.out([self.cli, "exec", self.name, "sh", "-c", "echo %s > /data/mark" % self.mark])
        return self.src.inspect(self.name)

    def watch_state(self):
        """Start reading the app's counters on the source (until check_outcome)."""
        self.watch = StateWatch(self.src, self.name, self.volume)
        return self.watch

    def run_id(self):
        rid = "tf" + uuid.uuid4().hex[:10]
        self.run_ids.append(rid)
        return rid

    def migrate_vars(self, **extra):
        """migrate.yml's variables for this app: a run id, port and wait of its own unless given."""
        extra.setdefault("run_id", self.run_id())
        extra.setdefault("migration_port", self.port)
        extra.setdefault("migration_wait_timeout", 30)
        if TRANSFER:
            extra.setdefault("transfer", TRANSFER)
        return dict(extra, app=self.name, strategy=self.strategy)

    def migrate(self, tmp_path, **extra):
        return migrate(tmp_path, inventory=self.inventory, **self.migrate_vars(**extra))

    def locked_on(self, host):
        return host.run(["test", "-e", "%s/locks/%s.lock" % (STATE_ROOT, self.name)], check=False).returncode == 0

    def cleanup(self):
        if self.watch is not None:
            self.watch.stop()
        for h in (self.src, self.dst):
            h.run("{c} rm -f {n}; {c} volume rm -f {v};"
                  " {c} images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' | grep -F 'mec-migration/{n}:'"
                  " | xargs -r {c} rmi -f;"
                  " rm -f {s}/locks/{n}.lock".format(c=h.cli, n=self.name, v=self.volume, s=STATE_ROOT), check=False)
            for rid in self.run_ids:
                h.run(["rm", "-rf", "%s/%s" % (WORK_ROOT, rid), "%s/runs/%s.json" % (STATE_ROOT, rid),
                       _marker(rid), "/tmp/mec-fault-%s" % rid], check=False)


@pytest.fixture(scope="session")
def podman_fault_lab(counter_image):
    """(source, target) of the Podman lab (labtools.Host with the podman CLI), the counter image on the source."""
    pair = podman_pair()
    want = docker_cli("image", "inspect", "-f", "{{.Id}}", counter_image).stdout.strip()
    if pair[0].run(["podman", "image", "inspect", "-f", "{{.Id}}", counter_image], check=False).stdout.strip() != want:
        load_image(counter_image, pair[0])
    return pair


@pytest.fixture
def make_app(request):
    """make_app(strategy, engine="docker", restart="unless-stopped"): a counter app on the source of the engine's lab
    (the local lab for docker, the Podman lab for podman: only that lab is needed), with that restart policy (None:
    none)."""
    apps = []

    def _make(strategy, engine="docker", restart="unless-stopped"):
        if engine == "docker":
            a = App(request.getfixturevalue("lab"), request.getfixturevalue("lab_image"), strategy, restart=restart)
        else:
            a = App(request.getfixturevalue("podman_fault_lab"), request.getfixturevalue("counter_image"), strategy,
                    engine="podman", restart=restart)
        apps.append(a)
        return a
    yield _make
    for a in apps:
        a.cleanup()


def lost_nothing(app, memory_kept):
    """The app's state after the run, on the host that runs it (see the module's docstring); returns a short
    description for the campaign's table, raises AssertionError naming what was lost."""
    watch = app.watch
    watch.stop()
    on_target = app.dst.running(app.name)
    host = app.dst if on_target else app.src
    count_now = read_int_now(host, app.name, "/data/count")  # once, at once: no waiting for a counter to catch up
    mem_now = read_int_now(host, app.name, "/tmp/mem.value")
    vol_series, mem_series = watch.volume(), watch.memory()
    mark = host.run("cat \"$(%s volume inspect -f '{{.Mountpoint}}' %s)/mark\"" % (host.cli, app.volume),
                    check=False)
    assert mark.stdout.strip() == app.mark, \
        "the volume on %s is not the app's (its mark is gone: made again empty): %s" % (host.address,
                                                                                        mark.stderr.strip())
    drop = StateWatch.drop(vol_series)
    assert drop is None, "the volume's count went back on the source from %d to %d" % drop
    starts = counter_starts(host, app.name)
    if on_target:
        final = int(app.src.volume_file(app.volume, "count"))  # the stopped source's last count
        assert final == vol_series[-1], (final, vol_series[-5:])
        assert count_now is not None and count_now >= final, \
            "the target counts %s, the source stopped at %d" % (count_now, final)
        if app.strategy == "m3":
            mem_final = int(app.src.stopped_file(app.name, "/tmp/mem.value"))
            assert starts == [], "m3: the target's app was started again (%s), not restored" % starts
            assert mem_now is not None and mem_now >= mem_final, \
                "m3: the in-memory count is %s on the target, the source stopped at %d" % (mem_now, mem_final)
        else:
            assert starts == [final], "the target's app started from %s, the source stopped at %d" % (starts, final)
    else:
        assert count_now is not None and count_now >= vol_series[-1], (count_now, vol_series[-5:])
        if app.strategy == "m3" and memory_kept:
            mdrop = StateWatch.drop(mem_series)
            assert mdrop is None, "m3: the in-memory count went back on the source from %d to %d" % mdrop
            assert len(starts) == 1, "m3: the source's app was started again (%s), not restored" % starts
            assert mem_now is not None and mem_now >= mem_series[-1], \
                "m3: the source's in-memory count is %s after the rollback, it was at %d (%s)" % (
                    mem_now, mem_series[-1], read_failure(host, app.name, "/tmp/mem.value"))
    # and it goes on counting
    host.wait_int(app.name, "/data/count", minimum=(count_now or 0) + 1)
    return "volume %s -> %s%s" % (vol_series[0], count_now, ", memory %s" % mem_now if app.strategy == "m3" else "")


def check_outcome(app, record, fault, out, expect, memory_kept=True):
    """The invariants after a fault; appends the campaign's row and asserts."""
    src_runs, dst_runs = app.src.running(app.name), app.dst.running(app.name)
    row = dict(fault=fault, strategy=app.strategy, outcome=(record or {}).get("outcome"),
               status=(record or {}).get("status"), one_host=src_runs != dst_runs, passed=False)
    FAULT_CAMPAIGN.append(row)
    assert record is not None, "no record written:\n" + out[-3000:]
    assert src_runs != dst_runs, "the app must run on exactly one host (source %s, target %s):\n%s" % (
        src_runs, dst_runs, out[-3000:])
    row["state"] = lost_nothing(app, memory_kept)
    # nothing that takes disk is left: the run's work dirs on both hosts, its image on the target if the app
    # is back on the source; the app's locks are free
    for rid in app.run_ids:
        for h in (app.src, app.dst):
            assert h.run(["test", "-e", "%s/%s" % (WORK_ROOT, rid)], check=False).returncode != 0, \
                "%s:%s/%s left behind" % (h.address, WORK_ROOT, rid)
    if src_runs:
        assert app.dst.app_images(app.name) == "", "the target keeps the run's image"
        assert app.dst.inspect(app.name) is None, "the target keeps the half-made container"
    for h in (app.src, app.dst):
        assert not app.locked_on(h), "%s keeps the app's lock" % h.address
    # a string, which pytest prints whole (a tuple's repr it cuts to a line), with CRIU's reason when there is one
    assert record["outcome"] in expect, "outcome %s, not %s; error: %s; CRIU: %s" % (
        record["outcome"], " or ".join(expect), record.get("error"), (record.get("criu") or {}).get("errors"))
    row.update(lost_nothing=True, passed=True)


def _fill_volume(app, mib):
    app.src.out([app.cli, "exec", app.name, "dd", "if=/dev/zero", "of=/data/filler", "bs=1M", "count=%d" % mib])


def _marker(rid):
    """The file a fault's action leaves on its host once it took effect (its time, seconds since the epoch)."""
    return "/tmp/mec-fault-%s.fired" % rid


def fired_at(host, rid):
    """When the fault of run ``rid`` took effect on ``host`` (its marker), or None."""
    p = host.run(["cat", _marker(rid)], check=False)
    try:
        return float(p.stdout.split()[0])
    except (ValueError, IndexError):
        return None


def _watch(host, condition, action, marker, timeout=150):
    """On ``host``: once the shell ``condition`` holds and ``action`` (shell) succeeds, write ``marker``; in a
    thread. An action that fails (nothing to act on yet) is tried again while the condition holds."""
    script = ("i=0; while [ $i -lt %d ]; do if { %s; } && { %s; }; then date +%%s.%%N > %s; exit 0; fi;"
              " sleep 0.05; i=$((i+1)); done; exit 1" % (timeout * 20, condition, action, marker))
    t = threading.Thread(target=host.run, args=(script,), kwargs={"check": False, "timeout": timeout + 30})
    t.start()
    return t


@contextlib.contextmanager
def _when(run, host, condition, action, undo=None):
    """The fault ``action`` (shell) run on ``host`` once ``condition`` holds, while the block runs; ``undo`` (a
    callable) afterwards, whatever happened. The fault's marker is on ``host`` (run.fired_on)."""
    run.fired_on = host
    w = _watch(host, condition, action, _marker(run.rid))
    try:
        yield
        w.join(200)
    finally:
        if undo:
            undo()


def _streaming(app):
    return "[ -s \"$(%s volume inspect -f '{{.Mountpoint}}' %s 2>/dev/null)/filler\" ]" % (app.cli, app.volume)


# Podman's API service answers (the modules' way to the engine; the podman CLI needs no service)
_PODMAN_API_UP = ("python3 -c \"import docker; docker.DockerClient(base_url='unix:///run/podman/podman.sock')"
                  ".ping()\"")


def _engine_back(host):
    """The engine of ``host`` started again by its supervisor (dockerd, or Podman's API service), answering."""
    if host.cli == "podman":
        host.run(["/usr/local/sbin/mec-podman-service-supervisor", "start"], check=False)
        up = _PODMAN_API_UP
    else:
        host.run(["/usr/local/sbin/mec-dockerd-supervisor", "start"], check=False)
        up = "docker info --format '{{.ServerVersion}}'"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if host.run(up, check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("the engine of %s did not come back" % host.address)


def _recover_if_locked(app, tmp_path, out, record):
    """A host that could not be cleaned (or a source that did not come back) during the rescue keeps the run's
    lock: recover.yml then finishes."""
    if not any(app.locked_on(h) for h in (app.src, app.dst)):
        return out, record
    assert "recover.yml" in out, out[-3000:]
    rc, rout, rrecord = _recover(app, tmp_path / "recovered")
    assert rc == 0, rout[-3000:]
    return out + rout, rrecord


def _latest_record(results_dir):
    """The newest record (by name) in ``results_dir``, or None."""
    results_dir = str(results_dir)
    names = sorted(f for f in os.listdir(results_dir) if f.endswith(".json")) if os.path.isdir(results_dir) else []
    if not names:
        return None
    with open(os.path.join(results_dir, names[-1])) as fh:
        return json.load(fh)


def _recover(app, tmp_path):
    p = subprocess.run([ANSIBLE_PLAYBOOK, "-i", app.inventory, os.path.join(ROOT, "playbooks", "recover.yml"),
                        "-e", json.dumps(dict(app=app.name, results_dir=str(tmp_path)))],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr, _latest_record(tmp_path)


# ------------------------------------------------------------------------------------------- faults during one run

class FaultRun(object):
    """One migrate.yml under a fault: the app, the run's id, the app's container before, what the run gave, and
    the host the fault's marker is on."""

    def __init__(self, app, started):
        self.app, self.started = app, started
        self.rid = app.run_id()
        self.rc = self.out = self.record = None
        self.fired_on = None
        self.notes = {}

    def fired_at(self):
        return fired_at(self.fired_on, self.rid) if self.fired_on is not None else None


# the engine's processes as their supervisors record them: dockerd; Podman has no daemon, the modules reach it
# through its API service (`podman system service`; each container's conmon is left alone)
_ENGINE_PIDS = dict(docker="$(cat /run/mec-dockerd.pid.supervisor) $(cat /run/mec-dockerd.pid)",
                    podman="$(cat /run/mec-podman-service.pid.supervisor) $(cat /run/mec-podman-service.pid)")


def _kill_target_engine(run):
    return _when(run, run.app.dst, _streaming(run.app), "kill -KILL %s" % _ENGINE_PIDS[run.app.engine],
                 undo=lambda: _engine_back(run.app.dst))


def _cut_transfer(run):
    # the receiver's end of the relocation's stream, killed once the volume is being sent
    cut = ("pid=$(ss -Htnp state established '( sport = :%d )' | sed -n 's/.*pid=\\([0-9]*\\).*/\\1/p' | head -1);"
           " [ -n \"$pid\" ] && kill -KILL $pid" % run.app.port)
    return _when(run, run.app.dst, _streaming(run.app), cut)


def _fill_target_work_dir(run):
    # the run's work dir becomes a full 40 MiB file system once the run has begun on the target (the preflight saw
    # the work root's free space): not even m2/m3's image archive fits, though it carries only the layers the target
    # lacks (a few KB for a commit on an image the target holds); the file system is private (0700) as the run's
    # work dir must be, so that the run fails on the full disk, not on the folder's mode
    wd = "%s/%s" % (WORK_ROOT, run.rid)
    return _when(run, run.app.dst, "[ -f %s/runs/%s.json ]" % (STATE_ROOT, run.rid),
                 "mkdir -p %s && mount -t tmpfs -o size=40m,mode=0700 tmpfs %s && "
                 "{ dd if=/dev/zero of=%s/.fill bs=1M count=64 2>/dev/null; [ -s %s/.fill ]; }" % (wd, wd, wd, wd),
                 undo=lambda: run.app.dst.run("umount %s 2>/dev/null; rm -rf %s" % (wd, wd), check=False))


_VOLUME_ROOT = dict(docker="/var/lib/docker/volumes", podman="/var/lib/containers/storage/volumes")


def _fill_target_volume(run):
    # the target's volume (made with the container during pre-relocation) gets a 4 MiB file system: the
    # volume stream (64 MiB) does not fit
    mp = "%s/%s/_data" % (_VOLUME_ROOT[run.app.engine], run.app.volume)
    return _when(run, run.app.dst, "[ -d %s ]" % mp, "mount -t tmpfs -o size=4m tmpfs %s" % mp,
                 undo=lambda: run.app.dst.run("umount %s 2>/dev/null" % mp, check=False))


def _corrupt_checkpoint(run):
    # once the pre-relocation checkpoint has arrived in the target container's checkpoint folder (the app still
    # serves on the source), its page images are overwritten with garbage of the same size and time stamp:
    # rsync's quick check does not see it, the relocation's delta does (every file's SHA-256 against the
    # source's), so the run must roll back, the source restored from its own final checkpoint
    # (where the target keeps it: the engine's checkpoints/<run>-final/ as it arrives, the container's own
    # mec-checkpoint-images/<run>-final/ once the relocation's receiver moved it out of the engine's folder)
    pages = " ".join("/var/lib/docker/containers/*/%s/*-final/pages-*.img" % d
                     for d in ("checkpoints", "mec-checkpoint-images"))
    corrupt = ("n=0; for f in %s; do [ -f \"$f\" ] && [ ! -L \"$f\" ] || continue; s=$(stat -c %%s \"$f\");"
               " t=$(stat -c %%Y \"$f\"); head -c $s /dev/urandom > \"$f\"; touch -d @$t \"$f\"; n=$((n+1)); done;"
               " [ $n -gt 0 ]" % pages)
    return _when(run, run.app.dst, "ls %s 2>/dev/null | grep -q . && sleep 0.2" % pages, corrupt)


@contextlib.contextmanager
def _criu_on_target(run, broken):
    """The target's CRIU moved away (``broken``: replaced by one whose `criu check` passes and all else fails,
    so that the restore on the target breaks after the stop; its marker has a line per other call, its time and
    arguments, the first one being the fault's time); put back afterwards."""
    dst, criu = run.app.dst, "/usr/local/sbin/criu"
    run.fired_on = dst
    dst.out(["mv", criu, criu + ".mec-fault"])
    try:
        if broken:
            dst.out(["sh", "-c", "printf '#!/bin/sh\\n[ \"$1\" = check ] && { echo Looks good.; exit 0; }\\n"
                                 "echo \"$(date +%%%%s.%%%%N) $*\" >> %s; echo broken criu >&2; exit 1\\n'"
                                 " > %s && chmod 0755 %s"
                     % (_marker(run.rid), criu, criu)])
        else:
            # the marker: the lab's CRIU (the criu role's) is gone from its place; the distribution's older one
            # that may be left on the PATH fails `criu check` on this kernel, as the preflight reports
            dst.out("! test -e %s && date +%%s.%%N > %s" % (criu, _marker(run.rid)))
        yield
    finally:
        dst.run(["rm", "-f", criu], check=False)
        dst.out(["mv", criu + ".mec-fault", criu])


def _restart_source_engine(run):
    # once the image tarball is being written on the source (export or save: <dest>.part, renamed to image.tar when
    # complete): the engine is killed (SIGKILL: on SIGTERM dockerd lets a running save finish), its supervisor
    # starts it again about a second later and the engine starts the app again (restart policy unless-stopped); the
    # tarball's stream from the engine is cut, so the pre-relocation fails. The app's writable layer gets 64 MiB
    # first, so that the stream lasts long enough for the watch (every 50 ms) to see it: the counter's own layer is
    # a few bytes. (Until session 23 the watch waited for image.tar, which exists only once complete, and sent
    # SIGTERM: the save was never cut, and the fault relied on the relocation reaching the engine within its
    # restart; in CI the engine was sometimes back first, and on a quiet lab always: migrated, not rolled back.)
    run.app.src.out([run.app.cli, "exec", run.app.name, "dd", "if=/dev/zero", "of=/tmp/layer-filler", "bs=1M",
                     "count=64"])
    return _when(run, run.app.src, "[ -s %s/%s/image.tar.part ]" % (WORK_ROOT, run.rid),
                 "kill -KILL $(cat /run/mec-dockerd.pid)", undo=lambda: _engine_back(run.app.src))


def _source_api_service_dead(run):
    # Podman: its API service (and the supervisor that would start it again) killed once the run's work dir is made
    # on the source, back only after the run: the pre-relocation's calls to the engine fail there, the app runs on
    # in its conmon. (Podman's save answers once it wrote the whole archive, so the "engine restarted while the
    # tarball is written" fault finds the stream complete: the API service must be gone before the save.)
    return _when(run, run.app.src, "[ -d %s/%s ]" % (WORK_ROOT, run.rid), "kill -KILL %s" % _ENGINE_PIDS["podman"],
                 undo=lambda: _engine_back(run.app.src))


def _hostile_tar(name):
    """A tar with ../ and absolute members, each a file that must never appear on the target."""
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w") as t:
        for n in ("../../../../tmp/mec-hostile-%s" % name, "/tmp/mec-hostile-abs-%s" % name):
            i = tarfile.TarInfo(n)
            i.size = 5
            t.addfile(i, io.BytesIO(b"pwned"))
    return b.getvalue()


# The source host, with the collection's own stream code (transport.py) and a wrong secret: hello, the receiver's
# answer (its nonce and proof: the real receiver was reached), a proof made with the wrong secret, then the hostile
# archive.
_WRONG_KEY_SENDER = r"""
import os, secrets, socket, sys, types
sys.path.insert(0, sys.argv[1])
# the stream code's sibling modules need Ansible, which the host has only inside a module's payload: stand-ins
# for the names transport.py imports from them (none of which the handshake uses)
pkg = "ansible_collections.mec.migration.plugins.module_utils"
for mod, names in {"docker_client": {"LANG_C": {}, "hostname": lambda: "?"},
                   "fsutil": {"PrivateDirError": Exception, "dir_size": None, "private_dir": None},
                   "module_glue": {"MigrationError": Exception}}.items():
    stub = types.ModuleType(pkg + "." + mod)
    stub.__dict__.update(names)
    sys.modules[stub.__name__] = stub
from ansible_collections.mec.migration.plugins.module_utils import transport as t
host, port, run_id, path, sport = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
wrong = secrets.token_bytes(t.STREAM_SECRET_SIZE)
s = socket.create_connection((host, port), timeout=10, source_address=("", sport))
nonce_s = secrets.token_bytes(t.STREAM_NONCE_SIZE)
s.sendall(t.STREAM_MAGIC + bytes([t.STREAM_PROTECTION_AES256GCM]) + nonce_s)
answer = b""
while len(answer) < t.STREAM_NONCE_SIZE + t.STREAM_MAC_SIZE:
    chunk = s.recv(4096)
    if not chunk:
        break
    answer += chunk
print("answered", len(answer))
try:
    nonce_r = answer[:t.STREAM_NONCE_SIZE]
    s.sendall(t._proof(wrong, b"sender", t.STREAM_PROTECTION_AES256GCM, run_id, nonce_s, nonce_r))
    s.sendall(open(path, "rb").read())
    s.settimeout(10)
    print("after", repr(s.recv(100)))
except OSError as exc:
    print("after", type(exc).__name__)
"""


@contextlib.contextmanager
def _send_hostile_archives(run):
    """The hostile archive sent to the receiver's lab address (the one it binds) as soon as it listens: from this
    machine (not the source: dropped by address) and from the source host with a wrong key (dropped at the
    challenge). The real source's connection to the receiver is held back meanwhile (its SYNs dropped on the
    source host, the attacker's own source port excepted; the sender retries until it gets through), so that
    the attacks meet a receiver still waiting for its peer. The marker is written once both reached the
    listening receiver; what each saw is in run.notes["hostile"]."""
    app, dst, src = run.app, run.app.dst, run.app.src
    run.fired_on = dst
    sport = app.port + 1000
    hold = ["OUTPUT", "-p", "tcp", "-d", dst.address, "--dport", str(app.port), "!", "--sport", str(sport),
            "-j", "DROP"]
    tar = _hostile_tar(app.name)
    work = "/tmp/mec-fault-%s" % run.rid
    # the collection's module_utils on the source, for its stream code
    src.out(["mkdir", "-p", work + "/ansible_collections/mec/migration/plugins"])
    pack = subprocess.run(["tar", "-C", os.path.join(ROOT, "plugins"), "-c", "module_utils"], capture_output=True,
                          check=True).stdout
    src.put(pack, ["tar", "-C", work + "/ansible_collections/mec/migration/plugins", "-x"])
    src.put(tar, ["sh", "-c", "cat > %s/hostile.tar" % work])
    notes = run.notes.setdefault("hostile", {})

    def attack():
        listening = "ss -Hltn '( sport = :%d )' | grep -q '%s:%d'" % (app.port, dst.address, app.port)
        deadline = time.monotonic() + 300
        while dst.run(listening, check=False).returncode != 0:
            if time.monotonic() > deadline:
                notes["listening"] = False
                return
            time.sleep(0.05)
        notes["listening"] = dst.out("ss -Hltn '( sport = :%d )'" % app.port)
        # 1. from this machine
        try:
            with socket.create_connection((dst.address, app.port), timeout=5) as s:
                notes["foreign_connected"] = True
                try:
                    s.sendall(tar)
                    s.shutdown(socket.SHUT_WR)
                    notes["foreign_answer"] = repr(s.recv(100))
                except OSError as exc:
                    # a plain OSError says its errno: ENOTCONN when the receiver had reset the connection before
                    # our shutdown()
                    notes["foreign_answer"] = type(exc).__name__ + (
                        ":" + errno.errorcode.get(exc.errno, str(exc.errno)) if type(exc) is OSError else "")
        except OSError as exc:
            notes["foreign_connected"] = "refused: %s" % exc
        # 2. from the source, with a wrong key
        p = src.run(["python3", "-c", _WRONG_KEY_SENDER, work, dst.address, str(app.port), run.rid,
                     work + "/hostile.tar", str(sport)], check=False, timeout=60)
        notes["wrong_key"] = (p.returncode, p.stdout.strip(), p.stderr.strip()[-500:])
        if notes.get("foreign_connected") is True and p.returncode == 0:
            dst.run("date +%%s.%%N > %s" % _marker(run.rid), check=False)
        src.run(["iptables", "-D"] + hold, check=False)  # the real source may connect now

    src.out(["iptables", "-I"] + hold)
    t = threading.Thread(target=attack)
    t.start()
    try:
        yield
    finally:
        t.join(360)
        while src.run(["iptables", "-D"] + hold, check=False).returncode == 0:
            pass


def _rolled_back_first(run):
    """migrate.yml's own record (before any recover.yml) says it rolled back."""
    assert run.record["outcome"] == "rolled_back", run.out[-3000:]


def _image_refused_in_pre_relocation(run):
    # scp reports a full disk on the far side as "write remote ...: Failure" (the SFTP protocol's word)
    assert run.record["phase"] == "pre_relocation" and "image" in run.record["error"], run.out[-3000:]


def _checkpoint_mismatch_caught(run):
    """The corruption happened while the app still served on the source, and the relocation's delta refused the
    changed copy (the SHA-256 check); the source was restored from its final checkpoint (its memory kept: the
    campaign's memory check)."""
    stopped = run.record["timestamps"]["source_stopped_at"]
    assert stopped is None or run.fired_at() < stopped, (run.fired_at(), stopped)
    assert run.record["outcome"] == "rolled_back" and "does not match the source's" in (run.record["error"] or ""), \
        run.record.get("error")
    assert run.record["rollback"]["method"] == "checkpoint", run.record["rollback"]


def _refused_at_preflight_for_criu(run):
    assert "criu" in run.out and "Preflight failed on target host" in run.out, run.out[-3000:]
    assert run.record["outcome"] == "unchanged" and run.record["phase"] == "preflight"
    assert run.app.src.inspect(run.app.name)["Id"] == run.started["Id"], "the source's container was replaced"


def _restore_failed_on_target(run):
    assert run.record["phase"] == "relocation" and run.record["outcome"] == "rolled_back", run.record.get("error")


def _restored_in_place_from_runc_checkpoint(run):
    """Podman, an app without a restart policy: the source's final checkpoint was runc's own dump (not Podman's),
    the target's restore failed (the broken CRIU was called there, after the source stopped), and the rollback
    restored the source in place from that checkpoint (the campaign's checks: the in-memory count went on, no second
    start line)."""
    rec = run.record
    assert rec["phase"] == "relocation" and rec["outcome"] == "rolled_back", (rec["phase"], rec.get("error"))
    assert rec["criu"]["checkpoint_via"] == "runtime" and rec["criu"]["engine_dump_stats"] is None, rec["criu"]
    stopped = rec["timestamps"]["source_stopped_at"]
    calls = run.fired_on.run(["cat", _marker(run.rid)], check=False).stdout.splitlines()
    assert stopped is not None and any(float(c.split()[0]) > stopped for c in calls), \
        "the target's CRIU was not called after the source's stop (stopped at %s; its calls: %s)" % (stopped, calls)
    assert "restore" in (rec.get("error") or "").lower() and run.app.dst.name in rec["error"], rec.get("error")
    assert rec["rollback"]["method"] == "checkpoint" and rec["rollback"]["running"] is True, rec["rollback"]
    assert run.app.src.inspect(run.app.name)["Id"] == run.started["Id"], "the source's container was replaced"


def _save_cut_by_the_engine(run):
    """The engine went down once the tarball was being written: the save is cut (the pre-relocation fails), or,
    when the tarball was complete first, the relocation finds the engine down or the app not yet started again by
    it; either way the run rolls back and its error names the engine or the app not running. The marker's time is
    before the run ended."""
    rec = run.record
    assert rec["outcome"] == "rolled_back" and rec["phase"] in ("pre_relocation", "relocation"), \
        (rec["phase"], rec.get("error"))
    if rec["phase"] == "relocation":  # the engine still down, or back but the app not yet started again by it
        error = rec.get("error") or ""
        assert ("%s engine" % ("Docker" if run.app.engine == "docker" else "Podman") in error
                or "Container %s is not running on the source host" % run.app.name in error), error
    assert run.fired_at() < rec["timestamps"]["finished_at"]


def _api_service_named(run):
    """The run failed in the pre-relocation on the source, its error naming the host and how to start the API
    service; the app was never stopped there (the same container, started once)."""
    rec = run.record
    assert rec["phase"] == "pre_relocation", (rec["phase"], rec.get("error"))
    err = " ".join((run.out or "").split())
    want = ("The Podman engine on host %s is not reachable (unix:///run/podman/podman.sock)" % run.app.src.name,
            "Start its API service (systemctl start podman.socket, or podman system service")
    assert all(w in err for w in want) and all(w in " ".join(rec["error"].split()) for w in want), err[-3000:]
    # the rollback could not ask the engine either: the source's state is not known, and recover.yml is named
    assert "Source: not known to run (its rollback failed: The Podman engine on host %s" % run.app.src.name in err
    assert "playbooks/recover.yml -e app=%s" % run.app.name in err
    assert run.app.src.inspect(run.app.name)["Id"] == run.started["Id"]
    assert counter_starts(run.app.src, run.app.name) == [0]


def _hostile_archives_dropped(run):
    notes = run.notes["hostile"]
    assert notes.get("foreign_connected") is True, notes
    # the receiver closed the foreign connection without a byte of answer
    assert notes["foreign_answer"] in ("b''", "ConnectionResetError", "BrokenPipeError", "OSError:ENOTCONN"), notes
    rc, outp, err = notes["wrong_key"]
    # the real receiver answered the hello (nonce + proof: 64 bytes) and then dropped the wrong proof
    assert rc == 0 and "answered 64" in outp, notes
    assert outp.splitlines()[-1] in ("after b''", "after ConnectionResetError", "after BrokenPipeError"), notes
    assert run.app.dst.run("ls /tmp/mec-hostile-*%s* 2>/dev/null" % run.app.name, check=False).stdout.strip() == "", \
        "the hostile archive wrote outside the volume"
    assert run.app.src.run("ls /tmp/mec-hostile-*%s* 2>/dev/null" % run.app.name,
                           check=False).stdout.strip() == ""


@dataclass(frozen=True)
class Fault:
    """A fault injected while one migrate.yml runs, and what the run must end in."""
    id: str  # the test's id
    name: str  # the campaign table's row
    inject: Callable  # (FaultRun) -> a context manager: the fault armed inside it, undone when it exits
    expect: tuple  # the outcomes the final record may have
    exit: str = "failed"  # migrate.yml's exit: "failed" (rc != 0) or "ok" (rc 0)
    strategies: tuple = STRATEGIES
    fill_mib: int = 0  # written into the volume first, so that the relocation's stream lasts long enough
    # a host left uncleaned by the rescue keeps the run's lock; the message names recover.yml, which finishes
    recover: bool = False
    check: Optional[Callable] = None  # (FaultRun) -> the fault's own assertions, after the invariants
    # m3: the in-memory count survives (false where the fault itself restarts the app: the source's engine)
    memory_kept: bool = True
    # the strategies also run on the Podman lab's pair (the faults whose injection or handling is Podman's own:
    # no daemon, an API service to lose, Podman's volume store, its save through the API)
    podman: tuple = ()
    # the app's restart policy (None: none; on Podman m3's final checkpoint is then runc's own dump)
    restart: Optional[str] = "unless-stopped"


FAULTS = [
    Fault("target_engine_killed_during_relocation", "target engine killed (relocation)", _kill_target_engine,
          ("rolled_back",), fill_mib=160, recover=True, check=_rolled_back_first, podman=("m2",)),
    Fault("transfer_cut_mid_stream", "transfer cut mid-stream", _cut_transfer, ("rolled_back",), fill_mib=160),
    Fault("target_disk_full_during_pre_relocation", "target disk full (pre-relocation)", _fill_target_work_dir,
          ("rolled_back",), check=_image_refused_in_pre_relocation),
    Fault("target_disk_full_during_relocation", "target disk full (relocation)", _fill_target_volume,
          ("rolled_back",), fill_mib=64, recover=True, check=_rolled_back_first, podman=("m2",)),
    Fault("corrupted_checkpoint_on_target", "corrupted checkpoint (target)", _corrupt_checkpoint,
          ("rolled_back",), strategies=("m3",), check=_checkpoint_mismatch_caught),
    Fault("criu_missing_on_target", "CRIU missing (target)", lambda run: _criu_on_target(run, broken=False),
          ("unchanged",), strategies=("m3",), check=_refused_at_preflight_for_criu, podman=("m3",)),
    Fault("criu_broken_on_target", "CRIU broken (target)", lambda run: _criu_on_target(run, broken=True),
          ("rolled_back",), strategies=("m3",), check=_restore_failed_on_target),
    # Podman without a restart policy: the source's final checkpoint is runc's dump, which Podman sees as an exit;
    # the rollback must restore the source in place from it (not start it afresh)
    Fault("criu_broken_on_target_runc_checkpoint", "CRIU broken (target), runc's checkpoint",
          lambda run: _criu_on_target(run, broken=True), ("rolled_back",), strategies=(), podman=("m3",),
          restart=None, check=_restored_in_place_from_runc_checkpoint),
    # not m1: dockerd's graceful stop lets a running `docker export` finish, so the engine may be back before the
    # relocation and the run then completes with nothing lost: the fault does not determine m1's outcome
    Fault("source_engine_restarted_during_pre_relocation", "source engine restarted (pre-relocation)",
          _restart_source_engine, ("rolled_back",), strategies=("m2", "m3"), recover=True,
          check=_save_cut_by_the_engine, memory_kept=False),
    Fault("source_api_service_dead_during_pre_relocation", "source API service dead (pre-relocation)",
          _source_api_service_dead, ("rolled_back",), strategies=(), podman=("m2",), recover=True,
          check=_api_service_named),
    Fault("foreign_client_with_hostile_archive_is_dropped", "foreign client, hostile archive", _send_hostile_archives,
          ("migrated",), exit="ok", check=_hostile_archives_dropped),
]


_FAULT_RUNS = [pytest.param(f, s, "docker", id="%s-%s" % (f.id, s)) for f in FAULTS for s in f.strategies] + \
    [pytest.param(f, s, "podman", id="%s-%s-podman" % (f.id, s), marks=pytest.mark.podman_lab)
     for f in FAULTS for s in f.podman]


@pytest.mark.parametrize("fault,strategy,engine", _FAULT_RUNS)
def test_fault_during_migration(make_app, tmp_path, fault, strategy, engine):
    app = make_app(strategy, engine, restart=fault.restart)
    run = FaultRun(app, app.start())
    if fault.fill_mib:
        _fill_volume(app, fault.fill_mib)
    app.watch_state()
    with fault.inject(run):
        run.rc, run.out, run.record = app.migrate(tmp_path, run_id=run.rid)
    out, record = run.out, run.record
    assert run.fired_at() is not None, "the fault %s did not fire (no marker on %s; %s):\n%s" % (
        fault.id, run.fired_on.address, run.notes, run.out[-3000:])
    if fault.recover:
        out, record = _recover_if_locked(app, tmp_path, out, record)
    check_outcome(app, record, fault.name, out, expect=fault.expect, memory_kept=fault.memory_kept)
    assert (run.rc == 0) == (fault.exit == "ok"), "migrate.yml exited %s:\n%s" % (run.rc, run.out[-3000:])
    if fault.check:
        fault.check(run)


# ------------------------------------------------------------------------------------------- the controller's death

def _kill_controller_when(app, tmp_path, host, condition, **extra):
    """Run migrate.yml in the background and SIGKILL its whole process group once ``condition`` holds on
    ``host``; then wait until the dead controller's modules ended on the hosts."""
    extra = app.migrate_vars(results_dir=str(tmp_path), **extra)
    args = [ANSIBLE_PLAYBOOK, "-i", app.inventory, os.path.join(ROOT, "playbooks", "migrate.yml"),
            "-e", json.dumps(extra)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if host.run(condition, check=False).returncode == 0:
            break
        time.sleep(0.2)
    killed = proc.poll() is None
    if killed:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # the dead controller's modules go on on the hosts (scp, docker load, the relocation's halves): wait until
    # no process there runs with or holds a file of the run (the relocation's own bound is recover.yml's wait)
    rid = extra["run_id"]
    pattern = "[%s]%s" % (rid[0], rid[1:])  # a pattern that does not match this shell's own command line
    busy = ("pgrep -f '%s' >/dev/null || ls -l /proc/[0-9]*/fd 2>/dev/null | grep -q '%s/%s'"
            % (pattern, WORK_ROOT, pattern))
    deadline = time.monotonic() + 180
    for h in (app.src, app.dst):
        while time.monotonic() < deadline and h.run(busy, check=False).returncode == 0:
            time.sleep(1)
    return killed


@pytest.mark.parametrize("strategy,when,engine", [
    pytest.param(s, w, "docker", id="%s-%s" % (w, s)) for s in STRATEGIES for w in ("pre_relocation", "relocation")] + [
    pytest.param("m2", "relocation", "podman", id="relocation-m2-podman", marks=pytest.mark.podman_lab)])
def test_controller_killed_then_recovered(make_app, tmp_path, strategy, when, engine):
    app = make_app(strategy, engine)
    app.start()
    if when == "relocation":
        _fill_volume(app, 160)
    app.watch_state()
    rid = app.run_id()
    if when == "pre_relocation":
        # the image tarball is arriving on the target
        cond = "[ -s %s/%s/image.tar ]" % (WORK_ROOT, rid)
    else:
        cond = _streaming(app)
    assert _kill_controller_when(app, tmp_path / "killed", app.dst, cond, run_id=rid), "the run ended before the fault"
    # a second migration now is refused by the lock, naming the run and recover.yml
    rc, out, _ = app.migrate(tmp_path / "second")
    assert rc != 0 and "recover.yml" in out and app.run_ids[0] in out, out[-3000:]
    rc, out, record = _recover(app, tmp_path / "recovered")
    assert rc == 0, out[-4000:]
    assert record["recovered_by"] == "recover.yml"
    check_outcome(app, record, "controller killed (%s)" % when, out, expect=["rolled_back", "migrated"])
    # a second recovery finds nothing to do
    rc, out, _ = _recover(app, tmp_path / "again")
    assert rc == 0 and "nothing to do" in out


def test_migrate_with_migration_recover_undoes_the_dead_run_then_migrates(make_app, tmp_path):
    app = make_app("m2")
    app.start()
    app.watch_state()
    rid = app.run_id()
    assert _kill_controller_when(app, tmp_path / "killed", app.dst, "[ -s %s/%s/image.tar ]" % (WORK_ROOT, rid),
                                 run_id=rid), "the run ended before the fault"
    rc, out, record = app.migrate(tmp_path / "next", migration_recover=True)
    assert rc == 0, out[-4000:]
    records = {}
    for name in os.listdir(str(tmp_path / "next")):
        with open(os.path.join(str(tmp_path / "next"), name)) as fh:
            r = json.load(fh)
        records[r["run_id"]] = r
    assert records[rid]["recovered_by"] == "recover.yml" and records[rid]["outcome"] == "rolled_back"
    new = records[app.run_ids[-1]]
    assert new["status"] == "ok" and new["outcome"] == "migrated"
    check_outcome(app, new, "controller killed, migration_recover", out, expect=["migrated"])
    assert app.dst.running(app.name)


# ------------------------------------------------------------------------------------------- the app's lock

def test_concurrent_migration_of_the_same_app_is_refused(make_app, tmp_path):
    app = make_app("m2")
    app.start()
    _fill_volume(app, 128)
    app.watch_state()
    first = {}
    t = threading.Thread(target=lambda: first.update(zip(("rc", "out", "record"), app.migrate(tmp_path / "first"))))
    t.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not app.locked_on(app.src):
        time.sleep(0.2)
    rc, out, record = app.migrate(tmp_path / "second", migration_port=app.port + 100)
    t.join(600)
    assert rc != 0
    assert "is being migrated by run %s" % app.run_ids[0] in out and "recover.yml" in out, out[-3000:]
    assert record["outcome"] == "unchanged"
    assert first["rc"] == 0, first["out"][-3000:]
    check_outcome(app, first["record"], "concurrent migration (lock)", first["out"], expect=["migrated"])


# ------------------------------------------------------------------------------------------- m1's lost configuration

def test_m1_warns_and_applies_the_configuration_passed_back(make_app, tmp_path):
    app = make_app("m1")
    app.start()
    # without it: a warning naming every lost field and the app runs as root on the target
    rc, out, record = app.migrate(tmp_path / "plain")
    assert rc == 0, out[-3000:]
    assert "WARNING: m1 (docker export/import) loses the source image's CMD, ENTRYPOINT, ENV, WORKDIR, USER" in out
    assert "as user root (the source image runs as 1000)" in out and "USER 1000" in out
    assert record["lost_config"] == ["CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL"]
    assert app.dst.out(["docker", "exec", app.name, "id", "-u"]) == "0"
    # back to the source by hand, then with the configuration passed back
    app.dst.out(["docker", "rm", "-f", app.name])
    app.dst.out(["docker", "volume", "rm", app.volume])
    app.src.out(["docker", "start", app.name])
    rc, out, record = app.migrate(tmp_path / "given", import_changes=[
        "USER 1000", "WORKDIR /opt/counter", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "ENV COUNTER_INTERVAL=0.1", "ENV MEC_APP=counter", "STOPSIGNAL SIGINT"])
    assert rc == 0, out[-3000:]
    got = app.dst.inspect(app.name)["Config"]
    assert (got["User"], got["WorkingDir"], got["StopSignal"]) == ("1000", "/opt/counter", "SIGINT")
    assert "MEC_APP=counter" in got["Env"]
    assert app.dst.out(["docker", "exec", app.name, "id", "-u"]) == "1000"
    assert record["lost_config"] == ["CMD", "ENTRYPOINT", "EXPOSE", "LABEL"]


# ------------------------------------------------------------------------------------------- bad input

def _nothing_changed(app, before):
    assert app.src.running(app.name) and app.src.inspect(app.name)["Id"] == before["Id"]
    assert app.dst.inspect(app.name) is None
    for h in (app.src, app.dst):
        assert not app.locked_on(h), "%s keeps the app's lock" % h.address
        assert h.app_images(app.name) == "", "%s keeps an image of the run" % h.address


BAD_INPUTS = [
    # (id, extra vars (app added unless given), expected text in the output)
    ("no_app", {"app": None}, "app is required"),
    ("empty_app", {"app": ""}, "app is required"),
    ("app_with_slash", {"app": "../etc"}, "app is required"),
    ("app_not_string", {"app": 5}, "app is required"),
    ("unknown_strategy", {"strategy": "m9"}, "strategy in m1, m2, m3"),
    ("strategy_case", {"strategy": "M2"}, "strategy in m1, m2, m3"),
    ("unknown_transfer", {"transfer": "ftp"}, "transfer=ftp is unknown: transfer in"),
    ("empty_network_label", {"network_label": ""}, "network_label="),
    ("network_label_path", {"network_label": "n1/../x"}, "network_label="),
    ("cleanup_not_bool", {"migration_cleanup": "maybe"}, "migration_cleanup=maybe: true or false"),
    ("recover_not_bool", {"migration_recover": "perhaps"}, "migration_recover=perhaps: true or false"),
    ("port_zero", {"migration_port": 0}, "a TCP port from 1024 to 65535"),
    ("port_too_big", {"migration_port": 70000}, "a TCP port from 1024 to 65535"),
    ("port_text", {"migration_port": "abc"}, "a TCP port from 1024 to 65535"),
    ("stop_timeout_negative", {"migration_stop_timeout": -1}, "migration_stop_timeout=-1: whole seconds"),
    ("wait_timeout_zero", {"migration_wait_timeout": 0}, "migration_wait_timeout=0: whole seconds, 1 or more"),
    ("wait_timeout_text", {"migration_wait_timeout": "soon"}, "migration_wait_timeout=soon"),
    ("run_id_traversal", {"run_id": "../../etc"}, "run_id=../../etc: letters, digits"),
    ("run_id_empty", {"run_id": ""}, "run_id=: letters, digits"),
    ("run_id_too_long", {"run_id": "r" * 200}, "at most 128"),
    ("start_command_with_m2", {"strategy": "m2", "start_command": "/bin/sh -c true"},
     "start_command is for strategy m1 only"),
    ("import_changes_with_m2", {"strategy": "m2", "import_changes": ["USER 1000"]},
     "import_changes is for strategy m1 only"),
    ("import_changes_string", {"strategy": "m1", "import_changes": "USER 1000"},
     "import_changes: a list of Dockerfile"),
    ("import_changes_run", {"strategy": "m1", "import_changes": ["RUN rm -rf /"]},
     "import_changes: a list of Dockerfile"),
    ("start_command_dict", {"strategy": "m1", "start_command": {"a": 1}}, "start_command: a string or a list"),
    ("state_check_command_dict", {"state_check_command": {"a": 1}}, "state_check_command: a string or a list"),
    ("phase_url_scheme", {"app_phase_url": "ftp://x/y"}, "app_phase_url=ftp://x/y: an http://"),
    ("state_check_url_scheme", {"state_check_url": "file:///etc/passwd"}, "state_check_url=file:///etc/passwd"),
    ("unknown_container", {"app": "{name}-ghost"}, "does not exist on the source host"),
]


# On the Podman lab's pair too (ids ending -podman): the one case whose refusal asks the hosts' engine (the source's
# Podman asked for the container, in the preflight), and one of the controller's refusals (a run id that would be a
# path on the hosts) with the Podman lab's inventory. All the others are refused by the controller's input check
# (the migration_input action, before any host is contacted): the same code whatever the hosts' engine, so running
# all of them again there would cost ~2-3 min of CI (the 29 took 3 min on the local lab; 3-5 s each on the Podman
# lab) for no other code path.
PODMAN_BAD_INPUTS = ("unknown_container", "run_id_traversal")
_BAD_INPUT_RUNS = [pytest.param(c, "docker", id=c[0]) for c in BAD_INPUTS] + [
    pytest.param(c, "podman", id=c[0] + "-podman", marks=pytest.mark.podman_lab)
    for c in BAD_INPUTS if c[0] in PODMAN_BAD_INPUTS]


@pytest.fixture(scope="module")
def bad_input_app(request):
    """A counter app (m2) on the source of the local lab, or of the Podman lab where the test is parametrized with
    "podman" (indirect)."""
    if getattr(request, "param", "docker") == "docker":
        a = App(request.getfixturevalue("lab"), request.getfixturevalue("lab_image"), "m2")
    else:
        a = App(request.getfixturevalue("podman_fault_lab"), request.getfixturevalue("counter_image"), "m2",
                engine="podman")
    a.start()
    yield a
    a.cleanup()


@pytest.mark.parametrize("case,bad_input_app", _BAD_INPUT_RUNS, indirect=["bad_input_app"])
def test_bad_input_is_refused_before_any_change(bad_input_app, tmp_path, case):
    _id, extra, expected = case
    app = bad_input_app
    before = app.src.inspect(app.name)
    extra = dict(extra)
    name = extra.pop("app", app.name)
    extra.setdefault("strategy", "m2")
    extra.setdefault("migration_port", app.port)
    if isinstance(name, str):
        name = name.replace("{name}", app.name)
    if name is not None:
        extra["app"] = name
    rc, out, _ = migrate(tmp_path, timeout=300, inventory=app.inventory, **extra)
    assert rc != 0
    assert expected in out, out[-3000:]
    _nothing_changed(app, before)


def test_unreachable_target_at_preflight_is_recorded(bad_input_app, lab, tmp_path):
    """A host the controller cannot reach: refused before any change, the record names it."""
    app = bad_input_app
    before = app.src.inspect(app.name)
    inv = tmp_path / "inventory"
    inv.mkdir()
    for name in ("id_ed25519", "known_hosts"):
        if os.path.exists(os.path.join(os.path.dirname(INVENTORY), name)):
            os.symlink(os.path.join(os.path.dirname(INVENTORY), name), str(inv / name))
    with open(INVENTORY) as fh:
        text = fh.read()
    # the controller reaches the target on a port nothing listens on
    (inv / "hosts.yml").write_text(text.replace("ansible_host: %s" % lab[1].address,
                                                "ansible_host: %s\n              ansible_port: 1" % lab[1].address))
    rc, out, record = migrate(tmp_path / "records", timeout=300, inventory=str(inv / "hosts.yml"), app=app.name,
                              strategy="m2", migration_port=app.port)
    assert rc != 0
    assert "unreachable" in out and "mec-lab-target" in out, out[-3000:]
    assert len(os.listdir(str(tmp_path / "records"))) == 1, "one record, of the refused run"
    assert (record["status"], record["outcome"], record["phase"]) == ("failed", "unchanged", "preflight")
    assert record["unreachable"] == ["mec-lab-target"]
    _nothing_changed(app, before)


def test_reused_run_id_is_refused(bad_input_app, tmp_path):
    app = bad_input_app
    before = app.src.inspect(app.name)
    rid = app.run_id()
    app.dst.out(["mkdir", "-p", "%s/%s" % (WORK_ROOT, rid)])  # an old run's work dir
    rc, out, record = app.migrate(tmp_path, run_id=rid)
    assert rc != 0 and "The run id %s was used before" % rid in out, out[-3000:]
    assert record["status"] == "failed" and record["outcome"] == "unchanged"
    app.dst.run(["rmdir", "%s/%s" % (WORK_ROOT, rid)], check=False)
    _nothing_changed(app, before)


def test_stale_lock_is_refused_with_the_recovery_command(bad_input_app, tmp_path):
    app = bad_input_app
    before = app.src.inspect(app.name)
    lock = json.dumps(dict(run_id="tfstale0001", app=app.name, started_at=1.0, controller="elsewhere"))
    app.src.out("mkdir -p %s/locks && printf '%%s' '%s' > %s/locks/%s.lock"
                % (STATE_ROOT, lock, STATE_ROOT, app.name))
    try:
        rc, out, record = app.migrate(tmp_path)
    finally:
        app.src.run(["rm", "-f", "%s/locks/%s.lock" % (STATE_ROOT, app.name)], check=False)
    assert rc != 0
    assert "is being migrated by run tfstale0001" in out and "playbooks/recover.yml -e app=%s" % app.name in out
    assert record["outcome"] == "unchanged"
    _nothing_changed(app, before)
