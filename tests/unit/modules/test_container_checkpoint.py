import pytest

from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
from ansible_collections.mec.migration.plugins.modules import container_checkpoint
from .conftest import AnsibleFailJson, inspect_container

CID = "c" * 64


def _root(client, tmp_path):
    client.info.return_value = {"DockerRootDir": str(tmp_path)}
    client.api.inspect_container.return_value = inspect_container(cid=CID)
    return tmp_path / "containers" / CID / "checkpoints"


def test_leave_running_checkpoint_calls_the_api(run_module, client, run_command, tmp_path):
    base = _root(client, tmp_path)

    def fake_post(url, data=None):
        (base / "ck1").mkdir(parents=True)
        (base / "ck1" / "pages-1.img").write_bytes(b"p" * 4096)
        return "response"
    client.api._post_json.side_effect = fake_post
    result = run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    client.api._post_json.assert_called_once_with("http+docker://e/containers/%s/checkpoints" % CID,
                                                  data={"CheckpointID": "ck1", "Exit": False})
    client.api._raise_for_status.assert_called_once_with("response")
    run_command.assert_not_called()
    assert (result["changed"], result["checkpoint_path"], result["size"]) == (True, str(base / "ck1"), 4096)


def test_final_checkpoint_into_custom_dir(run_module, client, tmp_path):
    _root(client, tmp_path)
    result = run_module(container_checkpoint, {"name": "app", "checkpoint": "fin", "leave_running": False,
                                               "checkpoint_dir": str(tmp_path / "ck")})
    client.api._post_json.assert_called_once_with(
        "http+docker://e/containers/%s/checkpoints" % CID,
        data={"CheckpointID": "fin", "Exit": True, "CheckpointDir": str(tmp_path / "ck")})
    assert result["checkpoint_path"] == str(tmp_path / "ck" / "fin")


def test_existing_checkpoint_unchanged(run_module, client, tmp_path):
    base = _root(client, tmp_path)
    (base / "ck1").mkdir(parents=True)
    result = run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    client.api._post_json.assert_not_called()
    assert result["changed"] is False


def test_forced_checkpoint_removes_the_old_one_first(run_module, client, tmp_path):
    base = _root(client, tmp_path)
    (base / "ck1").mkdir(parents=True)
    run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1", "force": True})
    client.api._delete.assert_called_once_with("http+docker://e/containers/%s/checkpoints/ck1" % CID, params=None)
    assert client.api._post_json.call_count == 1


def test_criu_failure_names_criu_reason_from_its_log(run_module, client, tmp_path):
    _root(client, tmp_path)
    log = tmp_path / "criu-dump.log"
    log.write_text("(00.000011) Version: 4.2.1 (gitid 0)\n"
                   "(00.004020) Dumping processes (pid: 212 comm: python3)\n"
                   "(00.031337) Error (criu/sk-inet.c:196): inet: Connected TCP socket, consider using "
                   "--tcp-established option.\n"
                   "(00.031590) Error (criu/cr-dump.c:1580): Dump files (pid: 212) failed with -1\n"
                   "(00.032011) Unfreezing tasks into 1\n")
    client.api._post_json.side_effect = APIError(
        "500", explanation="Cannot checkpoint container app: criu failed: type NOTIFY errno 0 path= %s: "
                           "exit status 1" % log)
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    res = exc.value.result
    assert "Connected TCP socket, consider using --tcp-established option." in res["msg"]
    assert "migration_criu_tcp=close" in res["msg"]
    assert res["criu_log"] == str(log)
    assert res["criu_errors"] == [
        "Error (criu/sk-inet.c:196): inet: Connected TCP socket, consider using --tcp-established option.",
        "Error (criu/cr-dump.c:1580): Dump files (pid: 212) failed with -1"]


def test_criu_failure_without_a_readable_log_keeps_the_engine_message(run_module, client, tmp_path):
    _root(client, tmp_path)
    client.api._post_json.side_effect = APIError("500", explanation="criu failed: type NOTIFY errno 0")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(container_checkpoint, {"name": "app", "checkpoint": "ck1"})
    assert "CRIU says: criu failed: type NOTIFY errno 0" in exc.value.result["msg"]
    assert exc.value.result["criu_errors"] == []
