"""checkpoints.runtime_checkpoint with runc played by a fake module: the pause / checkpoint / resume calls it makes,
the second dump after a race with the container's own processes (a task CRIU could not seize), and no second dump
after any other CRIU error."""
import os

import pytest

from ansible_collections.mec.migration.plugins.module_utils import checkpoints
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

# CRIU's log of the dump that failed in the CI run of 2026-12-06 (a child of the app caught while it exited)
RACE_LOG = """(00.012) Error (compel/src/lib/infect.c:262): Unseizable non-zombie 40383 found, state D, err -1/4
(10.003) Error (criu/cr-dump.c:1655): Timeout reached. Try to interrupt: 0
(10.004) Error (compel/src/lib/infect.c:417): Unable to detach from 40383: No such process
(10.010) Error (criu/cr-dump.c:1975): Dumping FAILED.
"""
OTHER_LOG = """(00.020) Error (criu/sk-inet.c:191): inet: Connected TCP socket, consider using --tcp-established option.
(00.021) Error (criu/cr-dump.c:1975): Dumping FAILED.
"""
GOOD_LOG = "(00.001) Dumping processes (pid: 4242 comm: sh)\n(00.080) Dumping finished successfully\n"


class FakeModule(object):
    """runc's answers in turn: each ``checkpoint`` writes the next log of ``dumps`` into its work path and
    answers rc 0 for GOOD_LOG, else 1."""

    def __init__(self, dumps):
        self.dumps = list(dumps)
        self.calls, self.warnings = [], []

    def get_bin_path(self, name, required=False):
        return "/usr/sbin/" + name

    def warn(self, msg):
        self.warnings.append(msg)

    def run_command(self, argv, environ_update=None):
        verb = argv[3]
        self.calls.append(verb)
        if verb != "checkpoint":
            return 0, "", ""
        log = self.dumps.pop(0)
        work = argv[argv.index("--work-path") + 1]
        with open(os.path.join(work, "dump.log"), "w") as fh:
            fh.write(log)
        if log is GOOD_LOG:
            with open(os.path.join(argv[argv.index("--image-path") + 1], "pages-1.img"), "wb") as fh:
                fh.write(b"\0" * 4096)
            return 0, "", ""
        return 1, "", "criu failed: type NOTIFY errno 0"


def dump(module, tmp_path, leave_running=False):
    return checkpoints.runtime_checkpoint(module, "fa52723fe235" * 4, str(tmp_path / "final"),
                                          leave_running=leave_running, root="/run/docker/runtime-runc/moby")


def test_a_race_with_the_apps_processes_is_dumped_again_and_said(tmp_path):
    module = FakeModule([RACE_LOG, GOOD_LOG])
    ck = dump(module, tmp_path)
    # paused, dump failed, resumed (as it was); paused again, dumped (the container stopped: not resumed)
    assert module.calls == ["pause", "checkpoint", "resume", "pause", "checkpoint"]
    assert ck["attempts"] == 2 and ck["size"] == 4096
    assert "Unseizable non-zombie 40383 found" in ck["retried_after"]
    assert len(module.warnings) == 1 and "tried again" in module.warnings[0]


def test_a_dump_that_works_at_once_is_one_try(tmp_path):
    module = FakeModule([GOOD_LOG])
    ck = dump(module, tmp_path, leave_running=True)
    assert module.calls == ["pause", "checkpoint", "resume"]
    assert ck["attempts"] == 1 and ck["retried_after"] is None and module.warnings == []


def test_any_other_criu_error_fails_at_once(tmp_path):
    module = FakeModule([OTHER_LOG, GOOD_LOG])
    with pytest.raises(MigrationError) as err:
        dump(module, tmp_path)
    assert module.calls == ["pause", "checkpoint", "resume"]
    assert "Connected TCP socket" in err.value.msg and "migration_criu_tcp=close" in err.value.msg
    assert "retried_after" not in err.value.details


def test_a_race_twice_fails_naming_both(tmp_path):
    module = FakeModule([RACE_LOG, RACE_LOG])
    with pytest.raises(MigrationError) as err:
        dump(module, tmp_path)
    assert module.calls == ["pause", "checkpoint", "resume", "pause", "checkpoint", "resume"]
    assert "Unseizable non-zombie" in err.value.msg and "Unseizable" in err.value.details["retried_after"]


# --------------------------------------------------------------------------- the restore's stages and its images

