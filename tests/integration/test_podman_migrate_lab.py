"""The real playbook (playbooks/migrate.yml) on the Podman lab (inventories/podman/hosts.yml: mec-pod-source and
mec-pod-target run Podman, mec-pod-docker runs Docker; each host's migration_engine says which), over SSH with
checked host keys.

- m2 Docker -> Podman -> Podman -> Docker, one app moved three times (Docker -> Podman, Podman -> Podman, Podman ->
  Docker): after every hop the volume counter goes on from the count the source stopped at, the image's ENTRYPOINT,
  CMD, ENV, WORKDIR, USER, EXPOSE and LABEL are the counter image's, the run-time environment follows, and the record
  says the image archive carried every layer for a Podman target and only the commit's layer for the Docker host
  that holds the others (Podman -> Docker).
- m1 Podman -> Podman -> Docker: the volume counter goes on; the image's configuration is lost (and listed) as on
  Docker, and the command the app runs with follows.
- Refused before any change, with the record saying so: a host whose migration_engine is not what it runs (either
  way), Podman's API service down on the target at the start (the error names the host and how to start it), m3
  across engines.
- m2 Podman -> Podman whose target start fails (a port held there): the source comes back, the target is cleaned.
- m2 to a Podman target (restart policy unless-stopped) and to a Docker target (none) whose app exits 0.3 s after
  its start (it refuses the volume another container wrote): the start's settle check fails the run, which rolls
  back (without it the run was recorded as migrated).

The app is tests/integration/files/counter_app (mec-test/counter:1 built on this machine and loaded onto the
source hosts). Bring the lab up with ``ansible-playbook playbooks/lab.yml -e @playbooks/vars/lab_podman.yml``;
without it every test here fails (never skipped). Cost on the Podman lab: 6 migrations, 3 rolled back and 4
refused ones, ~6 min (the refused ones ~15-20 s each, the settle check's two ~20-25 s each).
"""
import json
import os
import shlex
import subprocess
import time
import uuid

import pytest

from labtools import STATE_ROOT, WORK_ROOT, migrate, wait_container_int
from labutil import ssh_control_opts
from podman_labtools import INVENTORY, SSH_OPTS, podman_lab_hosts

pytestmark = [pytest.mark.lab, pytest.mark.podman_lab]

IMAGE = "mec-test/counter:1"
CONFIG_KEYS = ("Entrypoint", "Cmd", "WorkingDir", "User", "ExposedPorts")
# a container's inspect data from Podman's Docker-compatible API, read on the host (python3-docker is there)
COMPAT_INSPECT = ("import docker, json, sys; c = docker.DockerClient(base_url='unix:///run/podman/podman.sock'); "
                  "print(json.dumps([c.api.inspect_container(sys.argv[1])]))")
ALL_LOST = ["CMD", "ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL"]


