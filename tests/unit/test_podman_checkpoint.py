"""m3 on Podman (podman_checkpoint) and the engine dispatch around it, on exact calls: the libpod REST requests
(URL, parameters), the runc and podman commands, what goes where in the container's bundle folder, the rollback's
choice, and the engines' m3 rule (same engine only). The client and the commands are mocks (this module's unit
tests only); the real thing runs in tests/integration/test_podman_m3_lab.py."""
import json
import os
from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.module_utils import checkpoints, engines, relocation
from ansible_collections.mec.migration.plugins.module_utils import podman_checkpoint as pc
from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

CID = "f3dc34fff7d55ebb1445a60e00f2e3ca0072691639f6a6f18a2ac3c7b291747a"
BASE = "http+docker://localhost"
DUMP_ANSWER = {"Id": CID, "RawInput": "app", "runtime_checkpoint_duration": 138039,
               "criu_statistics": {"freezing_time": 568, "frozen_time": 99733, "memdump_time": 2621,
                                   "memwrite_time": 322, "pages_scanned": 91, "pages_written": 60}}
RESTORE_ANSWER = {"Id": CID, "RawInput": "app", "runtime_restore_duration": 87794,
                  "criu_statistics": {"forking_time": 478, "restore_time": 37764, "pages_restored": 60}}


def response(payload, status=200):
    res = mock.MagicMock()
    res.status_code = status
    res.json.return_value = payload
    return res


def client_for(engine, bundle=None, checkpointed=False):
    client = mock.MagicMock()
    client.mec_engine = engine
    client.api.base_url = BASE
    client.api._raise_for_status.side_effect = lambda res: None
    client.api.get.return_value = response({"Id": CID, "StaticDir": bundle,
                                            "State": {"Checkpointed": checkpointed}})
    return client


class Commands(object):
    """A module whose run_command answers rc 0 (or ``fail`` for the verbs named there) and records the argv."""

    def __init__(self, fail=()):
        self.calls, self.fail = [], fail

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, argv, environ_update=None):
        self.calls.append(list(argv))
        return (1, "", "boom") if any(v in argv for v in self.fail) else (0, "", "")


def test_the_engines_m3_rule_same_engine_only():
    assert engines.strategy_problems(True, "h1", "docker", "h2", "docker") == []
    assert engines.strategy_problems(True, "h1", "podman", "h2", "podman") == []
    assert engines.strategy_problems(False, "h1", "podman", "h2", "docker") == []
    for mine, peer in (("docker", "podman"), ("podman", "docker")):
        (problem,) = engines.strategy_problems(True, "h1", mine, "h2", peer)
        assert problem.startswith("Strategy m3 (CRIU checkpoint/restore) runs only between two hosts of the same "
                                  "engine: h1 is %s and h2 is %s" % (engines.title(mine), engines.title(peer)))
        assert "Use strategy m2" in problem and problem.endswith("Nothing was changed.")
    assert engines.checkpoint_needs_experimental("docker") and not engines.checkpoint_needs_experimental("podman")
    assert engines.checkpoint_tools("podman") == ["podman", "runc"] and engines.checkpoint_tools("docker") == []


def test_final_checkpoint_pauses_with_runc_then_asks_podman(tmp_path):
    bundle = str(tmp_path)
    os.mkdir(os.path.join(bundle, "checkpoint"))
    (tmp_path / "checkpoint" / "pages-1.img").write_bytes(b"p" * 4096)
    (tmp_path / "dump.log").write_text("(00.001) Dumping processes\n(00.050) Dumping finished successfully\n")
    client = client_for("podman", bundle)
    client.api.post.return_value = response(DUMP_ANSWER)
    module = Commands()
    ck = pc.final_checkpoint(module, client, CID, bundle)
    assert module.calls == [["/usr/bin/runc", "--root", "/run/runc", "pause", CID]]
    client.api.post.assert_called_once_with(BASE + "/v4.0.0/libpod/containers/%s/checkpoint" % CID,
                                            params=dict(keep="true", printStats="true"), timeout=300)
    assert ck["path"] == os.path.join(bundle, "checkpoint") and ck["criu_duration"] == 0.05
    assert ck["engine_stats"] == dict(runtime_us=138039, freezing_time=568, frozen_time=99733, memdump_time=2621,
                                      memwrite_time=322, pages_scanned=91, pages_written=60)
    # the folder names its engine: a Docker target refuses it
    with open(os.path.join(ck["path"], pc.MARKER)) as fh:
        assert json.load(fh)["engine"] == "podman"


