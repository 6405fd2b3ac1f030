"""Shared fixtures: the local lab."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import labutil  # noqa: E402


@pytest.fixture(scope="session")
def lab():
    """The running local lab. Tests marked `lab` fail (not skip) without it: scripts/test.sh brings it up."""
    if not labutil.INVENTORY.exists():
        pytest.fail("The local lab is not up (%s is missing). Bring it up with "
                    "`ansible-playbook playbooks/lab.yml` or run scripts/test.sh." % labutil.INVENTORY)
    return labutil.lab_hosts()
