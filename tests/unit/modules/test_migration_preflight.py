from unittest import mock

from docker.errors import NotFound
import pytest

from ansible.module_utils import basic
from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C
from ansible_collections.mec.migration.plugins.modules import migration_preflight
from .conftest import AnsibleFailJson, inspect_container


def test_source_ready(run_module, client, run_command, tmp_path):
    client.api.inspect_container.return_value = inspect_container(running=True)
    run_command.return_value = (0, "Looks good.\n", "")
    res = run_module(migration_preflight, {"role": "source", "name": "app", "criu": True,
                                           "peer_address": "192.0.2.12", "work_root": str(tmp_path)})
    assert [c.args[0] for c in run_command.call_args_list] == [["/usr/bin/criu", "--version"],
                                                               ["/usr/bin/criu", "check"]]
    assert run_command.call_args.kwargs == {"environ_update": LANG_C}
    assert res["changed"] is False
    assert res["problems"] == []
    assert res["container"]["running"] is True
    assert res["engine"]["engine_id"] == "ENGINE1"


def test_source_problems_are_all_listed(run_module, client, run_command, tmp_path):
    client.api.inspect_container.side_effect = NotFound("none")
    client.info.return_value = {"DockerRootDir": str(tmp_path), "ExperimentalBuild": False, "ID": "E"}
    run_command.return_value = (1, "", "Error (criu/kerndat.c:1615): kerndat failed")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_preflight, {"role": "source", "name": "ghost", "criu": True,
                                         "peer_address": "127.0.0.1", "work_root": str(tmp_path)})
    problems = exc.value.result["problems"]
    assert any("experimental" in p for p in problems)
    assert any("criu check fails" in p and "kerndat failed" in p for p in problems)
    assert any("Container ghost does not exist on the source host" in p for p in problems)
    assert any("source and target must be different hosts" in p for p in problems)
    assert exc.value.result["msg"].startswith("Preflight failed on source host ")


def test_missing_tool_is_reported(run_module, client, tmp_path):
    client.api.inspect_container.return_value = inspect_container(running=True)

    def no_rsync(self, name, required=False, opt_dirs=None):
        return None if name == "rsync" else "/usr/bin/" + name
    with mock.patch.object(basic.AnsibleModule, "get_bin_path", no_rsync), \
            mock.patch.object(basic.AnsibleModule, "run_command", return_value=(0, "Looks good.", "")):
        with pytest.raises(AnsibleFailJson) as exc:
            run_module(migration_preflight, {"role": "source", "name": "app", "criu": True,
                                             "peer_address": "192.0.2.12", "work_root": str(tmp_path)})
    assert exc.value.result["problems"] == [
        "rsync is not installed on %s (needed for transfer=stream, strategy m3)." % migration_preflight.hostname()]


def test_target_conflicts_and_space(run_module, client, tmp_path):
    client.info.return_value = {"DockerRootDir": str(tmp_path), "ExperimentalBuild": True, "ID": "E2"}
    client.api.inspect_container.return_value = inspect_container(running=True)
    client.api.inspect_volume.return_value = {"Name": "appdata"}
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_preflight, {"role": "target", "name": "app", "expected_size": 10 ** 18,
                                         "volumes": ["appdata"], "work_root": str(tmp_path), "port": 0})
    problems = exc.value.result["problems"]
    assert any("less than twice the expected 1000000000000000000 bytes" in p for p in problems)
    assert any("A container named app already exists on the target host" in p for p in problems)
    assert any("A volume named appdata already exists" in p for p in problems)


def test_target_ready(run_module, client, tmp_path):
    client.api.inspect_container.side_effect = NotFound("none")
    client.api.inspect_volume.side_effect = NotFound("none")
    client.info.return_value = {"DockerRootDir": str(tmp_path), "ExperimentalBuild": True, "ID": "E2"}
    res = run_module(migration_preflight, {"role": "target", "name": "app", "expected_size": 1000,
                                           "volumes": ["appdata"], "work_root": str(tmp_path), "port": 0})
    assert res["problems"] == []
    assert res["free_bytes"] > 2000
    assert res["container"] == {"exists": False, "running": False, "image_id": None}


def _begin(tmp_path, **extra):
    b = {"root": str(tmp_path / "state"), "run_id": "r1", "artifacts": [str(tmp_path / "work" / "r1")],
         "workdir": str(tmp_path / "work" / "r1"), "phase": "pre_relocation", "data": {"role": "source"},
         "changes": {"workdir": str(tmp_path / "work" / "r1")}}
    b.update(extra)
    return b


def test_a_passed_preflight_takes_the_lock_begins_the_journal_and_makes_the_work_dir(run_module, client, run_command,
                                                                                     tmp_path):
    import json
    client.api.inspect_container.return_value = inspect_container(running=True)
    run_command.return_value = (0, "Looks good.\n", "")
    res = run_module(migration_preflight, {"role": "source", "name": "app", "peer_address": "192.0.2.12",
                                           "work_root": str(tmp_path), "begin": _begin(tmp_path)})
    assert res["changed"] is True and res["began"] is True and res["problems"] == []
    assert (tmp_path / "work" / "r1").is_dir() and ((tmp_path / "work" / "r1").stat().st_mode & 0o777) == 0o700
    assert json.loads((tmp_path / "state" / "locks" / "app.lock").read_text())["run_id"] == "r1"
    assert res["journal"]["phase"] == "pre_relocation" and res["journal"]["role"] == "source"


def test_a_failed_preflight_takes_nothing(run_module, client, tmp_path):
    client.api.inspect_container.side_effect = NotFound("none")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_preflight, {"role": "source", "name": "app", "peer_address": "192.0.2.12",
                                         "work_root": str(tmp_path), "begin": _begin(tmp_path)})
    assert "does not exist on the source host" in exc.value.result["msg"]
    assert not (tmp_path / "state").exists() and not (tmp_path / "work").exists()


def test_a_held_lock_fails_the_preflight_naming_the_run(run_module, client, tmp_path):
    from ansible_collections.mec.migration.plugins.module_utils import journal as jr
    jr.begin(str(tmp_path / "state"), "r0", "app", {}, [], "h")
    client.api.inspect_container.return_value = inspect_container(running=True)
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_preflight, {"role": "source", "name": "app", "peer_address": "192.0.2.12",
                                         "work_root": str(tmp_path), "begin": _begin(tmp_path)})
    assert "app is being migrated by run r0" in exc.value.result["msg"]
    assert not (tmp_path / "work").exists()