def test_a_failed_podman_checkpoint_resumes_the_app(tmp_path):
    client = client_for("podman", str(tmp_path))
    client.api.post.return_value = response({})
    err = APIError("500 Server Error", response=mock.MagicMock(status_code=500),
                   explanation="criu failed: type NOTIFY errno 0")
    client.api._raise_for_status.side_effect = err
    module = Commands()
    with pytest.raises(MigrationError) as exc:
        pc.final_checkpoint(module, client, CID, str(tmp_path))
    assert [c[3] for c in module.calls] == ["pause", "resume"]
    assert "Podman's checkpoint of container %s failed on host" % CID[:12] in exc.value.msg
    assert "criu failed: type NOTIFY errno 0" in exc.value.msg


def test_restore_through_libpod_keeps_podmans_figures():
    client = client_for("podman", "/b")
    client.api.post.return_value = response(RESTORE_ANSWER)
    timing = {}
    assert pc.restore(client, CID, "/b", timing=timing) >= 0
    client.api.post.assert_called_once_with(BASE + "/v4.0.0/libpod/containers/%s/restore" % CID,
                                            params=dict(keep="true", printStats="true"), timeout=300)
    assert timing["engine_stats"] == dict(runtime_us=87794, forking_time=478, restore_time=37764, pages_restored=60)
    assert timing["called_at"] <= timing["returned_at"]


def test_prepare_target_inits_then_cleans_up_the_container():
    module = Commands()
    pc.prepare_target(module, CID)
    assert module.calls == [["/usr/bin/podman", "container", "init", CID],
                            ["/usr/bin/podman", "container", "cleanup", CID]]
    with pytest.raises(MigrationError, match="podman container init %s failed on host" % CID[:12]):
        pc.prepare_target(Commands(fail=("init",)), CID)


def test_a_checkpoint_of_the_other_engine_is_refused(tmp_path):
    pc.write_marker(str(tmp_path), engine="docker", container_id=CID)
    pc.check_marker(str(tmp_path), "docker")
    with pytest.raises(MigrationError, match="was made by docker, and this host runs podman"):
        pc.check_marker(str(tmp_path), "podman")
    pc.check_marker(str(tmp_path / "none"), "podman")  # no marker (a checkpoint made by hand): not refused


def test_the_checkpoint_folders_dispatch_by_engine(tmp_path):
    bundle = "/var/lib/containers/storage/overlay-containers/%s/userdata" % CID
    podman = client_for("podman", bundle)
    assert checkpoints.container_checkpoint_dir(podman, CID, "r1-final") == bundle + "/mec-checkpoints/r1-final"
    assert checkpoints.checkpoint_images_dir(podman, CID, "r1-final") == bundle + "/checkpoint"
    podman.api.get.assert_called_with(BASE + "/v4.0.0/libpod/containers/%s/json" % CID)
    docker = mock.MagicMock()
    docker.info.return_value = {"DockerRootDir": "/var/lib/docker"}
    assert checkpoints.container_checkpoint_dir(docker, CID, "r1-final") == \
        "/var/lib/docker/containers/%s/checkpoints/r1-final" % CID
    assert checkpoints.checkpoint_images_dir(docker, CID, "r1-final") == \
        "/var/lib/docker/containers/%s/mec-checkpoint-images/r1-final" % CID
    assert "/run/runc" in checkpoints.RUNC_ROOTS


def test_start_from_checkpoint_on_podman_is_its_restore():
    client = client_for("podman", "/b")
    client.api.post.return_value = response(RESTORE_ANSWER)
    checkpoints.start_from_checkpoint(client, CID, "r1-final")
    client.api.post.assert_called_once_with(BASE + "/v4.0.0/libpod/containers/%s/restore" % CID,
                                            params=dict(keep="true", printStats="true"), timeout=300)
    client.api._post.assert_not_called()  # never Docker's start --checkpoint


