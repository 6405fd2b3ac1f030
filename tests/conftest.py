"""Shared fixtures: the local lab."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# Every test may import the collection (ansible_collections.mec.migration...) through .build/collections, a symlink
# to the repository root made here if missing (scripts/bootstrap.sh makes it too). Here, not in tests/unit/conftest.py:
# pytest loads a folder's conftest only when it collects that folder, after tests/apps and tests/eda.
_COLLECTIONS = Path(__file__).resolve().parents[1] / ".build" / "collections"
_LINK = _COLLECTIONS / "ansible_collections" / "mec" / "migration"
if not os.path.lexists(_LINK):
    _LINK.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("../../../..", _LINK)
if str(_COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(_COLLECTIONS))

import labutil  # noqa: E402

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config):
    config.addinivalue_line("markers", "ci_may_skip: a skip of this test is fine in CI too (say why in the reason)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (env CI=true) a skipped test FAILS: a missing lab, Docker engine, CRIU or tool must not pass as a
    green run. Only tests marked ``ci_may_skip`` may still skip there."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail") and item.get_closest_marker("ci_may_skip") is None:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = "skipped in CI, which counts as a failure (CI=%s): %s" % (os.environ.get("CI"), reason)


@pytest.fixture(scope="session")
def lab():
    """The running local lab. Tests marked `lab` fail (not skip) without it: scripts/test.sh brings it up."""
    if not labutil.INVENTORY.exists():
        pytest.fail("The local lab is not up (%s is missing). Bring it up with "
                    "`ansible-playbook playbooks/lab.yml` or run scripts/test.sh." % labutil.INVENTORY)
    return labutil.lab_hosts()
