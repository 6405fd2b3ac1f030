"""The real playbook (playbooks/migrate.yml) on the local lab: two MEC hosts reached over SSH.

Runs only when the lab is up (inventories/local/hosts.yml exists). The app is tests/integration/files/
counter_app (image mec-test/counter:1 built on this machine and loaded onto the source host): a memory-only
counter (/tmp/mem.value), a volume counter (/data/count), and an image with its own ENTRYPOINT, CMD, ENV,
WORKDIR, USER, EXPOSE and LABEL.
"""
import base64
import os
import re
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from labtools import ANSIBLE_PLAYBOOK, INVENTORY, ROOT, WORK_ROOT, migrate

pytestmark = pytest.mark.lab

# a host key that belongs to no lab host
FOREIGN_HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKdH8Rx5gEDcUGJBTz7XwMETS5Q6FbP3icvHDWTr7kXW"

ALL_LOST = ["CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL"]


def criu_works(host):
    return host.run(["criu", "check"], check=False).returncode == 0


class App(object):
    """One test app on the lab; everything it leaves on both hosts is removed at teardown."""

    def __init__(self, src, dst, image):
        self.src, self.dst, self.image = src, dst, image
        self.name = "mt" + uuid.uuid4().hex[:8]
        self.volume = self.name + "-data"
        self.run_ids = []

    def start(self, volume=True, ports=True, user=None):
        argv = ["docker", "run", "-d", "--name", self.name, "--label", "mec.migration.test=1", "-e", "RUN_ENV=1",
                "--restart", "unless-stopped"]
        if user is not None:
            argv += ["--user", user]
        if volume:
            argv += ["-v", self.volume + ":/data"]
        if ports:
            argv += ["-p", "18080:8080"]
        self.src.out(argv + [self.image])
        return self.src.inspect(self.name)

    def run_id(self):
        rid = "t" + uuid.uuid4().hex[:10]
        self.run_ids.append(rid)
        return rid

    def cleanup(self):
        for h in (self.src, self.dst):
            h.run("docker rm -f %s; docker volume rm -f %s; "
                  "docker images -q 'mec-migration/%s' | xargs -r docker rmi -f"
                  % (self.name, self.volume, self.name), check=False)
            for rid in self.run_ids:
                h.run(["rm", "-rf", "%s/%s" % (WORK_ROOT, rid)], check=False)


@pytest.fixture
def app(lab, lab_image):
    a = App(lab[0], lab[1], lab_image)
    yield a
    a.cleanup()


def _assert_nothing_changed(app, before):
    assert app.src.running(app.name), "the source app must still run"
    assert app.src.inspect(app.name)["Id"] == before["Id"]
    assert app.dst.inspect(app.name) is None, "nothing may be created on the target"


# This machine's capability bounding set lacks CAP_SYS_RESOURCE, so CRIU cannot read the rlimits of a
# process of another user ("Can't get rlimit 0: Operation not permitted"): m3 runs the app as root here
# (a run-time --user override, which the migration carries over like any other).
M3_USER = "0"


def _need_criu(lab):
    if not (criu_works(lab[0]) and criu_works(lab[1])):
        # the lab's criu role makes CRIU work (it fails the lab's bring-up otherwise): a broken CRIU is a failure
        pytest.fail("criu check fails on the lab hosts: m3 cannot run")


