"""The local lab, provisioned by the collection's roles: real engines, real CRIU, real SSH between hosts."""

from __future__ import annotations

import time

import pytest

from labutil import ROOT, ansible_playbook, recap, ssh

pytestmark = pytest.mark.lab

COUNTER = "lab-test-counter"
CHECKPOINT = "lab-test-cp"
WORK = "/var/tmp/mec-lab-test"


@pytest.mark.parametrize("group", ["source", "target"])
def test_engine_has_experimental_features(lab_groups, group):
    _, address = lab_groups[group]
    out = ssh(address, "docker info --format '{{json .ExperimentalBuild}}'").stdout.strip()
    assert out == "true"


@pytest.mark.parametrize("group", ["source", "target"])
def test_criu_check_passes(lab_groups, group):
    _, address = lab_groups[group]
    proc = ssh(address, "PATH=/usr/local/sbin:$PATH criu check && PATH=/usr/local/sbin:$PATH criu --version")
    assert "Looks good." in proc.stdout
    assert "Version: 4.2.1" in proc.stdout


def _last_count(address, container):
    lines = ssh(address, "docker logs %s 2>&1 | tail -n 1" % container).stdout.split()
    return int(lines[-1]) if lines else None


def test_memory_counter_continues_after_checkpoint_on_source_and_restore_on_target(lab_groups):
    """A process whose count lives only in memory goes on counting on the other host."""
    _, src = lab_groups["source"]
    _, dst = lab_groups["target"]
    for address in (src, dst):
        ssh(address, "docker rm -f %s >/dev/null 2>&1; rm -rf %s; mkdir -p %s" % (COUNTER, WORK, WORK))
    try:
        ssh(src, "docker run -d --name %s mec-lab/base:bookworm sh -c "
                 "'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done'" % COUNTER)
        time.sleep(2)
        ssh(src, "docker checkpoint create --checkpoint-dir %s %s %s" % (WORK, COUNTER, CHECKPOINT))
        at_checkpoint = _last_count(src, COUNTER)
        assert at_checkpoint and at_checkpoint >= 10
        assert ssh(src, "docker inspect -f '{{.State.Running}}' %s" % COUNTER).stdout.strip() == "false"

        # Host to host, over the SSH trust that the ssh_peers role set up (no controller in between).
        ssh(src, "rsync -a %s/%s/ root@%s:%s/%s/" % (WORK, CHECKPOINT, dst, WORK, CHECKPOINT))

        # Same run configuration on the target; Docker 20.10 only restores from the container's own
        # checkpoints folder.
        ssh(dst, "docker create --name %s mec-lab/base:bookworm sh -c "
                 "'i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done'" % COUNTER)
        ssh(dst, "root=$(docker info -f '{{.DockerRootDir}}'); id=$(docker inspect -f '{{.Id}}' %s); "
                 "mkdir -p $root/containers/$id/checkpoints && cp -a %s/%s $root/containers/$id/checkpoints/"
            % (COUNTER, WORK, CHECKPOINT))
        ssh(dst, "docker start --checkpoint %s %s" % (CHECKPOINT, COUNTER))
        time.sleep(1.5)
        logs = [int(x) for x in ssh(dst, "docker logs %s 2>&1" % COUNTER).stdout.split()]
        assert logs, "the restored container printed nothing"
        # It continues where it stopped: the first number after restore is the next one.
        assert logs[0] == at_checkpoint + 1
        assert logs[-1] > at_checkpoint + 5
        assert logs == list(range(logs[0], logs[0] + len(logs)))
    finally:
        for address in (src, dst):
            ssh(address, "docker rm -f %s >/dev/null 2>&1; rm -rf %s" % (COUNTER, WORK), check=False)


def test_provisioning_twice_changes_nothing(lab_groups):
    proc = ansible_playbook("-i", "inventories/local/hosts.yml", "playbooks/provision.yml", check=True)
    hosts = recap(proc.stdout)
    for group in ("source", "target"):
        name, _ = lab_groups[group]
        assert hosts[name]["failed"] == 0
        assert hosts[name]["changed"] == 0, proc.stdout[-4000:]


def test_inventory_without_target_fails_before_any_change(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  children:\n    source:\n      hosts:\n        only-one:\n"
                         "          ansible_host: 127.0.0.1\n")
    proc = ansible_playbook("-i", str(inventory), "playbooks/provision.yml")
    assert proc.returncode != 0
    assert "exactly one host in group 'source' and one other host in group 'target'" in proc.stdout
    assert "only-one" not in recap(proc.stdout)


def test_tearing_down_a_lab_that_does_not_exist_is_not_an_error(tmp_path):
    proc = ansible_playbook(
        "playbooks/lab.yml", "-e", "local_lab_state=absent", "-e", "local_lab_name=mec-lab-never-made",
        "-e", "local_lab_inventory_dir=%s" % (tmp_path / "inv"),
        "-e", '{"local_lab_hosts": [{"name": "mec-lab-never-made-a", "address": "172.30.99.11", "group": "source"},'
              ' {"name": "mec-lab-never-made-b", "address": "172.30.99.12", "group": "target"}]}', check=True)
    assert recap(proc.stdout)["localhost"]["failed"] == 0
    # The real lab is untouched.
    assert (ROOT / "inventories" / "local" / "hosts.yml").exists()
