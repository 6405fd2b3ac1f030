import pytest

from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C
from ansible_collections.mec.migration.plugins.modules import container_checkpoint
from .conftest import AnsibleFailJson, inspect_container

CID = "c" * 64


def _root(client, tmp_path):
    client.info.return_value = {"DockerRootDir": str(tmp_path)}
    client.api.inspect_container.return_value = inspect_container(cid=CID)
    return tmp_path / "containers" / CID / "checkpoints"


def test_leave_running_checkpoint_argv(run_module, client, run_command, tmp_path):
    base = _root(client, tmp_path)

    def fake_docker(argv, environ_update=None, **kw):
        (base / "ck1").mkdir(parents=True)
        (base / "ck1" / "pages-1.img").write_bytes(b"p" * 4096)
        return 0, "ck1\n", ""
    run_command.side_effect = fake_docker
    result = run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    run_command.assert_called_once_with(["/usr/bin/docker", "checkpoint", "create", "--leave-running", "app", "ck1"],
                                        environ_update=LANG_C)
    assert (result["changed"], result["checkpoint_path"], result["size"]) == (True, str(base / "ck1"), 4096)


def test_final_checkpoint_into_custom_dir(run_module, client, run_command, tmp_path):
    _root(client, tmp_path)
    result = run_module(container_checkpoint, {"name": "app", "checkpoint": "fin", "leave_running": False,
                                               "checkpoint_dir": str(tmp_path / "ck")})
    run_command.assert_called_once_with(["/usr/bin/docker", "checkpoint", "create", "--checkpoint-dir",
                                         str(tmp_path / "ck"), "app", "fin"], environ_update=LANG_C)
    assert result["checkpoint_path"] == str(tmp_path / "ck" / "fin")


def test_existing_checkpoint_unchanged(run_module, client, run_command, tmp_path):
    base = _root(client, tmp_path)
    (base / "ck1").mkdir(parents=True)
    result = run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    run_command.assert_not_called()
    assert result["changed"] is False


def test_criu_failure_is_reported(run_module, client, run_command, tmp_path):
    _root(client, tmp_path)
    run_command.return_value = (1, "", "Error response from daemon: criu failed: type DUMP")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    assert "docker checkpoint create app ck1 failed" in exc.value.result["msg"]
    assert "criu failed" in exc.value.result["msg"]
    assert exc.value.result["rc"] == 1
