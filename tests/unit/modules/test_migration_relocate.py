"""migration_relocate: both halves over real loopback sockets, with mocked Docker clients.

The target half runs in a thread through relocation.relocate_target (its own mocked client); the
source half runs the module's main() (module args are process-global, so only one main() at a time).
"""
import threading
from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.module_utils import relocation, transport
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C
from ansible_collections.mec.migration.plugins.modules import migration_relocate
from .conftest import AnsibleFailJson, inspect_container

SRC_ID, DST_ID = "a" * 64, "b" * 64


def _free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _volume(path, name="appdata"):
    return [{"Type": "volume", "Name": name, "Source": str(path), "Destination": "/data", "RW": True}]


def _target_client(dst_mp, states):
    c = mock.MagicMock(name="target client")
    c.api.inspect_container.side_effect = lambda _id: inspect_container(cid=DST_ID, running=states.pop(0),
                                                                        mounts=_volume(dst_mp))
    return c


def test_nc_relocation_moves_volume_and_reports_times(run_module, client, tmp_path):
    src_mp, dst_mp = tmp_path / "src", tmp_path / "dst"
    src_mp.mkdir()
    dst_mp.mkdir()
    (src_mp / "count").write_text("1234")
    source = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    source["HostConfig"]["RestartPolicy"] = {"Name": "always", "MaximumRetryCount": 0}
    client.api.inspect_container.return_value = source
    port = _free_port()
    tclient = _target_client(dst_mp, [False, True])
    target = {}

    def run_target():
        try:
            target["result"] = relocation.relocate_target(mock.MagicMock(), tclient, "app", "nc", port=port,
                                                             timeout=10, listen_address="127.0.0.1")
        except Exception as exc:  # reported by the assertions below
            target["error"] = exc
    t = threading.Thread(target=run_target)
    t.start()
    res = run_module(migration_relocate, {"role": "source", "name": "app", "transfer": "nc", "port": port,
                                          "peer_address": "127.0.0.1", "workdir": str(tmp_path), "stop_timeout": 1})
    t.join(10)
    assert "error" not in target, target.get("error")
    # the restart policy is cleared before the stop, so that the engine does not bring the source back
    assert client.api.method_calls.index(mock.call.update_container(
        SRC_ID, restart_policy={"Name": "no", "MaximumRetryCount": 0})) < \
        client.api.method_calls.index(mock.call.stop(SRC_ID, timeout=1))
    assert res["restart_policy_cleared"] == {"Name": "always", "MaximumRetryCount": 0}
    tclient.api.start.assert_called_once_with(DST_ID)
    assert (dst_mp / "count").read_text() == "1234"
    assert res["changed"] is True and res["source_stopped"] is True
    assert set(res["durations"]) == {"stop", "volume_transfer"}
    assert res["sizes"]["volume"] == 4
    tres = target["result"]
    assert set(tres["durations"]) == {"wait", "volume_receive", "start"}
    assert tres["running_at"] >= res["stopped_at"]


