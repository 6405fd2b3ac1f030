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
    assert result["decided_by"] == str(path)
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
    assert exc.value.result["outcome"] == "timeout" and exc.value.result["decided_by"] is None
    assert 0.3 <= time.monotonic() - start < 5
    assert "did not open within 0.3 s" in exc.value.result["msg"]
    assert exc.value.result["content"] == _state("zone01"), "after a timeout: the main file's last content"


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

    watched = [relocation_gate.Watched("/nonexistent-mec-dir/ue.json", re.compile("x")),
               relocation_gate.Watched("/nonexistent-mec-dir/ue.approach.json", None, re.compile("y"))]
    outcome, waited, decider, content = relocation_gate.wait_gate(watched, timeout=1.0, interval=0.25, clock=clock,
                                                                  sleep=sleep)
    assert outcome == "timeout" and waited >= 1.0 and decider is None and content is None
    assert reads and all(0 <= s <= 0.25 for s in reads)


# watch: further files, each with its own expressions (follow.yml's ahead mode: the UE's zone state file and the
# predictor's <ue>.approach.json; both have a key "seq" that means different things)

GATE = {"open": '"zone": "zone02"', "abandon": '"zone": "(?!zone01"|zone02")', "timeout": 10}


def _approach(to_zone, seq, relocate_seq=None):
    data = {"ue": "10.100.0.1", "from_zone": "zone01", "to_zone": to_zone, "seq": seq}
    if relocate_seq is not None:
        data["relocate_seq"] = relocate_seq
    return json.dumps(data)


def _files(tmp_path, state, approach=None):
    main, watched = tmp_path / "ue.json", tmp_path / "ue.approach.json"
    main.write_text(state)
    if approach is not None:
        watched.write_text(approach)
    return main, watched


def _watch(path, **patterns):
    return dict({"path": str(path)}, **patterns)


def test_a_watched_file_opens_the_gate_while_the_main_file_does_not(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone01"), _approach("zone02", 7))
    _write_later(approach, _approach("zone02", 7, relocate_seq=7), 0.3)
    before = time.time()
    result = run_module(relocation_gate, dict(GATE, path=str(main), watch=[
        _watch(approach, open=r'"relocate_seq": 7\b', abandon='"to_zone": "(?!zone02")')]))
    assert result["outcome"] == "open" and 0.25 <= result["waited"] < 5
    assert result["opened_at"] >= before + 0.25
    assert result["decided_by"] == str(approach)
    assert result["content"] == _approach("zone02", 7, relocate_seq=7), "the content of the file that decided"


def test_a_missing_watched_file_is_not_open_yet(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone01"))
    _write_later(approach, _approach("zone02", 2, relocate_seq=2), 0.2)
    result = run_module(relocation_gate, dict(GATE, path=str(main), watch=[_watch(approach, open="relocate_seq")]))
    assert result["outcome"] == "open" and result["waited"] >= 0.15 and result["decided_by"] == str(approach)


def test_abandon_in_a_watched_file_wins_over_open_in_the_main_file(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone02"), _approach("zone03", 8))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, dict(GATE, path=str(main), watch=[
            _watch(approach, open='"relocate_seq": 7', abandon='"to_zone": "(?!zone02")')]))
    res = exc.value.result
    assert res["outcome"] == "abandoned" and res["decided_by"] == str(approach)
    assert res["content"] == _approach("zone03", 8)
    assert ("%s on " % approach) in res["msg"] and """abandon='"to_zone": "(?!zone02")'""" in res["msg"]
    assert "rolled back" in res["msg"]


