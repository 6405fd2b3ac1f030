"""mec.migration.service_container on this machine's engine, through ansible-playbook: created, unchanged on
the second run, re-created on a change, a stopped one started, removed (tests/integration/playbooks/)."""
import json
import os
import subprocess

import pytest

from labtools import ROOT, docker_cli, local_base_image, skip_or_fail
from labtools import ANSIBLE_PLAYBOOK

pytestmark = pytest.mark.docker

PLAYBOOK = os.path.join(ROOT, "tests", "integration", "playbooks", "service_container.yml")


def test_service_container_is_idempotent_and_cleans_up(docker_client, unique):
    image = local_base_image()
    if image is None:
        skip_or_fail("no local base image (playbooks/lab.yml makes mec-lab/base:bookworm)")
    proc = subprocess.run([ANSIBLE_PLAYBOOK, PLAYBOOK, "-e", json.dumps({"sc_image": image, "sc_name": unique})],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "failed=0" in proc.stdout.split("PLAY RECAP", 1)[1]
    # the playbook's always: left nothing behind
    assert docker_cli("container", "inspect", unique, check=False).returncode != 0
    assert docker_cli("network", "inspect", unique + "-net", check=False).returncode != 0
    assert docker_cli("volume", "inspect", unique + "-data", check=False).returncode != 0
