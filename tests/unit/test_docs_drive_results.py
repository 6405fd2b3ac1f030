"""tests/benchmarks/drive_results.py: finished drives' folders -> one results file, per mode and per pair."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "benchmarks"))

import drive_results  # noqa: E402


def drive(root, name, mode, started_at, local, after, counter=4, failed=0):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps({
        "mode": mode, "ue": "10.100.0.2", "strategy": "m2", "minutes": 5, "started_at": started_at,
        "served_locally": {"ratio": local, "after_first_handover": {"ratio": after}},
        "counter": {"a2": counter, "zones_entered": 4},
        "hops": {"handovers": 3, "migrations": 3, "migrations_failed": failed, "stagings_given_up": 0,
                 "rulebook_runs_failed_other": 0},
        "figures": {"handover_to_serving_s": {"median": 30.0 if mode == "reactive" else 0.5},
                    "ue_downtime_per_hop_s": {"median": 1.5}}}))
    return folder


LOG = """=== reactive start 21:20:01 load 1.50 1.20 1.00 2/300 1
=== reactive end 21:25:30 rc=0 load 2.50 1.80 1.10 2/300 1
=== ahead start 21:25:31 load 2.40 1.80 1.10 2/300 1
=== ahead end 21:31:00 rc=0 load 3.00 2.00 1.20 2/300 1
=== ahead start 21:31:01 load 2.00 2.00 1.20 2/300 1
=== ahead end 21:36:30 rc=0 load 1.00 1.50 1.20 2/300 1
=== reactive start 21:36:31 load 1.10 1.50 1.20 2/300 1
=== reactive end 21:42:00 rc=0 load 1.20 1.40 1.20 2/300 1
"""


COMMIT = None


@pytest.fixture
def drives(tmp_path):
    """Drives in a checkout of their own (a git repository), as the drives run from a clone."""
    global COMMIT
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True)
    (tmp_path / ".gitignore").write_text("drive-fair/\nout/\ndrives.log\n")
    subprocess.run(git + ["add", ".gitignore"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    COMMIT = subprocess.run(git + ["rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    root = tmp_path / "drive-fair"
    # given out of order: the file follows the drives' start times
    return [drive(root, "d3-ahead", "ahead", 1000.0 + 660, 0.90, 0.88),
            drive(root, "d1-reactive", "reactive", 1000.0, 0.60, 0.50),
            drive(root, "d4-reactive", "reactive", 1000.0 + 990, 0.70, 0.62, failed=1),
            drive(root, "d2-ahead", "ahead", 1000.0 + 330, 0.95, 0.94)]


def test_drives_become_one_results_file(tmp_path, drives, capsys):
    (tmp_path / "drives.log").write_text(LOG)
    drive_results.main(["--name", "drive-test", "--log", str(tmp_path / "drives.log"),
                        "--results-dir", str(tmp_path / "out"), *map(str, drives)])
    doc = json.loads((tmp_path / "out" / "drive-test.json").read_text())
    assert [r["drive"] for r in doc["runs"]] == ["d1-reactive", "d2-ahead", "d3-ahead", "d4-reactive"]
    assert [r["loadavg_before"][0] for r in doc["runs"]] == [1.5, 2.4, 2.0, 1.1]
    assert doc["loadavg_before"] == [1.5, 1.2, 1.0] and doc["loadavg_after"] == [1.2, 1.4, 1.2]
    s = doc["summary"]
    assert s["reactive"]["served_locally"] == pytest.approx({"median": 0.65, "min": 0.6, "max": 0.7, "n": 2})
    assert s["ahead"]["served_locally_after_first_handover"] == pytest.approx({"median": 0.91, "min": 0.88,
                                                                               "max": 0.94, "n": 2})
    assert s["reactive"]["drives_without_failed_hop"] == 1 and s["ahead"]["drives_without_failed_hop"] == 2
    assert [(p["reactive"], p["ahead"]) for p in s["pairs"]] == [("d1-reactive", "d2-ahead"),
                                                                 ("d4-reactive", "d3-ahead")]
    assert [round(p["served_locally_difference"], 2) for p in s["pairs"]] == [0.35, 0.2]
    assert doc["started_at"] == "1970-01-01T00:16:40+00:00"
    assert doc["commit"] == COMMIT and doc["dirty"] is False  # the drives' checkout, not this one
    assert "reactive: served locally median 65.0 % [60.0-70.0], n=2" in capsys.readouterr().out


def test_a_log_that_does_not_match_the_drives_stops(tmp_path, drives):
    (tmp_path / "drives.log").write_text(LOG.replace("=== ahead start 21:25:31", "=== reactive start 21:25:31")
                                         .replace("=== ahead end 21:31:00", "=== reactive end 21:31:00"))
    with pytest.raises(SystemExit, match="are not the folders'"):
        drive_results.main(["--name", "drive-test", "--log", str(tmp_path / "drives.log"),
                            "--results-dir", str(tmp_path / "out"), *map(str, drives)])
    assert not (tmp_path / "out").exists()


def test_the_script_runs_as_a_command(tmp_path, drives):
    p = subprocess.run([sys.executable, str(ROOT / "tests" / "benchmarks" / "drive_results.py"), "--name", "d",
                        "--results-dir", str(tmp_path / "out"), *map(str, drives)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "out" / "d.json").read_text())["summary"]["ahead"]["drives"] == 2


def test_drives_outside_a_checkout_are_refused(tmp_path):
    folder = drive(tmp_path / "nogit", "d1-reactive", "reactive", 1000.0, 0.6, 0.5)
    with pytest.raises(SystemExit, match="no git checkout"):
        drive_results.main(["--name", "d", "--results-dir", str(tmp_path / "out"), str(folder)])
