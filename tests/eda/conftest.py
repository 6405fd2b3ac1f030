"""pytest wiring for tests/eda: the mec_mobility event source and the sandbox importable, the marker ``zones_lab``
(tests that need a separate lab of N hosts: deselected unless MEC_ZONES_LAB=1, which scripts/test.sh sets after
bringing that lab up)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))
SOURCES = ROOT / "extensions" / "eda" / "plugins" / "event_source"


def load_plugin(name="mec_mobility"):
    """An event source module (mec_mobility, mec_approach), loaded from its file as ansible-rulebook loads it."""
    spec = importlib.util.spec_from_file_location(name + "_under_test", SOURCES / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_configure(config):
    config.addinivalue_line("markers", "zones_lab: needs a separate lab of N MEC hosts, one per zone "
                                       "(MEC_ZONES_LAB=1, set by scripts/test.sh; see docs/follow.md)")
    config.addinivalue_line("markers", "real_time: a zones-lab test whose margins are wall-clock time (the drive); "
                                       "scripts/test.sh runs it with the main run, not beside the Molecule scenarios")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("MEC_ZONES_LAB", "") == "1":
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("zones_lab") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def mec_mobility():
    return load_plugin("mec_mobility")


@pytest.fixture(scope="module")
def ma():
    """The mec_approach event source."""
    return load_plugin("mec_approach")
