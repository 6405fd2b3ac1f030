"""The Podman lab (playbooks/vars/lab_podman.yml, inventories/podman/hosts.yml): two Podman hosts and a Docker one,
provisioned by the collection's roles, reached over SSH with checked host keys.

What is checked on the hosts themselves: each runs the engine its inventory variable ``migration_engine`` names (and
not the other); a container runs there from the lab's base image; a counter checkpointed with ``podman container
checkpoint --export`` on the Podman source and restored with ``podman container restore --import`` on the Podman
target goes on counting from memory; Podman's API socket answers (``/_ping``, ``/v4.0.0/libpod/info``, the
Docker-compatible ``/version``) and is root's alone.

A Podman host that restarts (no systemd) starts its containers on their static addresses again once the role's
supervisor has started: it releases the CNI plugins' stale address reservations, as Podman's tmpfiles.d does at boot
where systemd runs.

Bring the lab up with ``ansible-playbook playbooks/lab.yml -e @playbooks/vars/lab_podman.yml`` (scripts/test.sh does
for tests marked ``podman_lab``). Without it every test here fails (it is never skipped). Cost: ~30 s on the lab
(under load), and ~27 s for the bad-input test (an ansible-playbook run of lab.yml that stops at its first check).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from labutil import ansible_playbook
from podman_labtools import podman_lab_hosts, ssh

pytestmark = [pytest.mark.lab, pytest.mark.podman_lab]

BASE_IMAGE = "mec-lab/base:bookworm"
SOCKET = "/run/podman/podman.sock"
COUNTER = "mec-podman-lab-test-counter"
WORK = "/var/tmp/mec-podman-lab-test"
RESTART_PROBE = "mec-podman-lab-test-restart"
SUPERVISOR_LOG = "/var/log/mec-podman-service.log"
# Counts from a random start, in memory only: a restored counter goes on from its last number, a fresh start of the
# same command would begin at another one.
COUNT_LOOP = "i=$(od -An -N4 -tu4 /dev/urandom); i=$((i)); while :; do i=$((i+1)); echo $i; sleep 0.1; done"


@pytest.fixture(scope="module")
def podman_lab():
    """{host name: PodmanLabHost} of the Podman lab, two Podman hosts and a Docker one; its absence fails."""
    hosts = podman_lab_hosts()
    assert sorted(h.engine for h in hosts.values()) == ["docker", "podman", "podman"], \
        "the Podman lab's inventory says engines %s" % hosts
    return hosts


def _by_group(lab, group):
    (host,) = [h for h in lab.values() if h.group == group]
    return host


def _counts(text):
    return [int(x) for x in text.split() if x.isdigit()]


@pytest.mark.parametrize("name", ["mec-pod-source", "mec-pod-target", "mec-pod-docker"])
def test_each_host_runs_the_engine_its_inventory_names(podman_lab, name):
    host = podman_lab[name]
    # What runs there, read on the host: the engines' processes and what their command lines answer.
    probe = ssh(host.address, "pgrep -x dockerd > /dev/null && echo dockerd=yes || echo dockerd=no; "
                              "pgrep -f '^podman system service' > /dev/null && echo podman_service=yes "
                              "|| echo podman_service=no; command -v podman > /dev/null && echo podman=yes "
                              "|| echo podman=no").stdout.split()
    if host.engine == "podman":
        assert probe == ["dockerd=no", "podman_service=yes", "podman=yes"], (name, probe)
        info = json.loads(ssh(host.address, "podman info --format '{{json .Host}}'").stdout)
        assert info["ociRuntime"]["name"] == "runc"
        assert "4.3.1" in ssh(host.address, "podman --version").stdout
    else:
        assert host.engine == "docker"
        assert probe == ["dockerd=yes", "podman_service=no", "podman=no"], (name, probe)
        assert ssh(host.address, "docker info --format '{{json .ExperimentalBuild}}'").stdout.strip() == "true"


@pytest.mark.parametrize("name", ["mec-pod-source", "mec-pod-target", "mec-pod-docker"])
def test_a_container_runs_from_the_lab_image_loaded_from_the_controller(podman_lab, name):
    host = podman_lab[name]
    cli = host.engine
    # Podman: --ulimit host (it would raise NOFILE/NPROC, which fails without CAP_SYS_RESOURCE); Docker has no such flag
    ulimit = "--ulimit host " if cli == "podman" else ""
    out = ssh(host.address, "%s run --rm %s--network none %s cat /etc/debian_version"
              % (cli, ulimit, BASE_IMAGE)).stdout.strip()
    assert out.startswith("12."), out
    # the very image of the controller's engine (Podman names it by the same configuration digest, without sha256:)
    want = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", BASE_IMAGE], capture_output=True,
                          text=True, check=True).stdout.strip().replace("sha256:", "")
    have = ssh(host.address, "%s image inspect --format '{{.Id}}' %s" % (cli, BASE_IMAGE)).stdout.strip()
    assert have.replace("sha256:", "") == want


def test_podman_checkpoint_export_on_source_restores_with_its_memory_on_target(podman_lab, tmp_path):
    """A counter whose count lives only in memory goes on counting on the other Podman host: checkpoint --export on
    the source, the archive copied host to host (the ssh_peers trust), restore --import on the target."""
    src, dst = _by_group(podman_lab, "source"), _by_group(podman_lab, "target")
    assert src.engine == dst.engine == "podman"
    for host in (src, dst):
        ssh(host.address, "podman rm --force --ignore %s > /dev/null; rm -rf %s; mkdir -m 0700 -p %s"
            % (COUNTER, WORK, WORK))
    try:
        ssh(src.address, "podman run --detach --name %s --ulimit host %s sh -c '%s'"
            % (COUNTER, BASE_IMAGE, COUNT_LOOP))
        time.sleep(2)
        checkpoint = json.loads(ssh(src.address, "PATH=/usr/local/sbin:$PATH podman container checkpoint "
                                                 "--export %s/cp.tar --print-stats %s" % (WORK, COUNTER)).stdout)
        at_checkpoint = _counts(ssh(src.address, "podman logs %s" % COUNTER).stdout)
        assert len(at_checkpoint) >= 10, at_checkpoint[-3:]
        assert ssh(src.address, "podman inspect --format '{{.State.Status}}' %s" % COUNTER).stdout.strip() \
            == "exited"
        # host to host, over the SSH trust that the ssh_peers role set up (no controller in between)
        ssh(src.address, "rsync -a %s/cp.tar root@%s:%s/" % (WORK, dst.address, WORK))
        restore = json.loads(ssh(dst.address, "PATH=/usr/local/sbin:$PATH podman container restore --import "
                                              "%s/cp.tar --print-stats" % WORK).stdout)
        time.sleep(1.5)
        after = _counts(ssh(dst.address, "podman logs %s" % COUNTER).stdout)
        # The log came along with the checkpoint, and the count goes on from the last number in one unbroken run:
        # a fresh start would begin at another random number.
        assert after[:len(at_checkpoint)] == at_checkpoint, (at_checkpoint[:2], at_checkpoint[-2:], after[:2])
        assert after == list(range(after[0], after[0] + len(after))), (at_checkpoint[-3:], after[-3:])
        assert after[-1] > at_checkpoint[-1] + 5
        assert ssh(dst.address, "podman inspect --format '{{.State.Running}}' %s" % COUNTER).stdout.strip() \
            == "true"
        stats = {"checkpoint": checkpoint, "restore": restore, "count_at_checkpoint": at_checkpoint[-1],
                 "count_on_target": after[-1]}
        print("podman --print-stats (microseconds): %s" % json.dumps(stats))
        assert checkpoint["container_statistics"][0]["criu_statistics"]["pages_written"] > 0
        assert restore["container_statistics"][0]["criu_statistics"]["pages_restored"] > 0
    finally:
        for host in (src, dst):
            ssh(host.address, "podman rm --force --ignore %s > /dev/null; rm -rf %s" % (COUNTER, WORK),
                check=False)


@pytest.mark.parametrize("name", ["mec-pod-source", "mec-pod-target"])
def test_podman_api_socket_answers_and_is_roots_alone(podman_lab, name):
    address = podman_lab[name].address
    curl = "curl --silent --show-error --fail --max-time 20 --unix-socket %s http://d" % SOCKET
    assert ssh(address, curl + "/_ping").stdout == "OK"
    info = json.loads(ssh(address, curl + "/v4.0.0/libpod/info").stdout)
    assert info["host"]["ociRuntime"]["name"] == "runc"
    assert info["version"]["Version"] == "4.3.1"
    # the Docker-compatible API (the Docker SDK talks to it)
    version = json.loads(ssh(address, curl + "/version").stdout)
    assert [c["Name"] for c in version["Components"]][0] == "Podman Engine"
    # root's alone: the socket 0600 root:root in a 0700 root folder, and another user is refused
    assert ssh(address, "stat -c '%%U:%%G %%a %%F' %s %s" % (SOCKET, os.path.dirname(SOCKET))).stdout.split("\n")[:2] \
        == ["root:root 600 socket", "root:root 700 directory"]
    refused = ssh(address, "setpriv --reuid=nobody --regid=nogroup --clear-groups python3 -c 'import socket; "
                           "socket.socket(socket.AF_UNIX).connect(\"%s\")'" % SOCKET, check=False)
    assert refused.returncode != 0 and "PermissionError" in refused.stderr, (refused.returncode, refused.stderr)


def _wait_for_ssh(address, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        if ssh(address, "true", check=False, timeout=20).returncode == 0:
            return
        assert time.monotonic() < deadline, "%s did not answer SSH within %s s of its restart" % (address, seconds)
        time.sleep(1)


def test_a_restarted_podman_host_starts_its_containers_on_their_static_addresses_again(podman_lab):
    """A Podman host without systemd that restarts: nothing ran Podman's tmpfiles.d at boot, so the CNI plugins'
    address reservations of the containers that ran before are still files under /var/lib/cni/networks, and a
    container on a static address (the gateway on 10.77.0.2) cannot start again: "duplicate allocation is not
    allowed". The role's supervisor, at its first start after the boot (what the role runs), releases them. The lab
    host restarts as after this machine's restart (its processes killed, /run empty again)."""
    host = _by_group(podman_lab, "target")
    reservation = "/var/lib/cni/networks/mec-apps/10.77.0.2"
    gateway_id = ssh(host.address, "podman inspect --format '{{.Id}} {{.State.Status}}' mec-gateway").stdout.split()
    assert gateway_id[1] == "running", "the gateway does not run on %s before the test: %s" % (host.name, gateway_id)
    assert ssh(host.address, "head -n 1 %s" % reservation).stdout.strip() == gateway_id[0]
    log_lines = int(ssh(host.address, "cat %s 2> /dev/null | wc -l" % SUPERVISOR_LOG).stdout)
    subprocess.run(["docker", "kill", host.name], check=True, capture_output=True)
    subprocess.run(["docker", "start", host.name], check=True, capture_output=True)
    _wait_for_ssh(host.address)
    try:
        # the stale reservation is real: the file is still there after the restart, naming the gateway
        assert ssh(host.address, "head -n 1 %s" % reservation).stdout.strip() == gateway_id[0]
        assert ssh(host.address, "/usr/local/sbin/mec-podman-service-supervisor start").stdout.strip() == "started"
        released = ssh(host.address, "tail -n +%d %s | grep -F 'released %s '"
                       % (log_lines + 1, SUPERVISOR_LOG, reservation), check=False).stdout
        assert gateway_id[0] in released, "the supervisor's first start after the restart did not release %s" \
            % reservation
        started = ssh(host.address, "podman start mec-gateway", check=False)
        assert started.returncode == 0, started.stderr
        assert ssh(host.address, "podman inspect --format '{{.State.Status}} {{.NetworkSettings.Networks}}' "
                                 "mec-gateway").stdout.startswith("running")
        assert ssh(host.address, "head -n 1 %s" % reservation).stdout.strip() == gateway_id[0]
        # Once per boot: a container whose network is set up but that does not run (`podman container init`) keeps
        # its reservation when the supervisor starts again later.
        ssh(host.address, "podman create --name %s --network mec-apps %s sleep 60 > /dev/null && "
                          "podman container init %s > /dev/null" % (RESTART_PROBE, BASE_IMAGE, RESTART_PROBE))
        networks = json.loads(ssh(host.address, "podman inspect --format '{{json .NetworkSettings.Networks}}' %s"
                                  % RESTART_PROBE).stdout)
        probe_reservation = "/var/lib/cni/networks/mec-apps/" + networks["mec-apps"]["IPAddress"]
        probe_id = ssh(host.address, "podman inspect --format '{{.Id}}' %s" % RESTART_PROBE).stdout.strip()
        assert ssh(host.address, "head -n 1 %s" % probe_reservation).stdout.strip() == probe_id
        ssh(host.address, "/usr/local/sbin/mec-podman-service-supervisor restart")
        assert ssh(host.address, "head -n 1 %s" % probe_reservation).stdout.strip() == probe_id
    finally:
        # the host as the other tests expect it: its API service and the gateway running, the probe gone
        ssh(host.address, "podman rm --force --ignore %s; /usr/local/sbin/mec-podman-service-supervisor start; "
                          "podman start mec-gateway" % RESTART_PROBE, check=False)