class PodLabHost(object):
    """A host of the Podman lab with the CLI of its own engine (docker or podman: the same subcommands here)."""

    def __init__(self, name, address, engine):
        self.name, self.address, self.engine = name, address, engine
        self.cli = engine

    def run(self, argv, check=True, timeout=300, stdin=None):
        cmd = argv if isinstance(argv, str) else " ".join(shlex.quote(a) for a in argv)
        p = subprocess.run(["ssh"] + SSH_OPTS + ssh_control_opts() + ["root@" + self.address, cmd], capture_output=True,
                           timeout=timeout, stdin=subprocess.DEVNULL if stdin is None else stdin, text=stdin is None)
        if check and p.returncode != 0:
            raise AssertionError("on %s: %s -> rc %s: %s" % (self.name, cmd, p.returncode, p.stderr))
        return p

    def out(self, *args, **kw):
        return self.run([self.cli] + list(args), **kw).stdout.strip()

    def inspect(self, name, kind="container"):
        """A container's (or image's) inspect data in Docker's shape: `docker inspect`, or Podman's
        Docker-compatible API (`podman inspect` writes a container's Entrypoint as one string)."""
        if self.engine == "podman" and kind == "container":
            p = self.run(["python3", "-c", COMPAT_INSPECT, name], check=False)
        else:
            p = self.run([self.cli, kind, "inspect", name], check=False)
        return json.loads(p.stdout)[0] if p.returncode == 0 else None

    def running(self, name):
        info = self.inspect(name)
        return bool(info and info["State"]["Running"])

    def volume_count(self, volume):
        mp = self.out("volume", "inspect", "-f", "{{.Mountpoint}}", volume)
        return int(self.run(["cat", os.path.join(mp, "count")]).stdout.strip())

    def starts(self, name):
        """The volume counts the container started from (the counter's log: "counter started: volume count N")."""
        p = self.run([self.cli, "logs", name], check=False)
        text = (p.stdout or "") + (p.stderr or "")
        return [int(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith("counter started: volume count ")]

    def wait_count(self, name, minimum, timeout=20):
        return wait_container_int(self.run, self.cli, name, "/data/count", self.name, minimum, timeout)

    def holds_run(self, app, run_ids):
        """Whether a run of ``app`` left anything on the host: the app's lock, a run's journal or work directory."""
        paths = ["%s/locks/%s.lock" % (STATE_ROOT, app)] + ["%s/runs/%s.json" % (STATE_ROOT, rid) for rid in run_ids] \
            + ["%s/%s" % (WORK_ROOT, rid) for rid in run_ids]
        left = [path for path in paths if self.run(["test", "-e", path], check=False).returncode == 0]
        return left


@pytest.fixture(scope="module")
def pod_lab():
    """{name: PodLabHost} of the Podman lab; its absence fails, also outside CI (never skipped)."""
    hosts = dict((h.name, PodLabHost(h.name, h.address, h.engine)) for h in podman_lab_hosts().values())
    assert sorted(h.engine for h in hosts.values()) == ["docker", "podman", "podman"], hosts
    for h in hosts.values():
        h.out("version", "--format", "{{.Client.Version}}" if h.engine == "docker" else "{{.Version}}")
    return hosts


@pytest.fixture(scope="module")
def pod_image(pod_lab, counter_image):
    """mec-test/counter:1, the image built here, on every host of the Podman lab (loaded where it is missing)."""
    want = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}}", counter_image], capture_output=True,
                          text=True, check=True).stdout.strip()
    for h in pod_lab.values():
        if h.run([h.cli, "image", "inspect", "-f", "{{.Id}}", counter_image], check=False).stdout.strip() != want:
            save = subprocess.Popen(["docker", "save", counter_image], stdout=subprocess.PIPE)
            try:
                h.run([h.cli, "load"], stdin=save.stdout, timeout=600)
            finally:
                save.stdout.close()
                save.wait()
    image = subprocess.run(["docker", "image", "inspect", counter_image], capture_output=True, text=True,
                           check=True)
    return json.loads(image.stdout)[0]["Config"]


class PodApp(object):
    def __init__(self, lab):
        self.lab = lab
        self.name = "mp" + uuid.uuid4().hex[:8]
        self.volume = self.name + "-data"
        self.run_ids = []

    def start(self, host):
        # a restart policy: the migration's stop must not be undone by it on either engine (Docker's is cleared for
        # the stop and put back on failure; Podman's never undoes a stop), and the target gets it
        host.out("run", "-d", "--name", self.name, "--label", "mec.migration.test=1", "-e", "RUN_ENV=1",
                 "--restart", "unless-stopped", "-v", self.volume + ":/data", IMAGE)
        host.wait_count(self.name, 20)
        return host.inspect(self.name)

    def run_id(self):
        rid = "p" + uuid.uuid4().hex[:10]
        self.run_ids.append(rid)
        return rid

    def migrate(self, tmp_path, src, dst, strategy, **extra):
        rid = self.run_id()
        return migrate(tmp_path / rid, inventory=str(INVENTORY), app=self.name, strategy=strategy,
                       migration_source_host=src.name, migration_target_host=dst.name, run_id=rid, **extra)

    def cleanup(self):
        for h in self.lab.values():
            h.run("%s rm -f %s; %s volume rm -f %s; %s images --format '{{.Repository}}:{{.Tag}}' | grep -F "
                  "'mec-migration/%s:' | xargs -r %s rmi -f"
                  % (h.cli, self.name, h.cli, self.volume, h.cli, self.name, h.cli), check=False)
            # a failed test may leave its run unfinished: its work dirs, journals and the app's lock go too
            h.run(["rm", "-rf", "%s/locks/%s.lock" % (STATE_ROOT, self.name)]
                  + ["%s/%s" % (WORK_ROOT, rid) for rid in self.run_ids]
                  + ["%s/runs/%s.json" % (STATE_ROOT, rid) for rid in self.run_ids], check=False)