@pytest.mark.parametrize("strategy,transfer", [("m1", "nc"), ("m2", "ssh"), ("m3", "nc"), ("m3", "ssh")])
def test_counter_app_migrates(lab, app, tmp_path, strategy, transfer):
    if strategy == "m3":
        _need_criu(lab)
    src, dst = lab
    before = app.start(user=M3_USER if strategy == "m3" else None)
    mem_before = src.wait_int(app.name, "/tmp/mem.value", minimum=40)
    rc, out, record = migrate(tmp_path, app=app.name, strategy=strategy, transfer=transfer, network_label="n1",
                              run_id=app.run_id())
    assert rc == 0, out[-3000:]
    mem_after = dst.wait_int(app.name, "/tmp/mem.value", minimum=1)  # first, while the target is young
    assert record["status"] == "ok" and record["strategy"] == strategy and record["network"] == "n1"
    assert record["downtime"]["wall"] > 0 and record["downtime"]["operations_sum"] > 0
    assert not src.running(app.name) and dst.running(app.name)
    mem_at_stop = int(src.stopped_file(app.name, "/tmp/mem.value"))  # the source's last count
    assert mem_at_stop > mem_before

    # the volume counter continues from where the source stopped
    final = int(src.volume_file(app.volume, "count"))
    assert dst.wait_int(app.name, "/data/count", minimum=final + 1) > final

    # the memory-only counter: only m3 keeps it (continues from the source's last count); m1/m2 start again
    # from 1 and have counted for a few seconds only, far less than the source counted in its whole life
    if strategy == "m3":
        assert mem_after >= mem_at_stop
        assert record["sizes"]["checkpoint_full"] > 0 and record["sizes"]["rsync_transferred_bytes"] > 0
    else:
        assert mem_after < mem_at_stop

    # the image's configuration: m1 loses it, m2/m3 keep it; the run configuration always follows
    got, want = dst.inspect(app.name), before
    if strategy == "m1":
        assert record["lost_config"] == ALL_LOST
        # the seed's "manual input": the command the imported image was started with
        assert record["start_command"] == (want["Config"]["Entrypoint"] or []) + (want["Config"]["Cmd"] or [])
        assert got["Config"]["Cmd"] == record["start_command"]
        assert got["Config"]["Entrypoint"] is None
        assert (got["Config"]["WorkingDir"], got["Config"]["User"]) == ("", "")
        assert "MEC_APP=counter" not in got["Config"]["Env"]
    else:
        assert record["lost_config"] == [] and record["start_command"] is None
        for key in ("Entrypoint", "Cmd", "Env", "WorkingDir", "User", "ExposedPorts"):
            assert got["Config"][key] == want["Config"][key], key
    assert "RUN_ENV=1" in got["Config"]["Env"]
    assert got["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert got["HostConfig"]["PortBindings"] == want["HostConfig"]["PortBindings"]

    # a second run changes nothing and says so
    target_id = got["Id"]
    rc, out, _ = migrate(tmp_path / "again", app=app.name, strategy=strategy, transfer=transfer, run_id=app.run_id())
    assert rc == 0, out[-3000:]
    assert "already migrated" in out
    assert dst.inspect(app.name)["Id"] == target_id and dst.running(app.name)


@pytest.mark.parametrize("strategy", ["m1", "m2", "m3"])
def test_stateless_app_migrates(lab, app, tmp_path, strategy):
    if strategy == "m3":
        _need_criu(lab)
    src, dst = lab
    app.start(volume=False, ports=False, user=M3_USER if strategy == "m3" else None)
    rc, out, record = migrate(tmp_path, app=app.name, strategy=strategy, network_label="n1", run_id=app.run_id(),
                              migration_cleanup=True)
    assert rc == 0, out[-3000:]
    assert record["status"] == "ok"
    assert record["sizes"]["volume"] == 0
    assert dst.running(app.name)
    assert src.inspect(app.name) is None  # cleaned up only after the target runs
    print("%s stateless: downtime wall %.3fs, operations %.3fs" % (strategy, record["downtime"]["wall"],
                                                                   record["downtime"]["operations_sum"]))


# Faults (target engine killed, transfer cut, ...) are the fault campaign's: tests/integration/test_faults_lab.py


# ------------------------------------------------------------------------------------------- bad input

def test_unknown_strategy_fails_first(app, tmp_path):
    before = app.start()
    rc, out, record = migrate(tmp_path, app=app.name, strategy="m9")
    assert rc != 0 and "strategy in m1, m2, m3" in out
    assert record is None
    _assert_nothing_changed(app, before)


def test_unknown_container_fails_first(app, tmp_path):
    rc, out, record = migrate(tmp_path, app=app.name + "-ghost", strategy="m2")
    assert rc != 0
    assert "Container %s-ghost does not exist on the source host" % app.name in out
    # a preflight failure is recorded (docs/migration.md): nothing changed
    assert (record["status"], record["outcome"], record["phase"]) == ("failed", "unchanged", "preflight")


def test_source_equal_target_fails_first(lab, app, tmp_path):
    before = app.start()
    same = tmp_path / "same.yml"
    with open(INVENTORY) as fh:
        text = fh.read()
    same.write_text(text.replace(lab[1].address, lab[0].address))
    import subprocess
    from labtools import ANSIBLE_PLAYBOOK, ROOT
    p = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(same), os.path.join(ROOT, "playbooks", "migrate.yml"),
                        "-e", "app=%s strategy=m2 results_dir=%s" % (app.name, tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    # the check runs on the controller before any connection, so the copy needs no key
    assert p.returncode != 0
    assert "must be different hosts" in p.stdout + p.stderr, (p.stdout + p.stderr)[-3000:]
    _assert_nothing_changed(app, before)


def _without(host, path):
    host.out(["mv", path, path + ".mec-test-off"])


def _restore(host, path):
    host.run(["mv", path + ".mec-test-off", path], check=False)


def test_m3_without_criu_fails_first(lab, app, tmp_path):
    src, dst = lab
    before = app.start(user=M3_USER)
    # every criu on the source's PATH is moved away for the test (none if CRIU is missing already);
    # /sbin may be a link to /usr/sbin, so each file once, by its real path
    found = src.out("for p in $(which -a criu); do readlink -f $p; done | sort -u").split()
    moved = []
    try:
        for path in found:
            _without(src, path)
            moved.append(path)
        rc, out, record = migrate(tmp_path, app=app.name, strategy="m3", run_id=app.run_id())
    finally:
        for path in moved:
            _restore(src, path)
    assert rc != 0
    assert "criu" in out and "Preflight failed on source host" in out
    assert (record["status"], record["outcome"], record["phase"]) == ("failed", "unchanged", "preflight")
    _assert_nothing_changed(app, before)


def test_missing_transfer_tool_fails_first(lab, app, tmp_path):
    src, _dst = lab
    before = app.start()
    scp = src.out("readlink -f $(which scp)")
    try:
        _without(src, scp)
        rc, out, record = migrate(tmp_path, app=app.name, strategy="m2", transfer="ssh", run_id=app.run_id())
    finally:
        _restore(src, scp)
    assert rc != 0
    assert "scp is not installed" in out
    assert (record["status"], record["outcome"], record["phase"]) == ("failed", "unchanged", "preflight")
    _assert_nothing_changed(app, before)


# ------------------------------------------------------------------------------------------- folders others own

SQUAT = "/var/tmp/mec-migration"  # the work root and control-socket folder of the collection before 2026-12
CONTROL_DIR = "/run/mec-migration/ssh"  # where transport.py keeps the runs' SSH control sockets


def _squat(host, path):
    """``path`` made by another user (nobody, 65534) before the run, writable by all, with a planted link."""
    host.out("rm -rf %s && mkdir -p %s && ln -s /etc %s/planted && chown -hR 65534:65534 %s && chmod 0777 %s"
             % (path, path, path, path, path))


def _listing(host, path):
    return host.out("stat -c '%%u %%a' %s; ls -A %s" % (path, path)).split()


def test_a_folder_another_user_made_in_var_tmp_changes_nothing(lab, app, tmp_path):
    """A local user who made /var/tmp/mec-migration first (the old work root and socket folder) neither gets the
    run's files or sockets nor stops it: the run works in its own root-only folders."""
    src, dst = lab
    for h in (src, dst):
        _squat(h, SQUAT)
    try:
        app.start()
        before = {h.address: _listing(h, SQUAT) for h in (src, dst)}
        assert before[src.address] == ["65534", "777", "planted"]
        rc, out, record = migrate(tmp_path, app=app.name, strategy="m2", transfer="ssh", run_id=app.run_id())
        assert rc == 0, out[-3000:]
        assert record["status"] == "ok" and dst.running(app.name)
        for h in (src, dst):
            assert _listing(h, SQUAT) == before[h.address], "the run wrote into %s on %s" % (SQUAT, h.address)
        # the hop's control socket lived in the root-only folder (the ssh transfer used it)
        assert src.out("stat -c '%%u %%a %%F' %s" % CONTROL_DIR).split() == ["0", "700", "directory"]
    finally:
        for h in (src, dst):
            h.run(["rm", "-rf", SQUAT], check=False)


def test_a_control_folder_another_user_owns_stops_the_run_and_the_source_keeps_serving(lab, app, tmp_path):
    """/run/mec-migration/ssh made by another user: the hop refuses to use it, says which folder and why, and the
    app keeps serving on the source with nothing left on the target."""
    src, dst = lab
    app.start()
    before = src.inspect(app.name)
    src.out("rm -rf %s" % CONTROL_DIR)
    _squat(src, CONTROL_DIR)
    try:
        rc, out, record = migrate(tmp_path, app=app.name, strategy="m2", transfer="ssh", run_id=app.run_id())
        assert rc != 0
        assert CONTROL_DIR in out and "65534" in out, out[-3000:]
        assert record is not None and record["status"] == "failed"
        assert src.running(app.name) and src.inspect(app.name)["Id"] == before["Id"]
        assert dst.inspect(app.name) is None, "nothing may be left on the target"
        assert _listing(src, CONTROL_DIR) == ["65534", "777", "planted"], "the run wrote into the squatted folder"
    finally:
        src.run(["rm", "-rf", CONTROL_DIR], check=False)


# ------------------------------------------------------------------------------- the play's strategy (Mitogen)

# a task that prints the command lines of its own process and of every ancestor on the host: under Mitogen a module
# runs in (a child of) the host's persistent interpreter, whose command line Mitogen sets to python(mitogen:...);
# under ansible-core's ssh connection its ancestors are a new Python and sshd
_ANCESTORS_PLAY = """
- hosts: source
  gather_facts: false
  strategy: mec.migration.mitogen_linear
  tasks:
    - name: The command lines of this task's process and its ancestors
      ansible.builtin.command:
        argv:
          - python3
          - -c
          - |
            p = __import__("os").getpid()
            while p > 1:
                print(open("/proc/%d/cmdline" % p).read().replace("\\0", " "))
                p = int(open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()[1])
      changed_when: false
      register: ancestors
    - name: Show them
      ansible.builtin.debug:
        msg: "ANCESTORS {{ ancestors.stdout | b64encode }}"
"""


def _strategy_play(tmp_path, inventory=INVENTORY, env=None, verbose=False):
    play = tmp_path / "ancestors.yml"
    play.write_text(_ANCESTORS_PLAY)
    argv = [ANSIBLE_PLAYBOOK, "-i", inventory, str(play)] + (["-vvv"] if verbose else [])
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **(env or {})))
    out = p.stdout + p.stderr
    found = re.search(r"ANCESTORS ([A-Za-z0-9+/=]+)", out)
    return p.returncode, out, base64.b64decode(found.group(1)).decode().splitlines() if found else None