def test_a_lab_host_with_an_unknown_engine_is_refused_before_any_change(tmp_path):
    """local_lab checks every host's engine (docker or podman) before it makes a network, a host or an inventory."""
    hosts = [{"name": "mec-never-made-a", "address": "172.30.99.11", "group": "source", "engine": "rkt"},
             {"name": "mec-never-made-b", "address": "172.30.99.12", "group": "target"}]
    args = ["-e", "local_lab_name=mec-never-made", "-e", "local_lab_subnet=172.30.99.0/24",
            "-e", "local_lab_inventory_dir=%s" % (tmp_path / "inv"), "-e", json.dumps({"local_lab_hosts": hosts})]
    try:
        proc = ansible_playbook("playbooks/lab.yml", *args)
        assert proc.returncode != 0
        assert "an engine docker or podman" in proc.stdout and "engines ['rkt', 'docker']" in proc.stdout, \
            proc.stdout[-3000:]
        assert not (tmp_path / "inv").exists()
        made = subprocess.run(["docker", "ps", "--all", "--quiet", "--filter",
                               "label=mec.migration.lab=mec-never-made"], capture_output=True, text=True,
                              check=True).stdout.split()
        assert made == []
    finally:
        # whatever a regression made (the network, a host) goes
        if subprocess.run(["docker", "network", "inspect", "mec-never-made"], capture_output=True).returncode == 0:
            ansible_playbook("playbooks/lab.yml", "-e", "local_lab_state=absent", "-e", "local_lab_remove_images=false",
                             *args)