@pytest.mark.parametrize("held", [True, False])
def test_rollback_on_podman_restores_in_place_or_starts(tmp_path, held):
    os.makedirs(str(tmp_path / "checkpoint"))
    (tmp_path / "checkpoint" / "inventory.img").write_bytes(b"i")
    client = client_for("podman", str(tmp_path), checkpointed=held)
    client.api.inspect_container.side_effect = [{"Id": CID, "Name": "app", "State": {"Running": False}},
                                                {"Id": CID, "Name": "app", "State": {"Running": True,
                                                                                     "Status": "running"}}]
    client.api.post.return_value = response(RESTORE_ANSWER)
    with mock.patch.object(relocation, "wait_running", return_value=(True, {"Status": "running"})):
        res = relocation.rollback_source(client, "app", checkpoint="r1-final")
    assert res["method"] == ("checkpoint" if held else "start") and res["running"]
    if held:
        client.api.post.assert_called_once_with(BASE + "/v4.0.0/libpod/containers/%s/restore" % CID,
                                                params=dict(keep="true", printStats="true"), timeout=300)
        client.api.start.assert_not_called()
    else:
        client.api.post.assert_not_called()
        client.api.start.assert_called_once_with(CID)


def test_restore_stages_from_podmans_restore_log(tmp_path):
    log = tmp_path / "restore.log"
    log.write_text("(00.000000) Version: 4.2\n(00.010000) Running setup-namespaces scripts\n"
                   "(00.012000) Restore finished successfully. Tasks resumed.\n(00.030000) Writing stats\n")
    ended = os.stat(str(log)).st_mtime
    stages = pc.restore_stages(str(tmp_path), ended - 0.2, ended + 0.01, {"runtime_us": 87794})
    assert stages["criu_log"] == str(log) and stages["engine_stats"] == {"runtime_us": 87794}
    assert stages["engine_before_criu"] > 0.1 and stages["engine_after_criu"] >= 0.0
    assert pc.restore_stages(str(tmp_path), ended + 5, ended + 6) is None  # an older restore's log


@pytest.mark.parametrize("policy,auto_remove,safe", [("no", False, True), ("", False, True), (None, False, True),
                                                     ("unless-stopped", False, False), ("no", True, False)])
def test_runc_dumps_the_final_checkpoint_only_where_podman_would_not_restart_or_remove(policy, auto_remove, safe):
    info = {"HostConfig": {"RestartPolicy": {"Name": policy} if policy is not None else None,
                           "AutoRemove": auto_remove}}
    assert pc.runtime_dump_safe(info) is safe


def test_final_checkpoint_through_runc_into_podmans_folder(tmp_path):
    client = client_for("podman", str(tmp_path))
    seen = {}

    def fake_runtime_checkpoint(module, cid, path, leave_running=True, root=None):
        seen.update(cid=cid, path=path, leave_running=leave_running, root=root)
        os.makedirs(path)
        return dict(path=path, size=1, duration=0.1, pause_duration=0.01, criu_duration=0.05, attempts=1)
    with mock.patch.object(checkpoints, "runtime_checkpoint", fake_runtime_checkpoint):
        ck = pc.final_checkpoint(Commands(), client, CID, str(tmp_path), runtime=True)
    assert seen == dict(cid=CID, path=str(tmp_path / "checkpoint"), leave_running=False, root="/run/runc")
    client.api.post.assert_not_called()  # Podman is not asked
    assert ck["via"] == "runtime" and ck["engine_stats"] is None
    with open(str(tmp_path / "checkpoint" / pc.MARKER)) as fh:
        assert json.load(fh) == dict(engine="podman", container=CID, host=mock.ANY, final=True)


def test_rollback_finds_runcs_final_checkpoint_once_podman_saw_the_exit(tmp_path):
    os.makedirs(str(tmp_path / "checkpoint"))
    (tmp_path / "checkpoint" / "inventory.img").write_bytes(b"i")
    client = client_for("podman", str(tmp_path))
    client.api.get.side_effect = [response({"StaticDir": str(tmp_path), "State": {"Running": True}}),
                                  response({"StaticDir": str(tmp_path), "State": {"Running": False}})]
    pc.write_marker(str(tmp_path / "checkpoint"), container_id=CID, final=True)
    assert pc.checkpointed(client, CID) == (True, str(tmp_path))
    # a pre-relocation checkpoint (not final) left there is never restored from
    client.api.get.side_effect = None
    client.api.get.return_value = response({"StaticDir": str(tmp_path), "State": {"Running": False}})
    pc.write_marker(str(tmp_path / "checkpoint"), container_id=CID)
    assert pc.checkpointed(client, CID) == (False, str(tmp_path))
