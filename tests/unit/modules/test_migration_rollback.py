import socket

from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
from ansible_collections.mec.migration.plugins.modules import migration_rollback
from .conftest import inspect_container

CID = "c" * 64


def test_restores_from_checkpoint(run_module, client, run_command, tmp_path):
    client.info.return_value = {"DockerRootDir": str(tmp_path)}
    (tmp_path / "containers" / CID / "checkpoints" / "run1-final").mkdir(parents=True)
    stopped, running = inspect_container(cid=CID, running=False), inspect_container(cid=CID, running=True)
    client.api.inspect_container.side_effect = [stopped, stopped, running]
    res = run_module(migration_rollback, {"name": "app", "checkpoint": "run1-final"})
    client.api._post.assert_called_once_with("http+docker://e/containers/%s/start" % CID,
                                             params={"checkpoint": "run1-final"})
    client.api.start.assert_not_called()
    assert (res["changed"], res["method"], res["running"]) == (True, "checkpoint", True)


def test_failed_restore_falls_back_to_start(run_module, client, run_command, tmp_path):
    client.info.return_value = {"DockerRootDir": str(tmp_path)}
    (tmp_path / "containers" / CID / "checkpoints" / "fin").mkdir(parents=True)
    stopped, running = inspect_container(cid=CID, running=False), inspect_container(cid=CID, running=True)
    client.api.inspect_container.side_effect = [stopped, stopped, running]
    client.api._post.side_effect = APIError("500", explanation="criu restore failed")
    res = run_module(migration_rollback, {"name": "app", "checkpoint": "fin"})
    client.api.start.assert_called_once_with(CID)
    assert res["method"] == "start"
    assert res["errors"] == ["The start of container %s from checkpoint fin failed on host %s: CRIU says: criu "
                             "restore failed" % (CID, socket.gethostname())]


def test_plain_start_without_checkpoint(run_module, client, run_command):
    stopped, running = inspect_container(cid=CID, running=False), inspect_container(cid=CID, running=True)
    client.api.inspect_container.side_effect = [stopped, stopped, running]
    res = run_module(migration_rollback, {"name": "app"})
    client.api.start.assert_called_once_with(CID)
    client.api._post.assert_not_called()
    assert (res["method"], res["running"]) == ("start", True)


def test_running_source_unchanged(run_module, client):
    client.api.inspect_container.return_value = inspect_container(cid=CID, running=True)
    res = run_module(migration_rollback, {"name": "app"})
    assert (res["changed"], res["method"]) == (False, "already running")
    client.api.start.assert_not_called()


def test_restart_policy_is_put_back(run_module, client, run_command):
    stopped = inspect_container(cid=CID, running=False)
    stopped["HostConfig"]["RestartPolicy"] = {"Name": "no", "MaximumRetryCount": 0}
    running = inspect_container(cid=CID, running=True)
    client.api.inspect_container.side_effect = [stopped, stopped, running]
    res = run_module(migration_rollback, {"name": "app", "restart_policy": {"Name": "unless-stopped",
                                                                            "MaximumRetryCount": 0}})
    client.api.start.assert_called_once_with(CID)
    client.api.update_container.assert_called_once_with(CID, restart_policy={"Name": "unless-stopped",
                                                                             "MaximumRetryCount": 0})
    assert res["running"] is True
