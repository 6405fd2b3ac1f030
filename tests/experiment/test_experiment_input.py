"""playbooks/experiment.yml stops before the first run on an unknown app, strategy or profile and lists the
valid names. Only the controller's input check runs (the inventory's hosts are never contacted)."""

from __future__ import annotations

import pytest
from labutil import ansible_playbook

INVENTORY = """all:
  children:
    mec_hosts:
      children:
        source: {hosts: {nowhere-source: {ansible_host: 127.0.0.254}}}
        target: {hosts: {nowhere-target: {ansible_host: 127.0.0.253}}}
"""


@pytest.mark.parametrize("extra, unknown", [
    ('{"experiment_apps": ["a9"]}', "a9"),
    ('{"experiment_strategies": ["m1", "m7"]}', "m7"),
    ('{"experiment_profiles": ["n3"]}', "n3"),
])
def test_unknown_names_stop_before_the_first_run(tmp_path, extra, unknown):
    inv = tmp_path / "hosts.yml"
    inv.write_text(INVENTORY)
    results = tmp_path / "results"
    proc = ansible_playbook("-i", str(inv), "playbooks/experiment.yml", "-e", extra,
                            "-e", "experiment_results_dir=%s" % results, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "Unknown: ['%s']" % unknown in out
    assert "Valid apps: a1, a2, a3; strategies: m1, m2, m3; profiles: n1, n2" in out
    assert "nowhere-source" not in out.split("PLAY RECAP")[0].split("Stop before the first run")[-1]
    assert not results.exists()