def test_the_collections_mitogen_strategy_runs_modules_in_mitogen_and_checks_host_keys(lab, tmp_path):
    """mec.migration.mitogen_linear (the migration play's default) runs a module in Mitogen's interpreter on the
    host, found by its FQCN with no ANSIBLE_STRATEGY_PLUGINS; and Mitogen's SSH refuses a host whose key is not the
    one known_hosts holds. A few seconds: two one-task plays."""
    rc, out, ancestors = _strategy_play(tmp_path)
    assert rc == 0 and ancestors, out[-3000:]
    assert any("(mitogen:" in line for line in ancestors), ancestors
    assert "could not be loaded" not in out

    # a copy of the lab's inventory whose known_hosts gives every host a key that is none of theirs
    wrong = tmp_path / "wrong-keys"
    wrong.mkdir()
    here = os.path.dirname(INVENTORY)
    shutil.copy(os.path.join(here, "hosts.yml"), str(wrong / "hosts.yml"))
    shutil.copy(os.path.join(here, "id_ed25519"), str(wrong / "id_ed25519"))
    os.chmod(str(wrong / "id_ed25519"), 0o600)
    with open(os.path.join(here, "known_hosts")) as fh:
        addresses = sorted({line.split()[0] for line in fh if line.strip() and not line.startswith("#")})
    (wrong / "known_hosts").write_text("".join("%s %s\n" % (a, FOREIGN_HOST_KEY) for a in addresses))
    rc, out, ancestors = _strategy_play(tmp_path, inventory=str(wrong / "hosts.yml"))
    assert rc != 0 and ancestors is None, out[-3000:]
    assert "UNREACHABLE" in out and "host key" in out, out[-3000:]


