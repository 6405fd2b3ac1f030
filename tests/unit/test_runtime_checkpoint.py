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
