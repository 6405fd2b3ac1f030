"""Host keys are checked on every SSH hop of the lab: the controller's Ansible connection (the known_hosts the
local_lab role writes beside the inventory) and host to host (the migration's DEFAULT_SSH_OPTIONS against the
known_hosts the ssh_peers role writes). A wrong key stops the connection.

The wrong-key cases run on a copy of the inventory, so that other users of the lab are not disturbed."""
import os
import shutil
import subprocess
import sys
import uuid

import pytest

from ansible_collections.mec.migration.plugins.module_utils.transport import DEFAULT_SSH_OPTIONS

pytestmark = pytest.mark.lab

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
INVENTORY_DIR = os.path.join(ROOT, "inventories", "local")
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
# a key that belongs to no lab host
FOREIGN_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKdH8Rx5gEDcUGJBTz7XwMETS5Q6FbP3icvHDWTr7kXW"


def host_key(name):
    out = subprocess.run(["docker", "exec", name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"], check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return " ".join(out.split()[:2])


def ping(inventory_dir, tmp_path):
    # no reused master; no pipelining: with it, Ansible writes the module to ssh's stdin at once and, when ssh has
    # already refused the host, may report only its own "Broken pipe" instead of ssh's reason (CI, session 23)
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="False",
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path / ("cp-" + uuid.uuid4().hex[:8])))
    return subprocess.run([ANSIBLE, "-i", os.path.join(inventory_dir, "hosts.yml"), "all",
                           "-m", "ansible.builtin.ping"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def copy_inventory(tmp_path, known_hosts_text):
    inv = tmp_path / "inventory"
    inv.mkdir()
    shutil.copy(os.path.join(INVENTORY_DIR, "hosts.yml"), inv / "hosts.yml")
    shutil.copy(os.path.join(INVENTORY_DIR, "id_ed25519"), inv / "id_ed25519")
    os.chmod(inv / "id_ed25519", 0o600)
    (inv / "known_hosts").write_text(known_hosts_text)
    return str(inv)


def test_lab_known_hosts_holds_each_hosts_key_under_its_address(lab_groups):
    with open(os.path.join(INVENTORY_DIR, "known_hosts")) as fh:
        lines = sorted(line.strip() for line in fh if line.strip())
    expected = sorted("%s %s" % (address, host_key(name)) for name, address in lab_groups.values())
    assert lines == expected
    with open(os.path.join(INVENTORY_DIR, "hosts.yml")) as fh:
        assert "-o UserKnownHostsFile={{ inventory_dir }}/known_hosts -o StrictHostKeyChecking=yes" in fh.read()


def test_ansible_connects_with_the_right_keys_and_refuses_a_wrong_one(lab_groups, tmp_path):
    with open(os.path.join(INVENTORY_DIR, "known_hosts")) as fh:
        good = fh.read()
    proc = ping(copy_inventory(tmp_path, good), tmp_path)
    assert proc.returncode == 0 and proc.stdout.count("SUCCESS") == 2, proc.stdout[-3000:]
    wrong = "".join("%s %s\n" % (address, FOREIGN_KEY) for _name, address in lab_groups.values())
    (tmp_path / "wrong").mkdir()
    proc = ping(copy_inventory(tmp_path / "wrong", wrong), tmp_path)
    assert proc.returncode != 0 and "SUCCESS" not in proc.stdout
    for _name, address in lab_groups.values():  # each host refused for its key
        assert "Host key for %s has changed and you have requested strict checking" % address in proc.stdout


def test_migration_ssh_options_check_the_peer_key(lab_groups):
    source, _ = lab_groups["source"]
    _, target_address = lab_groups["target"]
    pairs = list(zip(DEFAULT_SSH_OPTIONS[::2], DEFAULT_SSH_OPTIONS[1::2]))
    base = [word for flag, value in pairs if not value.startswith("Control") for word in (flag, value)]
    assert "StrictHostKeyChecking=yes" in base and "UserKnownHostsFile=/dev/null" not in base
    argv = ["docker", "exec", source, "ssh"] + base + ["-o", "ControlPath=none"]
    ok = subprocess.run(argv + ["root@" + target_address, "hostname"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    # the same with a known_hosts that holds another key for the target: refused
    subprocess.run(["docker", "exec", source, "sh", "-c", "echo '%s %s' > /tmp/mec-wrong-known-hosts"
                    % (target_address, FOREIGN_KEY)], check=True, timeout=60)
    try:
        bad = subprocess.run(argv + ["-o", "UserKnownHostsFile=/tmp/mec-wrong-known-hosts", "-o", "LogLevel=INFO",
                                     "root@" + target_address, "hostname"], capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["docker", "exec", source, "rm", "-f", "/tmp/mec-wrong-known-hosts"], timeout=60)
    assert bad.returncode == 255 and "Host key verification failed" in bad.stderr, bad.stderr
