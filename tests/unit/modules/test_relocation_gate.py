"""mec.migration.relocation_gate: waits on a real file (written by a thread), refuses bad input before waiting."""

import json
import re
import threading
import time

import pytest

from ansible_collections.mec.migration.plugins.modules import relocation_gate
from .conftest import AnsibleFailJson


def _write_later(path, content, delay):
    def write():
        time.sleep(delay)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(content)
        tmp.replace(path)  # as the event source writes its state file: atomically
    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _state(zone):
    return json.dumps({"ue": "10.100.0.1", "zone": zone, "seq": 3})


def test_opens_when_the_file_matches(run_module, tmp_path):
    path = tmp_path / "ue.json"
    path.write_text(_state("zone01"))
    _write_later(path, _state("zone02"), 0.3)
    before = time.time()
    result = run_module(relocation_gate, {"path": str(path), "open": '"zone": "zone02"',
                                          "abandon": '"zone": "(?!zone01"|zone02")', "timeout": 10})
    assert result["outcome"] == "open"
    assert 0.25 <= result["waited"] < 5
    assert result["opened_at"] >= before + 0.25
    assert '"zone02"' in result["content"]
    assert result["changed"] is False


def test_a_missing_file_is_not_open_yet(run_module, tmp_path):
    path = tmp_path / "ue.json"
    _write_later(path, _state("zone02"), 0.2)
    result = run_module(relocation_gate, {"path": str(path), "open": "zone02", "timeout": 10})
    assert result["outcome"] == "open" and result["waited"] >= 0.15


def test_abandon_fails_and_says_the_migration_rolls_back(run_module, tmp_path):
    path = tmp_path / "ue.json"
    path.write_text(_state("zone01"))
    _write_later(path, _state("zone03"), 0.2)
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, {"path": str(path), "open": '"zone": "zone02"',
                                     "abandon": '"zone": "(?!zone01"|zone02")', "timeout": 10})
    res = exc.value.result
    assert res["outcome"] == "abandoned" and res["waited"] >= 0.15
    assert "abandoned" in res["msg"] and "rolled back" in res["msg"] and str(path) in res["msg"]


def test_abandon_wins_over_open(run_module, tmp_path):
    path = tmp_path / "ue.json"
    path.write_text("zone02 zone03")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, {"path": str(path), "open": "zone02", "abandon": "zone03", "timeout": 5})
    assert exc.value.result["outcome"] == "abandoned"


def test_timeout_fails(run_module, tmp_path):
    path = tmp_path / "ue.json"
    path.write_text(_state("zone01"))
    start = time.monotonic()
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, {"path": str(path), "open": "zone02", "timeout": 0.3, "interval": 0.05})
    assert exc.value.result["outcome"] == "timeout"
    assert 0.3 <= time.monotonic() - start < 5
    assert "did not open within 0.3 s" in exc.value.result["msg"]


@pytest.mark.parametrize("args, words", [
    ({"open": "("}, "open='(' is not a regular expression"),
    ({"open": "x", "abandon": "[a"}, "abandon='[a' is not a regular expression"),
    ({"open": ""}, "open must not be empty"),
    ({"open": "x", "timeout": 0}, "timeout=0.0 must be more than 0"),
    ({"open": "x", "path": "relative/ue.json"}, "must be absolute"),
    ({"open": "x", "path": "/nonexistent-mec-dir/ue.json"}, "does not exist"),
])
def test_bad_input_is_refused_before_waiting(run_module, tmp_path, args, words):
    params = dict({"path": str(tmp_path / "ue.json"), "timeout": 600}, **args)
    start = time.monotonic()
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, params)
    assert time.monotonic() - start < 2
    assert words in exc.value.result["msg"] and "nothing was changed" in exc.value.result["msg"]


def test_check_only_returns_at_once(run_module, tmp_path):
    result = run_module(relocation_gate, {"path": str(tmp_path / "ue.json"), "open": "x", "check_only": True,
                                          "timeout": 600})
    assert result["outcome"] == "checked" and result["waited"] == 0.0


def test_wait_gate_polls_at_the_interval():
    reads = []
    ticks = iter(range(100))

    def clock():
        return next(ticks) * 0.1

    def sleep(seconds):
        reads.append(seconds)

    outcome, waited, _ = relocation_gate.wait_gate("/nonexistent-mec-dir/ue.json", re.compile("x"), None,
                                                   timeout=1.0, interval=0.25, clock=clock, sleep=sleep)
    assert outcome == "timeout" and waited >= 1.0
    assert reads and all(0 <= s <= 0.25 for s in reads)
