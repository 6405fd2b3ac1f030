"""The congestion role on a lab (MEC_EXPERIMENT_INVENTORY, default inventories/local/hosts.yml): n2 limits
the throughput between the hosts to about 100 Mbit/s, a second apply changes nothing, clearing brings the
unshaped throughput back. Traffic flows only between the two lab hosts."""

from __future__ import annotations

import json

import pytest
from experiment_helpers import LAB_INVENTORY
from labutil import ansible_playbook, recap

pytestmark = pytest.mark.lab


def congestion(tmp_path, state, profile="n2", name="m", measure=True):
    """Apply or clear on both hosts; (measurement from source to target or None, recap)."""
    record = tmp_path / ("%s.json" % name)
    extra = ["-e", "congestion_measure_record=%s" % record] if measure else ["-e", "congestion_measure_peer="]
    proc = ansible_playbook("-i", str(LAB_INVENTORY), "tests/experiment/playbooks/congestion.yml",
                            "-e", "congestion_state=%s" % state, "-e", "congestion_profile=%s" % profile,
                            *extra, check=True, timeout=600)
    return (json.loads(record.read_text()) if measure else None), recap(proc.stdout)


@pytest.fixture
def lab_cleared(tmp_path, experiment_lab):
    yield
    congestion(tmp_path, "cleared", name="final", measure=False)


def test_n2_limits_throughput_and_clearing_restores_it(tmp_path, lab_cleared):
    before, _ = congestion(tmp_path, "cleared", name="before")
    shaped, first = congestion(tmp_path, "applied", name="n2")
    _, second = congestion(tmp_path, "applied", name="n2-again", measure=False)
    after, cleared = congestion(tmp_path, "cleared", name="after")
    print("unshaped %s Mbit/s, n2 %s Mbit/s, cleared %s Mbit/s" % (before["mbit_s"], shaped["mbit_s"], after["mbit_s"]))
    assert shaped["profile"] == "n2" and shaped["rate_mbit"] == 100
    assert 30 <= float(shaped["mbit_s"]) <= 110
    assert all(r["changed"] >= 1 for r in first.values())
    assert all(r["changed"] == 0 for r in second.values()), second
    assert all(r["changed"] >= 1 for r in cleared.values())
    assert float(after["mbit_s"]) > 2 * float(shaped["mbit_s"])
    assert float(after["mbit_s"]) >= 0.5 * float(before["mbit_s"])
