"""journal.py: recovery acts only on what the run made (paths in the run's work folder, the run's image, the
volumes recorded when it began), and a corrupt journal stops only its own app."""
import json
import os

import pytest

from ansible_collections.mec.migration.plugins.module_utils import journal as jr

WORK = "/var/lib/mec-migration/work"
RUN = "20261206T210000Z-ab12CD34"


def _begin(root, app="app1", run_id=RUN, volumes=("app1-data",)):
    changes = dict(workdir="%s/%s" % (WORK, run_id), tarball="%s/%s/image.tar" % (WORK, run_id),
                   image=jr.run_image(app, run_id), container=app, volumes=list(volumes))
    data = dict(role="target", workdir="%s/%s" % (WORK, run_id), image=jr.run_image(app, run_id),
                final_checkpoint=run_id + "-final")
    _changed, journal, _lock = jr.begin(str(root), run_id, app, data, [], "host1", changes=changes)
    return journal


def test_a_journal_of_the_run_itself_passes(tmp_path):
    journal = _begin(tmp_path)
    assert jr.check_recoverable(journal, "app1", WORK) is journal
    assert jr.recoverable_journals(str(tmp_path), "app1", WORK) == [journal]


@pytest.mark.parametrize("key, value, words", [
    ("workdir", "/", "not in the run's work folder"),
    ("workdir", "/etc", "not in the run's work folder"),
    ("workdir", WORK + "/" + RUN + "/../other", "not in the run's work folder"),
    ("workdir", WORK + "/other-run", "not in the run's work folder"),
    ("tarball", "/root/.ssh/id_ed25519", "not in the run's work folder"),
    ("image", "postgres:16", "not the run's image"),
    ("image", "mec-migration/app2:" + RUN.lower(), "not the run's image"),
    ("container", "database", "not the app"),
    ("volumes", ["app1-data", "db-data"], "volume db-data was not recorded when the run began"),
    ("volumes", ["../x"], "not a volume name"),
])
def test_recovery_refuses_what_the_run_did_not_make(tmp_path, key, value, words):
    journal = _begin(tmp_path)
    journal["changes"][key] = value  # as a corrupted or forged journal would say
    jr.write_json_atomic(jr.journal_path(str(tmp_path), RUN), journal)
    with pytest.raises(jr.JournalError) as err:
        jr.recoverable_journals(str(tmp_path), "app1", WORK)
    msg = str(err.value)
    assert words in msg and "Recovery refuses run %s of app1" % RUN in msg and "Nothing was changed" in msg


def test_top_level_workdir_and_checkpoint_are_checked_too(tmp_path):
    journal = _begin(tmp_path)
    journal["workdir"] = "/var/lib/docker"
    journal["final_checkpoint"] = "../../etc"
    with pytest.raises(jr.JournalError) as err:
        jr.check_recoverable(journal, "app1", WORK)
    assert "workdir '/var/lib/docker'" in str(err.value) and "checkpoint '../../etc'" in str(err.value)


def test_the_work_root_comes_from_the_recovery_not_the_journal(tmp_path):
    journal = _begin(tmp_path)
    journal["work_root"] = "/"  # ignored: the caller's setting decides
    with pytest.raises(jr.JournalError):
        jr.check_recoverable(journal, "app1", "/srv/other-root")


