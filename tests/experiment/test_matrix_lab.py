"""A small matrix on a lab (MEC_EXPERIMENT_INVENTORY, default inventories/local/hosts.yml): one app, two
strategies, one run each under n1. It must write one record per run and the CSV, print one progress line
per run, skip both runs when run again, and give a report whose figures exist and whose tables match
the records. MEC_EXPERIMENT_APPS_VARS (JSON) passes extra vars to playbooks/apps.yml (e.g. a second lab's
sandbox)."""

from __future__ import annotations

import csv
import json
import os
import re

import pytest
from experiment_helpers import LAB_INVENTORY
from labutil import ansible_playbook
from mec_experiment.records import load_records
from mec_report import analysis
from mec_report.__main__ import main as report_main

pytestmark = pytest.mark.lab


def experiment(results):
    args = ["-i", str(LAB_INVENTORY), "playbooks/experiment.yml",
            "-e", '{"experiment_apps": ["a2"], "experiment_strategies": ["m1", "m2"], "experiment_profiles": ["n1"]}',
            "-e", "experiment_repetitions=1", "-e", "experiment_results_dir=%s" % results]
    if os.environ.get("MEC_EXPERIMENT_APPS_VARS"):
        args += ["-e", json.dumps({"experiment_apps_extra_vars": json.loads(os.environ["MEC_EXPERIMENT_APPS_VARS"])})]
    return ansible_playbook(*args, check=True, timeout=1800)


def test_small_matrix_records_csv_report_and_resume(tmp_path, experiment_lab):
    results = tmp_path / "results"
    proc = experiment(results)
    progress = re.findall(r'"msg": "(a2 m[12] n1 #1: [^"]*)"', proc.stdout)
    assert len(progress) == 2, proc.stdout[-3000:]

    recs, skipped = load_records(results)
    assert skipped == []
    assert sorted((r["app"], r["strategy"], r["network"], r["experiment"]["rep"]) for r in recs) == [
        ("a2", "m1", "n1", 1), ("a2", "m2", "n1", 1)]
    network = json.loads((results / "network-n1.json").read_text())
    assert network["profile"] == "n1" and float(network["mbit_s"]) <= 1100
    for rec in recs:
        line = next(p for p in progress if p.startswith("a2 %s" % rec["strategy"]))
        # A2 keeps its counter with m1 (the volume is sent) and m2: both runs must pass, state kept
        assert rec["status"] == "ok", (rec.get("error"), rec["experiment"].get("stage_failed"))
        assert ": ok in " in line and line.endswith("state kept)"), line
        assert rec["transfer"] == "stream" and rec["outcome"] == "migrated"
        assert rec["experiment"]["network_measured"]["profile"] == "n1"
        assert rec["downtime"]["wall"] > 0 and rec["downtime"]["user"] > 0
        assert rec["experiment"]["state_after"]["passed"] is True, rec["experiment"]["state_after"]
        # the reset touched a2 only, without playbooks/apps.yml, and started it anew
        reset = rec["experiment"]["reset"]
        assert reset["method"] == "app" and reset["seconds"] < 30, reset
        assert int(rec["experiment"]["state_before"]["counter"]) <= 2, rec["experiment"]["state_before"]
    assert any(r["experiment"]["reset"]["playbook_seconds"] is None for r in recs)

    rows = list(csv.DictReader((results / "results.csv").open()))
    assert sorted((r["strategy"], r["status"], r["downtime_wall"]) for r in rows) == sorted(
        (r["strategy"], r["status"], "" if r["downtime"]["wall"] is None else str(r["downtime"]["wall"]))
        for r in recs)

    again = experiment(results)
    # each run was recorded at its first attempt (a retried run would say its attempt number)
    already = re.findall(r"already recorded \((ok|failed), attempt 1\), skipped", again.stdout)
    assert len(already) == 2, again.stdout[-3000:]

    assert report_main([str(results), "--stay-duration", "600"]) == 0
    page = (results / "report" / "report.md").read_text()
    for fig in ("fig_8_1_image_sizes.png", "fig_8_3_pre_source.png", "fig_8_11_downtime.png",
                "fig_8_11b_user_downtime.png"):
        assert (results / "report" / fig).stat().st_size > 1000
        assert "](%s)" % fig in page
    table = analysis.table_81(recs)
    for strategy in ("m1", "m2"):
        cell = table[("a2", strategy)]
        assert cell["text"] in page
        rec = next(r for r in recs if r["strategy"] == strategy)
        assert cell["viable"] is True and cell["text"].endswith(" 1/1"), cell
        assert rec["experiment"]["cell"] == "a2 %s n1 #1" % strategy