def test_abandon_in_the_main_file_wins_over_open_in_a_watched_file(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone03"), _approach("zone02", 7, relocate_seq=7))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, dict(GATE, path=str(main), watch=[_watch(approach, open='"relocate_seq": 7')]))
    res = exc.value.result
    assert res["outcome"] == "abandoned" and res["decided_by"] == str(main)
    assert ("%s on " % main) in res["msg"]


def test_an_abandon_only_watch_entry_abandons_a_later_poll(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone01"), _approach("zone02", 1))
    _write_later(approach, _approach("zone04", 2), 0.3)
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, dict(GATE, path=str(main), watch=[
            _watch(approach, abandon='"to_zone": "(?!zone02")')]))
    res = exc.value.result
    assert res["outcome"] == "abandoned" and res["waited"] >= 0.25 and res["decided_by"] == str(approach)


def test_each_files_expressions_apply_to_that_file_only(run_module, tmp_path):
    # both files have "seq": the main file's abandon names the approach file's seq and the watch entry's open names
    # the main file's seq; applied across files, the gate would abandon (or open) at once
    main, approach = _files(tmp_path, json.dumps({"ue": "10.100.0.1", "zone": "zone01", "seq": 9}),
                            _approach("zone02", 3))
    _write_later(approach, _approach("zone02", 9), 0.4)
    result = run_module(relocation_gate, {"path": str(main), "open": '"zone": "zone02"', "abandon": r'"seq": 3\b',
                                          "timeout": 10, "watch": [_watch(approach, open=r'"seq": 9\b')]})
    assert result["outcome"] == "open" and result["waited"] >= 0.35
    assert result["decided_by"] == str(approach)


def test_the_first_file_that_opens_decides(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone02"), _approach("zone02", 7, relocate_seq=7))
    result = run_module(relocation_gate, dict(GATE, path=str(main), watch=[_watch(approach, open="relocate_seq")]))
    assert result["outcome"] == "open" and result["decided_by"] == str(main)
    main.write_text(_state("zone01"))
    other = tmp_path / "other.json"
    other.write_text("go")
    result = run_module(relocation_gate, dict(GATE, path=str(main), watch=[
        _watch(approach, open="relocate_seq"), _watch(other, open="go")]))
    assert result["decided_by"] == str(approach)


def test_a_timeout_names_every_files_open(run_module, tmp_path):
    main, approach = _files(tmp_path, _state("zone01"), _approach("zone02", 1))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, {"path": str(main), "open": "zone02x", "timeout": 0.2, "watch": [
            _watch(approach, open="relocate_seq"), _watch(tmp_path / "x.json", abandon="stop")]})
    res = exc.value.result
    assert res["outcome"] == "timeout" and res["decided_by"] is None
    assert "%s (open='zone02x')" % main in res["msg"] and "%s (open='relocate_seq')" % approach in res["msg"]
    assert "x.json" not in res["msg"], "an abandon-only entry has no open to name"


def test_bad_watch_entries_are_refused_together_before_waiting(run_module, tmp_path):
    params = dict(GATE, path=str(tmp_path / "ue.json"), timeout=600, watch=[
        _watch(tmp_path / "fine.json", open="ok"),
        {"path": "relative/ue.approach.json", "open": "x"},
        _watch("/nonexistent-mec-dir/ue.approach.json", abandon="x"),
        _watch(tmp_path / "a.json", open="(", abandon="[b"),
        _watch(tmp_path / "b.json"),
        _watch(tmp_path / "c.json", open=""),
    ])
    start = time.monotonic()
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, params)
    assert time.monotonic() - start < 2
    res = exc.value.result
    assert res["outcome"] == "bad_input" and res["decided_by"] is None
    msg = res["msg"]
    assert "nothing was changed" in msg
    assert "watch[1].path=relative/ue.approach.json must be absolute" in msg
    assert "the folder of watch[2].path=/nonexistent-mec-dir/ue.approach.json does not exist" in msg
    assert "watch[3].open='(' is not a regular expression" in msg
    assert "watch[3].abandon='[b' is not a regular expression" in msg
    assert "watch[4] (path=%s) needs open, abandon or both" % (tmp_path / "b.json") in msg
    assert "watch[5].open must not be empty" in msg
    assert "watch[0]" not in msg, "a good entry is not named"
    assert msg.count("; ") == 5, "six problems, each named once: %s" % msg


def test_a_watch_entry_without_path_is_refused(run_module, tmp_path):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, dict(GATE, path=str(tmp_path / "ue.json"), watch=[{"open": "x"}]))
    assert "path" in exc.value.result["msg"] and "watch" in exc.value.result["msg"]


def test_check_only_checks_watch_entries_and_returns_at_once(run_module, tmp_path):
    result = run_module(relocation_gate, dict(GATE, path=str(tmp_path / "ue.json"), check_only=True, timeout=600,
                                              watch=[_watch(tmp_path / "ue.approach.json", open="relocate_seq")]))
    assert result["outcome"] == "checked" and result["decided_by"] is None
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, dict(GATE, path=str(tmp_path / "ue.json"), check_only=True,
                                         watch=[_watch("ue.approach.json", open="relocate_seq")]))
    assert "watch[0].path=ue.approach.json must be absolute" in exc.value.result["msg"]


def test_wait_false_looks_once_pending_open_or_abandoned(run_module, tmp_path):
    """wait=false (migrate.yml's looks during a staging): one read of every file, no waiting; neither expression
    matching is 'pending' (no opened_at: nothing opened), an open match is 'open' without waiting for anything,
    an abandon match fails at once as the waiting gate would."""
    main, approach = _files(tmp_path, _state("zone01"), _approach("zone02", 3))
    watch = [_watch(approach, open='"relocate_to": "zone02"', abandon='"to_zone": "(?!zone02")')]
    args = dict(GATE, path=str(main), watch=watch, wait=False, timeout=60)
    started = time.monotonic()
    pending = run_module(relocation_gate, args)
    assert pending["outcome"] == "pending" and "opened_at" not in pending and pending["decided_by"] is None
    assert time.monotonic() - started < 5  # a waiting gate would sit out its 60 s timeout
    main.write_text(_state("zone02"))
    opened = run_module(relocation_gate, args)
    assert opened["outcome"] == "open" and opened["decided_by"] == str(main) and "opened_at" not in opened
    approach.write_text(_approach("zone04", 4))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(relocation_gate, args)
    res = exc.value.result
    assert res["outcome"] == "abandoned" and res["decided_by"] == str(approach) and "rolled back" in res["msg"]
