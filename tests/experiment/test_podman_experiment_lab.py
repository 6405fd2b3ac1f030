"""The experiment on the Podman lab (inventories/podman/hosts.yml: mec-pod-source -> mec-pod-target, both Podman): A2
under m2 and m3, one run each under n1, as a user runs it (`ansible-playbook -i inventories/podman/hosts.yml
playbooks/experiment.yml`). Each run's reset works with the hosts' engine (the mec_apps role's `podman run`), the
record is ok with A2's state kept (m3: its in-memory requestsOk goes on), and the report's table holds both.
Fails (never skips) without the Podman lab and its apps (scripts/test.sh brings both up). ~2-3 min."""

from __future__ import annotations

import json
import re

import pytest
from experiment_helpers import ROOT
from labutil import ansible_playbook
from mec_experiment.lab import lab_hosts
from mec_experiment.records import load_records
from mec_experiment.reset import reset

pytestmark = [pytest.mark.lab, pytest.mark.podman_lab]

POD_INVENTORY = ROOT / "inventories" / "podman" / "hosts.yml"


def test_a2_m2_and_m3_on_the_podman_lab_record_the_state_kept(tmp_path):
    if not POD_INVENTORY.exists():
        pytest.fail("the Podman lab is not up (no %s): ansible-playbook playbooks/lab.yml "
                    "-e @playbooks/vars/lab_podman.yml, then its playbooks/apps.yml" % POD_INVENTORY)
    hosts = lab_hosts(POD_INVENTORY)
    assert (hosts["source"]["engine"], hosts["target"]["engine"]) == ("podman", "podman"), hosts
    results = tmp_path / "results"
    try:
        proc = ansible_playbook(
            "-i", str(POD_INVENTORY), "playbooks/experiment.yml",
            "-e", json.dumps({"experiment_apps": ["a2"], "experiment_strategies": ["m2", "m3"],
                              "experiment_profiles": ["n1"], "experiment_repetitions": 1,
                              "experiment_results_dir": str(results)}),
            check=True, timeout=1200)
    finally:
        # the Podman lab as the other tests expect it: A2 back on the source, nothing of it on the target
        reset(POD_INVENTORY, hosts, "a2")
    progress = re.findall(r'"msg": "(a2 m[23] n1 #1: [^"]*)"', proc.stdout)
    assert len(progress) == 2, proc.stdout[-3000:]

    recs, skipped = load_records(results)
    assert skipped == [] and sorted(r["strategy"] for r in recs) == ["m2", "m3"]
    for rec in recs:
        exp = rec["experiment"]
        assert rec["status"] == "ok", (rec.get("error"), exp.get("stage_failed"))
        assert exp["state_after"]["passed"] is True, exp["state_after"]
        # the reset read and started the apps with Podman on both hosts, without the playbook
        assert exp["reset"]["engines"] == {"source": "podman", "target": "podman"}, exp["reset"]
        assert exp["reset"]["method"] == "app", exp["reset"]
        assert int(exp["state_before"]["counter"]) <= 2, exp["state_before"]
        assert rec["downtime"]["wall"] > 0 and rec["downtime"]["user"] > 0
    m3 = next(r for r in recs if r["strategy"] == "m3")
    assert "requestsOk" in m3["experiment"]["state_after"]["detail"], m3["experiment"]["state_after"]
    assert any(r["experiment"]["reset"]["playbook_seconds"] is None for r in recs)