def test_ssh_relocation_with_checkpoint_argv(run_module, client, run_command, tmp_path):
    src_mp = tmp_path / "src"
    src_mp.mkdir()
    (src_mp / "f").write_text("x")
    client.info.return_value = {"DockerRootDir": str(tmp_path / "docker")}
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    run_command.return_value = (0, "Total bytes sent: 2,048\nLiteral data: 1,000 bytes\n", "")
    res = run_module(migration_relocate, {
        "role": "source", "name": "app", "transfer": "ssh", "checkpoint": "run1-final",
        "peer_address": "192.0.2.12", "target_checkpoint_dir": "/var/lib/docker/containers/%s/checkpoints/run1-final"
        % DST_ID, "workdir": str(tmp_path), "remote_workdir": "/var/tmp/mec-migration/run1",
        "ssh_options": ["-o", "BatchMode=yes"]})
    argvs = [c.args[0] for c in run_command.call_args_list]
    # the final checkpoint through the engine's API (no CLI), after the handshake and before the rsync
    client.api._post_json.assert_called_once_with("http+docker://e/containers/%s/checkpoints" % SRC_ID,
                                                  data={"CheckpointID": "run1-final", "Exit": True})
    ck_src = str(tmp_path / "docker" / "containers" / SRC_ID / "checkpoints" / "run1-final")
    assert argvs == [
        ["/usr/bin/ssh", "-o", "BatchMode=yes", "root@192.0.2.12", "test -e /var/tmp/mec-migration/run1/target.ready"],
        ["/usr/bin/rsync", "-a", "--stats", "-e", "/usr/bin/ssh -o BatchMode=yes", "--delete", ck_src + "/",
         "root@192.0.2.12:/var/lib/docker/containers/%s/checkpoints/run1-final/" % DST_ID],
        ["/usr/bin/scp", "-q", "-r", "-o", "BatchMode=yes", str(tmp_path / "volumes.tar"),
         "root@192.0.2.12:/var/tmp/mec-migration/run1/volumes.tar"],
        ["/usr/bin/ssh", "-o", "BatchMode=yes", "root@192.0.2.12", "touch /var/tmp/mec-migration/run1/relocation.done"],
    ]
    assert all(c.kwargs["environ_update"] == LANG_C for c in run_command.call_args_list)
    client.api.stop.assert_not_called()  # the final checkpoint stops the container
    client.api.update_container.assert_not_called()  # no restart policy to clear
    assert res["rsync_stats"] == {"bytes_sent": 2048, "literal_data": 1000}
    assert res["sizes"]["checkpoint_transferred"] == 2048
    assert set(res["durations"]) == {"checkpoint", "checkpoint_transfer", "volume_archive", "volume_transfer",
                                     "signal"}


def test_unready_target_leaves_source_running(run_module, client, tmp_path):
    src_mp = tmp_path / "src"
    src_mp.mkdir()
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, {"role": "source", "name": "app", "transfer": "nc", "port": _free_port(),
                                        "peer_address": "127.0.0.1", "workdir": str(tmp_path), "wait_timeout": 1})
    assert "Could not connect to the target's receiver" in exc.value.result["msg"]
    # the handshake comes before the stop: a target that never listens costs no downtime
    assert exc.value.result["source_stopped"] is False
    client.api.stop.assert_not_called()


def test_target_times_out_clearly(run_module, client, tmp_path):
    dst_mp = tmp_path / "dst"
    dst_mp.mkdir()
    client.api.inspect_container.return_value = inspect_container(cid=DST_ID, running=False, mounts=_volume(dst_mp))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, {"role": "target", "name": "app", "transfer": "ssh",
                                        "workdir": str(tmp_path), "wait_timeout": 1})
    assert "did not appear" in exc.value.result["msg"] and "within 1s" in exc.value.result["msg"]
    client.api.start.assert_not_called()


def test_cut_stream_fails_target_without_start(tmp_path):
    import socket
    dst_mp = tmp_path / "dst"
    dst_mp.mkdir()
    port = _free_port()
    tclient = _target_client(dst_mp, [False])
    errors = {}

    def run_target():
        try:
            relocation.relocate_target(mock.MagicMock(), tclient, "app", "nc", port=port, timeout=5,
                                          listen_address="127.0.0.1")
        except MigrationError as exc:
            errors["msg"] = exc.msg
    t = threading.Thread(target=run_target)
    t.start()
    sock = transport.connect_retry("127.0.0.1", port, __import__("time").monotonic() + 5)
    sock.sendall(b"appdata/count\0" + b"\0" * 100)  # half a tar header, then the line goes dead
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    t.join(10)
    assert errors.get("msg", "").startswith("The volume stream was cut on host "), errors
    tclient.api.start.assert_not_called()


def test_failure_after_stop_reports_source_stopped(run_module, client, tmp_path):
    """The target listens, the source stops, then the stream breaks: the result says the source stopped."""
    import socket
    src_mp = tmp_path / "src"
    src_mp.mkdir()
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def accept_and_drop():
        conn, _ = srv.accept()
        conn.close()  # a receiver that dies before it confirms
    t = threading.Thread(target=accept_and_drop)
    t.start()
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, {"role": "source", "name": "app", "transfer": "nc", "port": port,
                                        "peer_address": "127.0.0.1", "workdir": str(tmp_path), "wait_timeout": 5})
    t.join(5)
    srv.close()
    assert exc.value.result["source_stopped"] is True
    assert "stop" in exc.value.result["durations"]
    client.api.stop.assert_called_once_with(SRC_ID, timeout=2)
