"""The matrix benchmark's time target (tests/benchmarks/experiment_matrix.py): met only when every cell migrated
at its first attempt, in time."""

from __future__ import annotations

import sys
from pathlib import Path

from experiment_helpers import synthetic_record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import experiment_matrix  # noqa: E402


def _matrix(status=lambda app, strategy, network: "ok"):
    recs = []
    for app in ("a1", "a2", "a3"):
        for strategy in ("m1", "m2", "m3"):
            for network in ("n1", "n2"):
                recs.append(synthetic_record(app, strategy, network, 1, status=status(app, strategy, network)))
    return recs


def test_every_cell_migrated_in_time_meets_the_target():
    assert experiment_matrix.time_target(_matrix(), 890.0, 1) == (True, "")


def test_a_failed_cell_misses_the_target_however_fast():
    recs = _matrix(lambda a, s, n: "failed" if (a, s, n) == ("a3", "m1", "n2") else "ok")
    assert experiment_matrix.time_target(recs, 600.0, 1) == (False, "17 of 18 runs migrated at their first attempt")


def test_a_cell_ok_only_after_a_retry_misses_the_target():
    recs = _matrix(lambda a, s, n: "failed" if (a, s, n) == ("a2", "m3", "n1") else "ok")
    retry = synthetic_record("a2", "m3", "n1", 1)
    retry["experiment"]["attempt"] = 2
    assert experiment_matrix.time_target(recs + [retry], 600.0, 1) == (
        False, "17 of 18 runs migrated at their first attempt")


def test_missing_cells_and_time_are_both_named():
    assert experiment_matrix.time_target(_matrix()[:10], 1000.0, 1) == (
        False, "10 of 18 runs recorded; 10 of 18 runs migrated at their first attempt; 16.7 min > 15 min")