# An excerpt of CRIU's restore log of A2 started by Docker 20.10 (the lab, 2026-12-07): runc answers the
# setup-namespaces notification by running Docker's prestart hook (libnetwork-setkey) for 0.19 s
RESTORE_LOG = """(00.000000) CRIU run id = fbe0923d-14fa-4748-9e06-783d94fa1847
(00.002461) Forking task with 1 pid (flags 0x6c028080)
(00.003617) Running setup-namespaces scripts
(00.003619) \tRPC
(00.193573)      1: cg: Move into 2
(00.245606)      1: Restoring resources
(00.262514) Restore finished successfully. Tasks resumed.
(00.262580) Running post-resume scripts
(00.262582) \tRPC
"""


def test_restore_timing_separates_the_runtime_hooks_from_criu():
    from ansible_collections.mec.migration.plugins.module_utils.criu import restore_timing
    t = restore_timing(RESTORE_LOG, ended_at=1000.0)
    assert t["total"] == 0.262582
    # post-resume is the last thing logged: its time is not known, so it is not counted
    assert t["hooks"] == {"setup-namespaces": 0.189956}
    assert t["own"] == pytest.approx(0.262582 - 0.189956)
    assert t["started_at"] == pytest.approx(1000.0 - 0.262582)
    assert restore_timing("no timestamps here") is None


def test_restore_stages_split_the_engine_call_around_crius_log(tmp_path, monkeypatch):
    log = tmp_path / "restore.log"
    log.write_text(RESTORE_LOG)
    os.utime(log, (1000.3, 1000.3))
    monkeypatch.setattr(checkpoints, "candidate_logs", lambda cid, names=(): [str(log)])
    st = checkpoints.restore_stages("c1", called_at=999.9, returned_at=1000.32)
    assert st["engine_before_criu"] == pytest.approx(1000.3 - 0.262582 - 999.9, abs=1e-6)
    assert st["criu_hooks"] == 0.189956 and st["criu_restore"] == pytest.approx(0.072626)
    assert st["engine_after_criu"] == pytest.approx(0.02, abs=1e-6)
    assert st["criu_log"] == str(log)
    # a log older than the call is another restore's
    assert checkpoints.restore_stages("c1", called_at=1001.0, returned_at=1001.5) is None


def test_link_checkpoint_links_the_page_images_and_copies_the_rest(tmp_path):
    root = tmp_path / "docker" / "containers" / "c1"
    ck = root / "checkpoints" / "fin"
    ck.mkdir(parents=True)
    (ck / "pages-1.img").write_bytes(b"P" * 8192)
    (ck / "pages-2.img").write_bytes(b"Q" * 4096)
    (ck / "core-1.img").write_bytes(b"core")
    images = root / "mec-checkpoint-images" / "fin"
    assert checkpoints.stage_checkpoint(str(ck), str(images)) is True
    assert not ck.exists() and sorted(os.listdir(images)) == ["core-1.img", "pages-1.img", "pages-2.img"]
    placed = checkpoints.link_checkpoint(str(images), str(ck))
    assert placed == {"linked_bytes": 12288, "copied_bytes": 4, "files": 3}
    assert not os.path.islink(ck / "core-1.img") and (ck / "core-1.img").read_bytes() == b"core"
    for name in ("pages-1.img", "pages-2.img"):
        link = os.readlink(ck / name)
        # relative, from any folder up to the root and down to the file: the same file from where the engine
        # unpacks the checkpoint (another folder, another depth) as from the engine's own folder
        assert not link.startswith("/") and link.startswith("../" * checkpoints.LINK_DEPTH)
        assert (ck / name).read_bytes() == (images / name).read_bytes()
        elsewhere = tmp_path / "a" / "b" / "c" / "d"
        elsewhere.mkdir(parents=True, exist_ok=True)
        (elsewhere / name).symlink_to(link)
        assert os.path.samefile(elsewhere / name, images / name)
    # placed again (a second start from the same images): the folder is made anew
    assert checkpoints.link_checkpoint(str(images), str(ck))["files"] == 3
    # anything but a regular file in the images is refused
    (images / "pages-3.img").symlink_to("/etc/passwd")
    with pytest.raises(MigrationError, match="not a regular file"):
        checkpoints.link_checkpoint(str(images), str(ck))


def test_stage_checkpoint_without_a_pre_relocation_checkpoint(tmp_path):
    images = tmp_path / "c1" / "mec-checkpoint-images" / "fin"
    assert checkpoints.stage_checkpoint(str(tmp_path / "c1" / "checkpoints" / "fin"), str(images)) is False
    assert images.is_dir() and os.listdir(images) == []
