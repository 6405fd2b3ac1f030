import pytest

from ansible_collections.mec.migration.plugins.modules import container_restore
from .conftest import AnsibleFailJson, inspect_container

CID = "d" * 64


def test_places_checkpoint_and_starts_from_it(run_module, client, run_command, tmp_path):
    client.info.return_value = {"DockerRootDir": str(tmp_path / "docker")}
    stopped = inspect_container(cid=CID, running=False)
    # main(), place_checkpoint() and then wait_running() inspect it
    client.api.inspect_container.side_effect = [stopped, stopped, inspect_container(cid=CID, running=True)]
    src = tmp_path / "received"
    src.mkdir()
    (src / "core-1.img").write_bytes(b"core")
    result = run_module(container_restore, {"name": "app", "checkpoint": "fin", "src": str(src)})
    placed = tmp_path / "docker" / "containers" / CID / "checkpoints" / "fin"
    assert (placed / "core-1.img").read_bytes() == b"core"
    client.api._post.assert_called_once_with("http+docker://e/containers/%s/start" % CID,
                                             params={"checkpoint": "fin"})
    run_command.assert_not_called()
    assert (result["changed"], result["running"], result["placed"]) == (True, True, str(placed))


def test_running_container_unchanged(run_module, client, run_command):
    client.api.inspect_container.return_value = inspect_container(cid=CID, running=True)
    result = run_module(container_restore, {"name": "app", "checkpoint": "fin"})
    client.api._post.assert_not_called()
    assert result["changed"] is False


def test_container_that_exits_fails(run_module, client, run_command):
    dead = inspect_container(cid=CID, running=False)
    dead["State"].update(Status="exited", Error="restore failed")
    client.api.inspect_container.return_value = dead
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(container_restore, {"name": "app", "checkpoint": "fin"})
    assert "did not stay running" in exc.value.result["msg"]
    assert "restore failed" in exc.value.result["msg"]


def _api_error(text):
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
    return APIError("500", explanation=text)


NOTIFY = ("OCI runtime restore failed: criu failed: type NOTIFY errno 0\nlog file: /var/run/docker/containerd/"
          "daemon/io.containerd.runtime.v2.task/moby/x/work/restore.log: unknown")


def test_a_failure_in_the_runtimes_notification_handling_is_tried_once_more(client):
    from ansible_collections.mec.migration.plugins.module_utils import checkpoints
    client.api.inspect_container.return_value = inspect_container(cid=CID, running=False)
    client.api._raise_for_status.side_effect = [_api_error(NOTIFY), None]
    timing = {}
    checkpoints.start_from_checkpoint(client, CID, "fin", timing=timing)
    assert client.api._post.call_count == 2
    assert timing["attempts"] == 2 and "type NOTIFY" in timing["retried_after"]
    assert timing["returned_at"] >= timing["called_at"]


@pytest.mark.parametrize("first, running", [
    ("criu failed: type RESTORE errno 0", False),   # CRIU's own restore failed: not tried again
    (NOTIFY, True),                                  # the app runs after all: never started twice
])
def test_other_restore_failures_and_a_running_container_fail_at_once(client, first, running):
    from ansible_collections.mec.migration.plugins.module_utils import checkpoints
    from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
    client.api.inspect_container.return_value = inspect_container(cid=CID, running=running)
    client.api._raise_for_status.side_effect = [_api_error(first), None]
    with pytest.raises(MigrationError):
        checkpoints.start_from_checkpoint(client, CID, "fin", timing={})
    assert client.api._post.call_count == 1


def test_a_notification_failure_twice_fails(client):
    from ansible_collections.mec.migration.plugins.module_utils import checkpoints
    from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
    client.api.inspect_container.return_value = inspect_container(cid=CID, running=False)
    client.api._raise_for_status.side_effect = [_api_error(NOTIFY), _api_error(NOTIFY)]
    with pytest.raises(MigrationError) as exc:
        checkpoints.start_from_checkpoint(client, CID, "fin", timing={})
    assert client.api._post.call_count == 2
    assert "type NOTIFY" in exc.value.msg and "(try 2 of 2; the first failed too: " in exc.value.msg
    assert exc.value.details["restore_attempts"] == 2 and "type NOTIFY" in exc.value.details["engine_error"]
