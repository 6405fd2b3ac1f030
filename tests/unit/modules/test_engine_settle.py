"""run_config.check_settled: a target app that exits, or is restarted by its restart policy, right after its start
fails the migration with a clear error (on both engines); one that keeps running as the same start passes after the
window. Exact calls on a mocked client."""
import time
from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.module_utils import run_config
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

STARTED = "2026-12-07T04:20:00.123456789Z"
FIRST = {"Running": True, "Restarting": False, "Status": "running", "StartedAt": STARTED, "ExitCode": 0, "Error": ""}


def _client(engine, state, restart_count=0):
    client = mock.Mock()
    client.mec_engine = engine
    client.api.inspect_container.return_value = {"Id": "c1", "State": state, "RestartCount": restart_count}
    client.api.logs.return_value = b"starting\nrefusing /data/n: written by another container\n"
    return client


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_a_container_that_runs_on_as_the_same_start_passes_after_the_window(engine):
    client = _client(engine, dict(FIRST))
    since = time.monotonic()
    now = run_config.check_settled(client, "c1", FIRST, since, window=0.3, host="edge-2", name="app")
    assert time.monotonic() - since >= 0.3
    assert now == FIRST
    client.api.inspect_container.assert_called_once_with("c1")
    client.api.stop.assert_not_called()
    client.api.remove_container.assert_not_called()


def test_the_window_counts_from_the_running_not_from_the_call():
    client = _client("docker", dict(FIRST))
    t0 = time.monotonic()
    run_config.check_settled(client, "c1", FIRST, t0 - 5, window=0.5)
    assert time.monotonic() - t0 < 0.2  # the window had passed: no more waiting


@pytest.mark.parametrize("engine", ["docker", "podman"])
def test_an_app_that_exited_right_after_its_start_fails_with_what_happened(engine):
    exited = dict(FIRST, Running=False, Status="exited", ExitCode=3)
    client = _client(engine, exited)
    with pytest.raises(MigrationError) as err:
        run_config.check_settled(client, "c1", FIRST, time.monotonic(), window=0.05, host="edge-2", name="app")
    msg = err.value.msg
    assert msg.startswith("Container app did not stay running on host edge-2: it exited within 0.05s of its start "
                          "(status exited, exit code 3")
    assert ("the container was removed. Its last output (%s logs): starting | refusing /data/n: written by another "
            "container" % engine) in msg
    assert err.value.details["state"] == exited
    # removed: an exited container with a restart policy would be started again after a stop that found it stopped
    client.api.logs.assert_called_once_with("c1", stdout=True, stderr=True, tail=20)
    client.api.remove_container.assert_called_once_with("c1", force=True)
    client.api.stop.assert_not_called()


@pytest.mark.parametrize("change", [dict(StartedAt="2026-12-07T04:20:00.9Z"), dict(restarts=1),
                                    dict(Restarting=True)])
def test_an_app_restarted_by_its_policy_fails(change):
    change = dict(change)
    restarts = change.pop("restarts", 0)
    client = _client("podman", dict(FIRST, **change), restart_count=restarts)
    with pytest.raises(MigrationError) as err:
        run_config.check_settled(client, "c1", FIRST, time.monotonic(), window=0.05, host="edge-2", name="app")
    assert "did not stay running on host edge-2" in err.value.msg
    if "Restarting" not in change:
        assert "was started again within 0.05s of its start" in err.value.msg
    # removed, so that its policy does not keep it running (the rescue would take it for the migrated app)
    client.api.remove_container.assert_called_once_with("c1", force=True)


def test_a_container_that_cannot_be_removed_is_stopped_and_the_error_says_so():
    client = _client("podman", dict(FIRST, Running=False, Status="exited", ExitCode=3))
    client.api.remove_container.side_effect = RuntimeError("engine busy")
    client.api.logs.side_effect = RuntimeError("no logs")
    with pytest.raises(MigrationError) as err:
        run_config.check_settled(client, "c1", FIRST, time.monotonic(), window=0.01, host="edge-2", name="app")
    assert "the container could not be removed (engine busy)" in err.value.msg
    assert "Its last output (podman logs): (not readable: no logs)" in err.value.msg
    client.api.stop.assert_called_once_with("c1", timeout=1)


def test_restarts_before_the_start_are_not_counted():
    client = _client("docker", dict(FIRST), restart_count=4)
    assert run_config.check_settled(client, "c1", FIRST, time.monotonic(), restart_count=4, window=0.01) == FIRST