def test_a_symlinked_run_folder_is_refused(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    os.symlink("/etc", work / RUN)
    journal = _begin(tmp_path)
    journal["changes"]["workdir"] = str(work / RUN)
    journal["workdir"] = str(work / RUN)
    journal["changes"]["tarball"] = str(work / RUN / "image.tar")
    with pytest.raises(jr.JournalError) as err:
        jr.check_recoverable(journal, "app1", str(work))
    assert "is a symlink" in str(err.value)


def test_volumes_must_also_be_the_apps_own_when_the_engine_lists_them(tmp_path):
    journal = _begin(tmp_path, volumes=("app1-data", "shared"))
    jr.check_recoverable(journal, "app1", WORK, app_volumes=["app1-data", "shared"])
    with pytest.raises(jr.JournalError, match="volume shared is not one of app1's volumes"):
        jr.check_recoverable(journal, "app1", WORK, app_volumes=["app1-data"])


def test_a_later_entry_cannot_add_volumes_or_rewrite_the_start(tmp_path):
    _begin(tmp_path)
    with pytest.raises(jr.JournalError, match="cannot add db-data"):
        jr.update(str(tmp_path), RUN, changes=dict(volumes=["app1-data", "db-data"]))
    journal = jr.update(str(tmp_path), RUN, phase="relocation",
                        data=dict(start_changes=dict(volumes=["db-data"]), app="app2"))
    assert journal["start_changes"]["volumes"] == ["app1-data"] and journal["app"] == "app1"


def test_a_journal_of_an_older_version_without_start_record_keeps_its_volumes(tmp_path):
    journal = _begin(tmp_path)
    del journal["start_changes"]
    with pytest.raises(jr.JournalError, match="no record"):
        jr.check_recoverable(journal, "app1", WORK)


def test_another_apps_corrupt_journal_does_not_block_this_app(tmp_path):
    mine = _begin(tmp_path, app="app1", run_id="r1")
    (tmp_path / "runs" / "r9.json").write_text('{"app": "app2", "run_id": "r9", ')  # truncated
    (tmp_path / "runs" / "r8.json").write_text("[1, 2]")
    unreadable = []
    assert jr.app_journals(str(tmp_path), "app1", unreadable=unreadable) == [mine]
    assert sorted(os.path.basename(p) for p in unreadable) == ["r8.json", "r9.json"]


def test_a_corrupt_journal_blocks_its_own_app_with_a_clear_message(tmp_path):
    _begin(tmp_path, app="app2", run_id="r9")
    (tmp_path / "runs" / "r9.json").write_text('{"app": "app2", "run_id": "r9", ')
    with pytest.raises(jr.JournalError) as err:
        jr.app_journals(str(tmp_path), "app2")
    assert "r9.json" in str(err.value) and "app2's recovery stops" in str(err.value)


def test_a_corrupt_journal_named_by_the_apps_lock_blocks_that_app(tmp_path):
    _begin(tmp_path, app="app3", run_id="r7")
    (tmp_path / "runs" / "r7.json").write_bytes(b"\x00\xff garbage")
    with pytest.raises(jr.JournalError, match="r7.json of app3"):
        jr.app_journals(str(tmp_path), "app3")
    assert jr.app_journals(str(tmp_path), "app1") == []


def test_begin_records_the_start(tmp_path):
    journal = _begin(tmp_path)
    on_disk = json.loads((tmp_path / "runs" / (RUN + ".json")).read_text())
    assert on_disk["start_changes"]["volumes"] == ["app1-data"] == journal["changes"]["volumes"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
@pytest.mark.parametrize("sub, calls", [
    ("runs", ["app_journals", "read_journal", "update", "begin"]),
    ("locks", ["read_lock", "begin", "release"]),
])
def test_a_state_folder_someone_else_owns_is_refused_on_every_use(tmp_path, sub, calls):
    _begin(tmp_path, run_id="r1")
    os.chown(tmp_path / sub, 65534, -1)  # as if another user had made it before the first run
    root = str(tmp_path)
    do = dict(app_journals=lambda: jr.app_journals(root, "app1"), read_journal=lambda: jr.read_journal(root, "r1"),
              read_lock=lambda: jr.read_lock(root, "app1"), update=lambda: jr.update(root, "r1", phase="relocation"),
              begin=lambda: jr.begin(root, "r2", "app2", {}, [], "host1"),
              release=lambda: jr.release(root, "app1", "r1"))
    for name in calls:
        with pytest.raises(jr.JournalError) as err:
            do[name]()
        assert "state folder is not safe" in str(err.value) and str(tmp_path / sub) in str(err.value), name


def test_a_planted_link_at_the_temporary_name_is_not_written_through(tmp_path):
    _begin(tmp_path, run_id="r1")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    os.symlink(victim, tmp_path / "runs" / ("r1.json.tmp.%d" % os.getpid()))
    with pytest.raises(OSError):
        jr.update(str(tmp_path), "r1", phase="relocation")
    assert victim.read_text() == "keep"
