"""Experiment tests: markers, import path (apps/, tests/), the lab fixture. What the tests import is in
experiment_helpers.py (a module named conftest is ambiguous when several test folders run together)."""

from __future__ import annotations

import sys

import pytest
from experiment_helpers import LAB_INVENTORY, ROOT

for extra in (ROOT / "apps", ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))


@pytest.fixture
def experiment_lab():
    """The lab the experiment's lab tests use. They fail (never skip) when it is missing."""
    if not LAB_INVENTORY.exists():
        pytest.fail("No lab inventory at %s: bring the lab up (ansible-playbook playbooks/lab.yml, then "
                    "playbooks/apps.yml) or set MEC_EXPERIMENT_INVENTORY." % LAB_INVENTORY)
    return LAB_INVENTORY


def pytest_configure(config):
    config.addinivalue_line("markers", "docker: needs this machine's Docker engine")
    config.addinivalue_line("markers", "lab: needs the local lab (two MEC hosts over SSH)")
