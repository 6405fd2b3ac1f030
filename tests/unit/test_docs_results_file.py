"""tests/benchmarks/results_file.py: what a benchmark writes into benchmarks/results/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

import results_file  # noqa: E402


def test_summarize_median_min_max_n():
    assert results_file.summarize([3.0, 1.0, 2.0, 10.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    assert results_file.summarize([5]) == {"median": 5, "min": 5, "max": 5, "n": 1}
    assert results_file.summarize([]) == {"median": None, "min": None, "max": None, "n": 0}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1.2", None, True])
def test_summarize_refuses_what_is_not_a_number(bad):
    with pytest.raises(ValueError, match="not a finite number"):
        results_file.summarize([1.0, bad])


def test_write_results_records_the_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench.py", "--runs", "3"])
    started = results_file.start()
    path = results_file.write_results("unit-bench", [1.0, 2.0, 4.0], {"t_s": results_file.summarize([1.0, 2.0, 4.0])},
                                      extra={"size": 160}, results_dir=tmp_path)
    assert path == tmp_path / "unit-bench.json"
    doc = json.loads(path.read_text())
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert doc["name"] == "unit-bench"
    assert doc["command"] == ["bench.py", "--runs", "3"]
    assert doc["commit"] == head and len(head) == 40
    assert isinstance(doc["dirty"], bool) and doc["dirty"] == bool(doc["dirty_paths"])
    assert doc["cores"] == os.cpu_count()
    assert doc["loadavg_before"] == started["loadavg_before"] and len(doc["loadavg_after"]) == 3
    assert doc["started_at"] == started["started_at"] and doc["finished_at"] >= doc["started_at"]
    assert doc["runs"] == [1.0, 2.0, 4.0]
    assert doc["summary"] == {"t_s": {"median": 2.0, "min": 1.0, "max": 4.0, "n": 3}}
    assert doc["extra"] == {"size": 160}
    assert [p.name for p in tmp_path.iterdir()] == ["unit-bench.json"]  # no temporary file left behind
    assert results_file.load_results("unit-bench", results_dir=tmp_path) == doc


def test_dirty_names_the_changed_tracked_file(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (repo / "a.txt").write_text("1")
    subprocess.run(git + ["add", "a.txt"], check=True)
    subprocess.run(git + ["commit", "-qm", "a"], check=True)
    monkeypatch.setattr(results_file, "ROOT", repo)
    commit, dirty, paths = results_file.git_state()
    assert len(commit) == 40 and dirty is False and paths == []
    (repo / "a.txt").write_text("2")
    assert results_file.git_state() == (commit, True, ["a.txt"])


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "UPPER", ".hidden"])
def test_write_results_refuses_a_name_that_is_not_a_plain_file_name(tmp_path, name):
    with pytest.raises(ValueError, match="must match"):
        results_file.write_results(name, [], {}, results_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_write_results_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        results_file.write_results("nan-bench", [float("nan")], {}, results_dir=tmp_path)


def test_benchmarks_results_is_committed_not_ignored():
    """results/ of runs stays ignored; benchmarks/results/ (the evidence) is not."""
    p = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "benchmarks/results/x.json"])
    assert p.returncode == 1, "benchmarks/results/ is ignored by .gitignore: the evidence would not be committed"
    p = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "results/x.json"])
    assert p.returncode == 0, "results/ (local run records) is no longer ignored"


def test_measured_elsewhere_keeps_the_measurement_s_own_setting(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["drive_results.py", "d1"])
    measured = {"command": ["drives.sh"], "commit": "a" * 40, "dirty": False, "started_at": "2026-01-06T21:20:00+00:00",
                "finished_at": "2026-01-06T22:05:00+00:00", "loadavg_before": [1.0, 1.1, 1.2],
                "loadavg_after": [2.0, 2.1, 2.2]}
    doc = json.loads(results_file.write_results("drives", [1], {}, results_dir=tmp_path, measured=measured).read_text())
    for key, value in measured.items():
        assert doc[key] == value
    assert doc["assembled_by"] == ["drive_results.py", "d1"] and doc["assembled_at"] >= doc["started_at"]
    with pytest.raises(ValueError, match="not runs"):
        results_file.write_results("drives", [1], {}, results_dir=tmp_path, measured={"runs": []})