@pytest.fixture
def pod_app(pod_lab, pod_image):
    a = PodApp(pod_lab)
    yield a
    a.cleanup()


def _hop(app, tmp_path, src, dst, strategy, cleanup=False):
    """One migration with its state checks; returns the record. With ``cleanup`` (migration_cleanup: the source's
    container and volume are removed) the target's count is checked against the count read before the run."""
    before = src.volume_count(app.volume)
    rc, out, record = app.migrate(tmp_path, src, dst, strategy, migration_cleanup=cleanup)
    assert rc == 0, out[-4000:]
    assert record["status"] == "ok" and record["outcome"] == "migrated", record
    assert (record["source"]["engine"], record["target"]["engine"]) == (src.engine, dst.engine)
    assert dst.running(app.name)
    # the volume counter goes on from where the source stopped (exactly, where the source's volume stays)
    started = dst.starts(app.name)[-1]
    if cleanup:
        assert src.inspect(app.name) is None
        assert src.run([src.cli, "volume", "inspect", app.volume], check=False).returncode != 0
        assert started >= before, (started, before)
    else:
        time.sleep(2)  # time for a restart policy to act, had the stop been taken for a crash
        assert not src.running(app.name), "the source came back after the migration (%s)" % src.name
        assert started == src.volume_count(app.volume), (started, src.volume_count(app.volume))
    assert dst.inspect(app.name)["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert dst.wait_count(app.name, started + 1) > started
    return record


def _engine_env(env):
    return [e for e in env if not e.startswith(("container=", "HOSTNAME=", "TERM=", "HOME="))]


def _assert_image_config_kept(host, name, image_config):
    got = host.inspect(name)
    for key in CONFIG_KEYS:
        assert got["Config"][key] == image_config[key], (host.name, key, got["Config"][key], image_config[key])
    assert set(image_config["Env"]) <= set(got["Config"]["Env"]), (host.name, got["Config"]["Env"])
    assert "RUN_ENV=1" in got["Config"]["Env"]
    # no port was published on the first host: none is on this one (Podman lists an exposed port as a binding
    # without host ports; taken for a binding, it would be published on a random host port)
    assert dict((p, b) for p, b in (got["HostConfig"]["PortBindings"] or {}).items() if b) == {}, got["HostConfig"]
    assert set(_engine_env(got["Config"]["Env"])) == set(image_config["Env"]) | {"RUN_ENV=1"}, got["Config"]["Env"]
    assert dict(got["Config"]["Labels"], **image_config["Labels"]) == got["Config"]["Labels"]
    # the image on the target carries the configuration itself (not only the container; a commit adds the
    # container's own environment and labels to it)
    image = host.inspect(got["Image"], kind="image")["Config"]
    for key in CONFIG_KEYS:
        assert image[key] == image_config[key], (host.name, "image", key)
    assert set(image_config["Env"]) <= set(image["Env"]), (host.name, "image", image["Env"])
    assert dict(image["Labels"], **image_config["Labels"]) == image["Labels"], (host.name, "image", image["Labels"])


def test_m2_docker_to_podman_to_podman_to_docker_keeps_the_volume_and_the_image_config(pod_app, pod_lab, pod_image,
                                                                                       tmp_path):
    docker, pod1, pod2 = pod_lab["mec-pod-docker"], pod_lab["mec-pod-source"], pod_lab["mec-pod-target"]
    pod_app.start(docker)
    # the first hop removes the app from the Docker host (migration_cleanup), so that it can come back there
    for src, dst, cleanup in ((docker, pod1, True), (pod1, pod2, False), (pod2, docker, False)):
        record = _hop(pod_app, tmp_path, src, dst, "m2", cleanup=cleanup)
        assert record["lost_config"] == []
        _assert_image_config_kept(dst, pod_app.name, pod_image)
        if dst.engine == "podman":  # Podman's load needs every layer: nothing was left out
            assert record["sizes"]["image_layers_skipped"] == 0 and record["sizes"]["image_bytes_skipped"] == 0
            assert record["sizes"]["tarball"] >= record["sizes"]["source_image"]
        else:  # Podman -> Docker: the Docker host holds the counter image's layers, only the commit travels
            assert record["sizes"]["image_layers_skipped"] >= 3, record["sizes"]
            assert record["sizes"]["tarball"] < record["sizes"]["source_image"] / 10, record["sizes"]
    assert docker.inspect(pod_app.name)["Config"]["Env"].count("RUN_ENV=1") == 1


def test_m1_podman_to_podman_to_docker_keeps_the_volume_and_lists_the_lost_config(
        pod_app, pod_lab, pod_image, tmp_path):
    pod1, pod2 = pod_lab["mec-pod-source"], pod_lab["mec-pod-target"]
    before = pod_app.start(pod1)
    record = _hop(pod_app, tmp_path, pod1, pod2, "m1")
    assert record["lost_config"] == ALL_LOST
    assert record["start_command"] == pod_image["Entrypoint"] + pod_image["Cmd"]
    got = pod2.inspect(pod_app.name)
    assert got["Config"]["Cmd"] == record["start_command"]
    assert "RUN_ENV=1" in got["Config"]["Env"] and "MEC_APP=counter" not in got["Config"]["Env"]
    assert "mec.migration.app" in before["Config"]["Labels"]
    assert "mec.migration.app" not in (got["Config"]["Labels"] or {})  # the image's LABEL is lost with it
    # on to Docker (Podman's export, Docker's import): the imported image had nothing more to lose, the command
    # the app runs with follows as the container's own
    docker = pod_lab["mec-pod-docker"]
    record = _hop(pod_app, tmp_path, pod2, docker, "m1")
    assert record["lost_config"] == []
    assert docker.inspect(pod_app.name)["Config"]["Cmd"] == pod_image["Entrypoint"] + pod_image["Cmd"]


# the Podman API service's supervisor and the service, by the pids they record (docs/podman.md)
API_PIDS = "$(cat /run/mec-podman-service.pid.supervisor) $(cat /run/mec-podman-service.pid)"
API_UP = "python3 -c \"import docker; docker.DockerClient(base_url='unix:///run/podman/podman.sock').ping()\""


def _api_service_back(host):
    host.run(["/usr/local/sbin/mec-podman-service-supervisor", "start"], check=False)
    deadline = time.monotonic() + 60
    while host.run(API_UP, check=False).returncode != 0:
        assert time.monotonic() < deadline, "Podman's API service did not come back on %s" % host.name
        time.sleep(0.5)


REFUSED = {
    # an extra var is every host's: both Podman hosts are declared Docker
    "inventory says docker": ("mec-pod-source", "mec-pod-target", "m2", dict(migration_engine="docker"),
                              "Host mec-pod-source runs Podman 4.3.1 (answering at unix:///run/podman/podman.sock), "
                              "but its migration_engine is docker: set migration_engine: podman for mec-pod-source"),
    # and the Docker host declared Podman (its Podman socket does not exist; Docker answers on its own)
    "inventory says podman": ("mec-pod-docker", "mec-pod-source", "m2", dict(migration_engine="podman"),
                              "Host mec-pod-docker runs Docker 20.10"),
    # Podman's API service down on the target at the start: the preflight names the host and how to start it
    "api service down": ("mec-pod-source", "mec-pod-target", "m2", {},
                         "The Podman engine on host mec-pod-target is not reachable (unix:///run/podman/podman.sock)"),
    # m3 across engines: a checkpoint of one engine is not restored by the other
    "m3 docker to podman": ("mec-pod-docker", "mec-pod-source", "m3", {}, "Strategy m3 (CRIU checkpoint/restore)"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_before_any_change(pod_app, pod_lab, tmp_path, case):
    src_name, dst_name, strategy, extra, want = REFUSED[case]
    src, dst = pod_lab[src_name], pod_lab[dst_name]
    before = pod_app.start(src)
    if case == "api service down":
        dst.run("kill -KILL %s" % API_PIDS)
        assert dst.run(API_UP, check=False).returncode != 0
    try:
        rc, out, record = pod_app.migrate(tmp_path, src, dst, strategy, **extra)
    finally:
        if case == "api service down":
            _api_service_back(dst)
    assert rc != 0
    assert want in " ".join(out.split()), out[-4000:]
    assert record["status"] == "failed" and record["outcome"] == "unchanged", record
    assert record["phase"] == "preflight", record
    assert want in " ".join(record["error"].split())
    if case == "inventory says podman":
        assert "but its migration_engine is podman: set migration_engine: docker for mec-pod-docker" in \
            " ".join(record["error"].split())
    if case == "api service down":
        assert "Start its API service (systemctl start podman.socket" in " ".join(record["error"].split())
    # nothing changed: the same source container runs, nothing on the target, no lock or journal left
    assert src.running(pod_app.name) and src.inspect(pod_app.name)["Id"] == before["Id"]
    assert dst.inspect(pod_app.name) is None
    assert dst.run([dst.cli, "volume", "inspect", pod_app.volume], check=False).returncode != 0
    for h in (src, dst):
        assert h.holds_run(pod_app.name, pod_app.run_ids) == [], h.name


PORT = 18081
# holds PORT on a host (the process's id in PIDFILE, to end it by that id)
PIDFILE = "/run/mec-test-port-holder.pid"
HOLD_PORT = ("echo $$ > %s; exec python3 -c 'import socket, time; s = socket.socket(); "
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", %d)); s.listen(); "
             "time.sleep(300)'" % (PIDFILE, PORT))


def test_m2_podman_relocation_failure_brings_the_source_back(pod_app, pod_lab, tmp_path):
    """The app publishes a port that something else holds on the target: the target's start fails after the source
    stopped (the relocation), so the source must come back, and what the run made on the target must go."""
    pod1, pod2 = pod_lab["mec-pod-source"], pod_lab["mec-pod-target"]
    pod1.out("run", "-d", "--name", pod_app.name, "--restart", "unless-stopped", "-p", "%d:8080" % PORT,
             "-v", pod_app.volume + ":/data", IMAGE)
    pod1.wait_count(pod_app.name, 20)
    before = pod1.inspect(pod_app.name)
    holder = subprocess.Popen(["ssh"] + SSH_OPTS + ["root@" + pod2.address, HOLD_PORT], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while pod2.run("ss -Hltn 'sport = :%d' | grep -c LISTEN" % PORT, check=False).stdout.strip() in ("", "0"):
            assert time.monotonic() < deadline, "the port holder did not start on %s" % pod2.name
            time.sleep(0.2)
        rc, out, record = pod_app.migrate(tmp_path, pod1, pod2, "m2")
    finally:
        pod2.run("kill $(cat %s) && rm -f %s" % (PIDFILE, PIDFILE), check=False)
        holder.wait(timeout=30)
    assert rc != 0
    assert "address already in use" in " ".join(out.split()), out[-4000:]
    assert record["status"] == "failed" and record["outcome"] == "rolled_back", record
    assert record["phase"] == "relocation"
    # the source was stopped for the relocation and runs again: the same container, its volume counting on
    assert pod1.inspect(pod_app.name)["Id"] == before["Id"] and pod1.running(pod_app.name)
    starts = pod1.starts(pod_app.name)
    assert len(starts) == 2 and starts[-1] > 0, starts
    assert pod1.wait_count(pod_app.name, starts[-1] + 1) > starts[-1]
    # what the run made on the target is gone; no lock, journal or work directory holds the app
    assert pod2.inspect(pod_app.name) is None
    assert pod2.run(["podman", "volume", "exists", pod_app.volume], check=False).returncode != 0
    assert pod2.run("podman images --format '{{.Repository}}' | grep -c %s" % pod_app.name,
                    check=False).stdout.strip() == "0"
    for h in (pod1, pod2):
        assert h.run(["test", "-e", "%s/locks/%s.lock" % (STATE_ROOT, pod_app.name)], check=False).returncode != 0
        assert h.run(["test", "-e", "%s/%s" % (WORK_ROOT, pod_app.run_ids[-1])], check=False).returncode != 0


# The counter, but refusing a volume another container wrote (its hostname, the container id's start, differs on
# the target): it says so and exits 0.3 s after its start, after the engine reported it running.
REFUSING = ("h=$(hostname); o=$(cat /data/owner 2>/dev/null); if [ -n \"$o\" ] && [ \"$o\" != \"$h\" ]; then "
            "echo \"refusing the volume of $o\"; sleep 0.3; exit 3; fi; echo \"$h\" > /data/owner; "
            "exec /bin/sh /opt/counter/counter.sh")


@pytest.mark.parametrize("target,policy", [("mec-pod-target", "unless-stopped"), ("mec-pod-docker", "no")])
def test_m2_target_app_that_exits_right_after_its_start_is_rolled_back(pod_app, pod_lab, tmp_path, target, policy):
    """The target's app exits right after its start (with a restart policy, Podman starts it again): the migration
    fails after the start's settle window with an error naming the host, and rolls back; the source serves again."""
    pod1, dst = pod_lab["mec-pod-source"], pod_lab[target]
    pod1.out("run", "-d", "--name", pod_app.name, "--restart", policy, "-v", pod_app.volume + ":/data", IMAGE,
             "-c", REFUSING)
    pod1.wait_count(pod_app.name, 10)
    before = pod1.inspect(pod_app.name)
    rc, out, record = pod_app.migrate(tmp_path, pod1, dst, "m2")
    assert rc != 0, out[-4000:]
    flat = " ".join(out.split())
    assert "Container %s did not stay running on host %s: it " % (pod_app.name, target) in flat, out[-4000:]
    assert ("exited within 0.5s of its start" if policy == "no" else "within 0.5s of its start") in flat
    assert record["status"] == "failed" and record["outcome"] == "rolled_back", record
    assert record["phase"] == "relocation", record
    # the source runs again (the same container, its volume counting on); the target keeps nothing of the run
    assert pod1.inspect(pod_app.name)["Id"] == before["Id"] and pod1.running(pod_app.name)
    starts = pod1.starts(pod_app.name)
    assert len(starts) == 2, starts
    assert pod1.wait_count(pod_app.name, starts[-1] + 1) > starts[-1]
    assert dst.inspect(pod_app.name) is None
    assert dst.run([dst.cli, "volume", "inspect", pod_app.volume], check=False).returncode != 0
    # no lock or work directory holds the app (the run's journal stays, closed: the app's history)
    for h in (pod1, dst):
        assert h.run(["test", "-e", "%s/locks/%s.lock" % (STATE_ROOT, pod_app.name)], check=False).returncode != 0
        assert h.run(["test", "-e", "%s/%s" % (WORK_ROOT, pod_app.run_ids[-1])], check=False).returncode != 0
