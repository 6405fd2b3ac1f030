"""migration_record: builds, checks and writes the run's record on the controller."""
import json
import os

import pytest

from ansible_collections.mec.migration.plugins.modules import migration_record
from .conftest import AnsibleFailJson

SOURCE = {"host": "mec-lab-source", "address": "172.30.77.11"}
TARGET = {"host": "mec-lab-target", "address": "172.30.77.12"}


def args(results_dir, **over):
    a = {"results_dir": str(results_dir), "status": "ok", "outcome": "migrated", "run_id": "r1", "app": "a2",
         "strategy": "m2", "network": "n1", "source": SOURCE, "target": TARGET, "started_at": 10.0,
         "steps": {"commit": {"changed": True, "duration": 0.1, "size": 2000}, "export": {"skipped": True},
                   "save": {"changed": True, "duration": 1.0, "size": 3000}},
         "relocation": {"source": {"stopped_at": 20.0, "durations": {"stop": 0.25, "transfer": 0.125},
                                   "source_duration": 0.25, "transfer_duration": 0.125, "sizes": {"volume": 12}},
                        "target": {"running_at": 20.5, "durations": {"wait": 0.2, "start": 0.0625},
                                   "target_duration": 0.0625}}}
    a.update(over)
    return a


def test_writes_the_record_and_returns_it(run_module, tmp_path):
    res = run_module(migration_record, args(tmp_path / "results"))
    path = tmp_path / "results" / "r1-a2-m2-n1.json"
    assert res["changed"] is True and res["path"] == str(path)
    written = json.loads(path.read_text())
    assert written == res["record"]
    assert written["downtime"]["wall"] == 0.5 and written["downtime"]["operations_sum"] == 0.4375
    assert written["sizes"]["image"] == 2000 and written["sizes"]["tarball"] == 3000
    assert written["durations"]["pre_relocation"]["source"]["export"] is None
    assert written["timestamps"]["started_at"] == 10.0 and written["timestamps"]["finished_at"] > 10.0
    assert res["msg"] == "ok: downtime wall 0.5 s, operations 0.4375 s; record %s" % path
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"


def test_preflight_failure_writes_a_record_without_figures(run_module, tmp_path):
    res = run_module(migration_record, args(tmp_path, status="failed", outcome="unchanged", phase="preflight",
                                            error="preflight: no space", steps={}, relocation={}))
    rec = res["record"]
    assert rec["status"] == "failed" and rec["phase"] == "preflight" and rec["error"] == "preflight: no space"
    assert rec["downtime"]["wall"] is None and rec["downtime"]["operations_sum"] is None
    assert res["msg"].startswith("failed: downtime wall n/a s, operations n/a s; record ")


def test_check_mode_writes_nothing(run_module, tmp_path):
    res = run_module(migration_record, dict(args(tmp_path / "results"), _ansible_check_mode=True))
    assert res["changed"] is True and res["record"]["status"] == "ok"
    assert not (tmp_path / "results").exists()


def test_bad_status_is_refused_before_writing(run_module, tmp_path):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_record, args(tmp_path, status="maybe"))
    assert "status" in exc.value.result["msg"] and "maybe" in exc.value.result["msg"]
    assert os.listdir(tmp_path) == []


def test_unknown_step_is_refused(run_module, tmp_path):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_record, args(tmp_path, steps={"comit": {"duration": 1.0}}))
    assert "comit" in exc.value.result["msg"]


def test_a_record_that_does_not_fit_the_schema_is_not_written(run_module, tmp_path):
    """A relocation result with a duration that is no number ends as null, but a text where the schema wants a
    list (a bug in the inputs) stops the module before it writes."""
    a = args(tmp_path)
    a["relocation"]["source"]["durations"]["stop"] = "n/a"
    assert run_module(migration_record, a)["record"]["durations"]["relocation"]["source"]["stop"] is None
    os.unlink(tmp_path / "r1-a2-m2-n1.json")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_record, args(tmp_path, rollback={"running": True, "method": ["start"]}))
    assert "does not fit mec.migration/record/v1" in exc.value.result["msg"]
    assert "rollback.method" in exc.value.result["msg"]
    assert os.listdir(tmp_path) == []


def test_unwritable_results_dir_says_what_to_do(run_module, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file, not a directory")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_record, args(blocker))
    msg = exc.value.result["msg"]
    assert "Cannot write the record" in msg and "results_dir" in msg and str(blocker) in msg
