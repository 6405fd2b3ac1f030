"""migration_journal: the run's journal and the app's lock on a host (real files under tmp_path)."""
import json

import pytest

from ansible_collections.mec.migration.plugins.module_utils import journal as jr
from ansible_collections.mec.migration.plugins.modules import migration_journal
from .conftest import AnsibleFailJson


def _run(run_module, root, **args):
    args.setdefault("app", "app1")
    args["root"] = str(root)
    return run_module(migration_journal, args)


def test_begin_takes_the_lock_and_writes_the_journal(run_module, tmp_path):
    res = _run(run_module, tmp_path, action="begin", run_id="r1",
               data={"role": "source", "restart_policy": {"Name": "always"}}, changes={"workdir": "/w/r1"})
    assert res["changed"] is True
    lock = json.loads((tmp_path / "locks" / "app1.lock").read_text())
    assert (lock["run_id"], lock["app"]) == ("r1", "app1") and lock["started_at"] > 0
    journal = json.loads((tmp_path / "runs" / "r1.json").read_text())
    assert journal["phase"] == "preflight" and journal["role"] == "source"
    assert journal["restart_policy"] == {"Name": "always"} and journal["changes"] == {"workdir": "/w/r1"}
    assert not list((tmp_path / "runs").glob("*.tmp.*"))  # the atomic write left no temporary file


def test_a_second_run_of_the_same_app_is_refused_naming_the_first(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1")
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, action="begin", run_id="r2")
    msg = exc.value.result["msg"]
    assert "app1 is being migrated by run r1" in msg and "playbooks/recover.yml -e app=app1" in msg
    assert not (tmp_path / "runs" / "r2.json").exists()
    assert json.loads((tmp_path / "locks" / "app1.lock").read_text())["run_id"] == "r1"


def test_begin_again_by_the_holder_changes_nothing(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1")
    assert _run(run_module, tmp_path, action="begin", run_id="r1")["changed"] is False


def test_a_reused_run_id_is_refused(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1")
    _run(run_module, tmp_path, action="finish", run_id="r1", outcome="done")
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, action="begin", run_id="r1")
    assert "The run id r1 was used before" in exc.value.result["msg"]
    assert not (tmp_path / "locks" / "app1.lock").exists()


def test_an_existing_artifact_refuses_the_run_id(run_module, tmp_path):
    work = tmp_path / "work" / "r9"
    work.mkdir(parents=True)
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, action="begin", run_id="r9", artifacts=[str(work)])
    assert "%s exists" % work in exc.value.result["msg"]
    assert not (tmp_path / "locks" / "app1.lock").exists()


@pytest.mark.parametrize("field,value", [("run_id", "../etc"), ("run_id", "a/b"), ("app", "x y"), ("run_id", "")])
def test_bad_names_are_refused(run_module, tmp_path, field, value):
    args = dict(action="begin", run_id="r1")
    args[field] = value
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, **args)
    assert "Bad %s" % field in exc.value.result["msg"] or "needs run_id" in exc.value.result["msg"]
    assert not (tmp_path / "locks").exists()


def test_update_records_phases_and_changes(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1", changes={"workdir": "/w"})
    _run(run_module, tmp_path, action="update", run_id="r1", phase="relocation", changes={"container_id": "c1"})
    journal = json.loads((tmp_path / "runs" / "r1.json").read_text())
    assert journal["phase"] == "relocation"
    assert journal["changes"] == {"workdir": "/w", "container_id": "c1"}
    assert [s["phase"] for s in journal["steps"]] == ["preflight", "relocation"]


def test_update_without_a_journal_fails(run_module, tmp_path):
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, action="update", run_id="r1", phase="relocation")
    assert "has no journal here" in exc.value.result["msg"]