def test_the_collections_mitogen_strategy_without_mitogen_runs_linear_and_says_so(lab, tmp_path):
    """Where Mitogen cannot be imported (here: an ansible_mitogen package that fails to import, first on the
    Python path), mec.migration.mitogen_linear warns, naming the cause and the fix, and runs the play with
    ansible-core's linear strategy over its ssh connection. A few seconds: one one-task play."""
    shadow = tmp_path / "shadow" / "ansible_mitogen"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('ansible_mitogen hidden by the test')\n")
    path = os.pathsep.join([str(tmp_path / "shadow")] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    rc, out, ancestors = _strategy_play(tmp_path, env={"PYTHONPATH": path}, verbose=True)
    assert rc == 0 and ancestors, out[-3000:]
    assert "Mitogen for Ansible could not be loaded (ImportError: ansible_mitogen hidden by the test)" in out, \
        out[-3000:]
    assert "pip install mitogen" in out and "migration_play_strategy=linear" in out
    assert not any("(mitogen:" in line for line in ancestors), ancestors
    assert "SSH: EXEC" in out, "the play did not run over ansible-core's ssh connection"


def _processes_with(marker):
    """The pids of this machine's processes whose environment holds ``marker`` (a test's own variable)."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/environ" % pid, "rb") as fh:
                if marker.encode() in fh.read():
                    pids.append(int(pid))
        except (OSError, ValueError):
            continue
    return pids


def test_a_killed_controller_leaves_no_worker_behind_with_mitogen(lab, tmp_path):
    """ansible-playbook killed (SIGKILL to its process group, as a dead controller) while a task runs on a host
    under mec.migration.mitogen_linear: its workers (each in its own session, so the kill does not reach them)
    end with it instead of waiting forever for Mitogen's answer. About 10 s."""
    play = tmp_path / "slow.yml"
    play.write_text("- hosts: source\n  gather_facts: false\n  strategy: mec.migration.mitogen_linear\n  tasks:\n"
                    "    - ansible.builtin.command: sleep 20\n")
    marker = "MEC_TEST_CONTROLLER=%s" % uuid.uuid4().hex
    name, value = marker.split("=")
    proc = subprocess.Popen([ANSIBLE_PLAYBOOK, "-i", INVENTORY, str(play)], cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=dict(os.environ, **{name: value}))
    src, sleeping = lab[0], ""
    try:
        for _ in range(100):  # the task runs on the host (up to 20 s)
            sleeping = src.run("pgrep -x -f 'sleep 20'", check=False).stdout.split()
            if sleeping:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the task never started on the host")
        assert len(_processes_with(marker)) >= 2, "no worker besides ansible-playbook"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for _ in range(50):
            left = _processes_with(marker)
            if not left:
                break
            time.sleep(0.1)
        assert not left, "processes of the killed ansible-playbook remain: %s" % left
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _processes_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if sleeping:  # the task's own process on the host, by its pid
            src.run(["kill"] + sleeping, check=False)
