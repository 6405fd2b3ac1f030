"""The experiment's reset on a lab (MEC_EXPERIMENT_INVENTORY, default inventories/local/hosts.yml): it starts
the app anew from the mec_apps role's own run configuration in seconds, repairs what is out of place with
playbooks/apps.yml, and refuses to start a run while an app's migration lock is held (an unfinished run),
changing nothing. Fails (never skips) without the lab."""

from __future__ import annotations

import json

import pytest
from mec_experiment import probe
from mec_experiment.lab import lab_hosts, ssh
from mec_experiment.reset import ResetError, reset

pytestmark = pytest.mark.lab


def run(host, command):
    proc = ssh(host, command, timeout=120)
    assert proc.returncode == 0, (command, proc.stderr)
    return proc.stdout.strip()


def started(host, name):
    return run(host, "docker inspect -f '{{.State.StartedAt}}' %s" % name)


@pytest.fixture
def hosts(experiment_lab):
    return lab_hosts(experiment_lab)


def test_reset_starts_a2_anew_from_the_role_run_configuration(hosts, experiment_lab):
    reset(experiment_lab, hosts, "a2")  # whatever state the lab was in: afterwards a2 is in place
    run(hosts["source"], "test -s /opt/mec-apps/run-a2.json")
    before = started(hosts["source"], "a2")
    a1_before = started(hosts["source"], "a1")
    done = reset(experiment_lab, hosts, "a2")
    print("reset a2: %s" % done)
    assert done["method"] == "app" and done["playbook_seconds"] is None and done["seconds"] < 20, done
    assert started(hosts["source"], "a2") != before, "a2 must be started anew"
    assert started(hosts["source"], "a1") == a1_before, "the reset of a2 must leave a1 alone"
    ok, state = probe.http_state(hosts["source"]["address"], 3000, timeout=2)
    assert ok and int(state["counter"]) <= 2, state
    spec = run(hosts["source"], "docker inspect -f '{{index .Config.Labels \"mec.migration.spec\"}}' a2")
    config = json.loads(run(hosts["source"], "cat /opt/mec-apps/run-a2.json"))
    assert "mec.migration.spec=" + spec in config["argv"]
    assert run(hosts["target"], "docker ps -a --format '{{.Names}}' --filter name=^a2$") == ""


def test_reset_takes_a_stray_container_off_the_target_and_repairs_with_the_playbook(hosts, experiment_lab):
    run(hosts["target"],
        "docker rm -f a3-loader >/dev/null 2>&1; docker create --name a3-loader mec-lab/base:bookworm true")
    done = reset(experiment_lab, hosts, "a2")
    assert done["removed_from_target"] == ["a3-loader"] and done["playbook_seconds"] is None, done
    assert run(hosts["target"], "docker ps -a --format '{{.Names}}' --filter name=^a3-loader$") == ""
    # without the role's run configuration the reset cannot start a2: apps.yml repairs it (and writes it again)
    run(hosts["source"], "mv /opt/mec-apps/run-a2.json /opt/mec-apps/run-a2.json.test")
    try:
        done = reset(experiment_lab, hosts, "a2")
    finally:
        ssh(hosts["source"], "test -e /opt/mec-apps/run-a2.json"
                             " || mv /opt/mec-apps/run-a2.json.test /opt/mec-apps/run-a2.json;"
                             " rm -f /opt/mec-apps/run-a2.json.test")
    print("reset a2 without its run configuration: %s" % done)
    assert done["playbook_seconds"] > 0 and done["playbook_because"] == [
        "source: no docker run configuration /opt/mec-apps/run-a2.json (apply playbooks/apps.yml once)",
        "a2 is not running on the source (no container)", "A2's volume is missing on the source"], done
    run(hosts["source"], "test -s /opt/mec-apps/run-a2.json")


def test_reset_refuses_while_a_migration_lock_is_held_and_changes_nothing(hosts, experiment_lab):
    a1_before = started(hosts["source"], "a1")
    run(hosts["target"], "mkdir -p /var/lib/mec-migration/locks && test ! -e /var/lib/mec-migration/locks/a1.lock "
                         "&& echo '{\"run_id\": \"test-reset-lock\"}' > /var/lib/mec-migration/locks/a1.lock")
    try:
        with pytest.raises(ResetError) as err:
            reset(experiment_lab, hosts, "a1")
    finally:
        ssh(hosts["target"], "grep -q test-reset-lock /var/lib/mec-migration/locks/a1.lock && "
                             "rm -f /var/lib/mec-migration/locks/a1.lock")
    assert "migration lock held on the target: a1.lock (an unfinished run: playbooks/recover.yml)" in str(err.value)
    assert str(err.value).startswith("the run would not start like the others: ")
    assert started(hosts["source"], "a1") == a1_before, "nothing may change while a lock is held"