def test_finish_closes_the_run_and_releases_the_lock_once(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1")
    res = _run(run_module, tmp_path, action="finish", run_id="r1", outcome="rolled_back")
    assert (res["changed"], res["released"]) == (True, True)
    assert res["journal"]["phase"] == "rolled_back" and res["journal"]["outcome"] == "rolled_back"
    assert not (tmp_path / "locks" / "app1.lock").exists()
    again = _run(run_module, tmp_path, action="finish", run_id="r1", outcome="rolled_back")
    assert (again["changed"], again["released"]) == (False, False)


def test_release_leaves_another_runs_lock(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1")
    res = _run(run_module, tmp_path, action="release", run_id="r2")
    assert (res["changed"], res["released"]) == (False, False)
    assert (tmp_path / "locks" / "app1.lock").exists()


def test_read_lists_unfinished_runs_and_the_lock(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1")
    _run(run_module, tmp_path, action="finish", run_id="r1", outcome="done")
    _run(run_module, tmp_path, action="begin", run_id="r2")
    _run(run_module, tmp_path, app="other", action="begin", run_id="r3")
    res = _run(run_module, tmp_path, action="read")
    assert res["changed"] is False
    assert [j["run_id"] for j in res["journals"]] == ["r1", "r2"]
    assert [j["run_id"] for j in res["unfinished"]] == ["r2"]
    assert res["lock"]["run_id"] == "r2"


def test_read_with_the_work_root_refuses_a_journal_that_names_what_its_run_did_not_make(run_module, tmp_path):
    work = tmp_path / "work"
    _run(run_module, tmp_path, action="begin", run_id="r1", changes={"workdir": str(work / "r1"), "volumes": ["d1"]})
    # the run's own journal passes; a later entry naming another folder, image and volume is refused at the read
    ok = _run(run_module, tmp_path, action="read", work_root=str(work))
    assert [j["run_id"] for j in ok["unfinished"]] == ["r1"] and ok["unreadable"] == []
    path = tmp_path / "runs" / "r1.json"
    journal = json.loads(path.read_text())
    journal["changes"].update(workdir="/etc", image="victim:latest")
    path.write_text(json.dumps(journal))
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, action="read", work_root=str(work))
    msg = exc.value.result["msg"]
    assert "Recovery refuses run r1 of app1" in msg and "'/etc' is not in the run's work folder" in msg
    assert "'victim:latest' is not the run's image mec-migration/app1:r1" in msg
    # without the work root (a plain listing) it is listed as it is
    assert _run(run_module, tmp_path, action="read")["unfinished"][0]["changes"]["workdir"] == "/etc"


def test_read_goes_on_past_another_apps_corrupt_journal(run_module, tmp_path):
    _run(run_module, tmp_path, action="begin", run_id="r1", changes={"workdir": str(tmp_path / "work" / "r1")})
    (tmp_path / "runs" / "x9.json").write_text("{half")  # another app's, unreadable
    res = _run(run_module, tmp_path, action="read", work_root=str(tmp_path / "work"))
    assert [j["run_id"] for j in res["unfinished"]] == ["r1"]
    assert res["unreadable"] == [str(tmp_path / "runs" / "x9.json")]


def test_check_mode_begin_writes_nothing(run_module, tmp_path):
    res = _run(run_module, tmp_path, action="begin", run_id="r1", _ansible_check_mode=True)
    assert res["changed"] is True
    assert not (tmp_path / "locks").exists() and not (tmp_path / "runs").exists()


def test_a_corrupt_journal_is_named(tmp_path):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "r1.json").write_text("{half")
    with pytest.raises(jr.JournalError) as exc:
        jr.read_journal(str(tmp_path), "r1")
    assert "r1.json is not valid JSON" in str(exc.value)


def test_o_excl_lock_loses_a_race(tmp_path, monkeypatch):
    """A lock that appears between the check and the creation (another run) is reported, not overwritten."""
    real_read = jr.read_json
    calls = []

    def racing_read(path):
        if path.endswith(".lock") and not calls:
            calls.append(path)
            (tmp_path / "locks").mkdir(exist_ok=True)
            (tmp_path / "locks" / "app1.lock").write_text(json.dumps({"run_id": "rX", "app": "app1"}))
            return None
        return real_read(path)
    monkeypatch.setattr(jr, "read_json", racing_read)
    with pytest.raises(jr.JournalError) as exc:
        jr.begin(str(tmp_path), "r1", "app1", {}, [], "h1")
    assert "by run rX" in str(exc.value)
    assert json.loads((tmp_path / "locks" / "app1.lock").read_text())["run_id"] == "rX"


def test_begin_makes_the_private_work_directory_and_records_the_phase(run_module, tmp_path):
    work = tmp_path / "work" / "r5"
    res = _run(run_module, tmp_path, action="begin", run_id="r5", artifacts=[str(work)], workdir=str(work),
               phase="pre_relocation")
    assert res["changed"] is True and work.is_dir() and (work.stat().st_mode & 0o777) == 0o700
    assert (work.parent.stat().st_mode & 0o777) == 0o700
    journal = json.loads((tmp_path / "runs" / "r5.json").read_text())
    assert journal["phase"] == "pre_relocation" and [s["phase"] for s in journal["steps"]] == ["preflight",
                                                                                               "pre_relocation"]


def test_a_work_directory_that_cannot_be_private_releases_the_lock(run_module, tmp_path):
    parent = tmp_path / "shared"
    parent.mkdir(mode=0o777)
    parent.chmod(0o777)  # writable by others: not a place for root's work
    with pytest.raises(AnsibleFailJson) as exc:
        _run(run_module, tmp_path, action="begin", run_id="r6", workdir=str(parent / "r6"))
    assert "Cannot make the run's work directory" in exc.value.result["msg"]
    assert not (tmp_path / "locks" / "app1.lock").exists()
    assert json.loads((tmp_path / "runs" / "r6.json").read_text())["outcome"] == "failed"
