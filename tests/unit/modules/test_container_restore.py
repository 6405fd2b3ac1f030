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
