"""The time-available-for-migration analysis: table, CSV and histogram from a short simulation."""

import csv
import itertools
import os
import subprocess
import sys

from mec_sandbox.time_available import analyse, summarise
from sandbox_helpers import APPS


def test_cli_writes_table_csv_and_png(tmp_path):
    out = tmp_path / "ta"
    run = subprocess.run([sys.executable, "-m", "mec_sandbox.time_available", "--placement", "per-ap",
                          "--placement", "per-zone", "--duration", "600", "--out", str(out)],
                         env=dict(os.environ, PYTHONPATH=APPS), capture_output=True, text=True, check=False,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    with open(out / "time_available.png", "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(out / "time_available.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["placement"] for r in rows} == {"per-ap", "per-zone"}
    for r in rows:
        assert abs(float(r["duration_s"]) - (float(r["end_s"]) - float(r["start_s"]))) < 0.011
        assert float(r["duration_s"]) > 0
    # The table's figures are those of the stays in the CSV (durations there have 2 decimals), each row under its
    # own header, and the seed's figures sit in the row of their placement.
    table = _table((out / "time_available.md").read_text())
    assert [row["placement"] for row in table] == ["per-ap", "per-zone"]
    for row in table:
        stays = sorted(float(r["duration_s"]) for r in rows if r["placement"] == row["placement"])
        assert int(row["stays"]) == len(stays) > 0
        assert abs(float(row["average (s)"]) - sum(stays) / len(stays)) < 0.01
        assert abs(float(row["shortest (s)"]) - stays[0]) < 0.01 and abs(float(row["longest (s)"]) - stays[-1]) < 0.01
    assert [(r["MEC hosts"], r["seed average (s)"], r["seed shortest (s)"]) for r in table] == [
        ("41", "12.301", "1.037"), ("4", "53.151", "1.854")]


def _table(markdown):
    """The rows of the Markdown table in ``markdown`` as dicts keyed by its header."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return [dict(zip(cells[0], row)) for row in cells[2:]]


def test_stays_partition_each_trip_between_host_changes():
    results, meta = analyse(None, ["per-ap", "per-zone", "coverage"], 900.0, 0.1,
                            coverage="mep1:zone01:zone02:zone03/mep2:zone04")
    ap, zone = summarise(results["per-ap"]), summarise(results["per-zone"])
    # a zone holds several access points, so stays per zone are fewer and longer
    assert zone["count"] < ap["count"] and zone["mean"] > ap["mean"]
    assert ap["min"] <= ap["median"] <= ap["max"]
    for stays in results.values():
        by_ue = {}
        for s in stays:
            by_ue.setdefault(s.ue, []).append(s)
        for seq in by_ue.values():
            for a, b in itertools.pairwise(seq):
                assert a.end <= b.start + 1e-9  # stays never overlap
                if abs(a.end - b.start) < 1e-9:
                    assert a.host != b.host  # back-to-back stays are with different hosts
            assert all(0 < s.start < s.end < 900.0 for s in seq)
    # coverage: two hosts, so a UE keeps one host across zones 1 to 3
    assert summarise(results["coverage"])["mean"] > zone["mean"]
    assert meta["hosts"] == {"per-ap": 41, "per-zone": 4, "coverage": 2}


def test_bad_scenario_is_reported_by_the_cli(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mec_sandbox.time_available", "--scenario",
                          str(tmp_path / "missing.json"), "--out", str(tmp_path)],
                         env=dict(os.environ, PYTHONPATH=APPS), capture_output=True, text=True, check=False, timeout=60)
    assert run.returncode == 2 and "missing.json" in run.stderr and "cannot read file" in run.stderr
