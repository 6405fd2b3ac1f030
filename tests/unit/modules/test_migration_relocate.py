"""migration_relocate: both halves over real loopback sockets (the authenticated stream), with mocked Docker clients.

The target half runs in a thread through relocation.relocate_target (its own mocked client); the
source half runs the module's main() (module args are process-global, so only one main() at a time).
"""
import threading
from unittest import mock

import pytest
from ansible.module_utils import basic

from ansible_collections.mec.migration.plugins.module_utils import relocation, transport
from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C
from ansible_collections.mec.migration.plugins.modules import migration_relocate
from .conftest import AnsibleFailJson, inspect_container

SRC_ID, DST_ID = "a" * 64, "b" * 64
SECRET = "5e" * 32


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
    # the states in turn; the last one stays (the settle check after the start reads it again)
    c.api.inspect_container.side_effect = lambda _id: inspect_container(
        cid=DST_ID, running=states.pop(0) if len(states) > 1 else states[0], mounts=_volume(dst_mp))
    return c


def _target_thread(tclient, port, out, checkpoint=None, secret=SECRET, timeout=10):
    def run_target():
        try:
            out["result"] = relocation.relocate_target(mock.MagicMock(), tclient, "app", "stream", port=port,
                                                       timeout=timeout, listen_address="127.0.0.1",
                                                       source_address="127.0.0.1", secret=secret, run_id="run1",
                                                       checkpoint=checkpoint)
        except Exception as exc:  # reported by the assertions of the test
            out["error"] = exc
    t = threading.Thread(target=run_target)
    t.start()
    return t


def _source_args(tmp_path, port, **extra):
    args = {"role": "source", "name": "app", "transfer": "stream", "port": port, "peer_address": "127.0.0.1",
            "workdir": str(tmp_path), "stop_timeout": 1, "secret": SECRET, "run_id": "run1"}
    args.update(extra)
    return args


def test_stream_relocation_moves_volume_and_reports_times(run_module, client, tmp_path):
    src_mp, dst_mp = tmp_path / "src", tmp_path / "dst"
    src_mp.mkdir()
    dst_mp.mkdir()
    (src_mp / "count").write_text("1234")
    (dst_mp / "stale").write_text("from an earlier run")
    source = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    source["HostConfig"]["RestartPolicy"] = {"Name": "always", "MaximumRetryCount": 0}
    client.api.inspect_container.return_value = source
    port = _free_port()
    tclient = _target_client(dst_mp, [False, True])
    target = {}
    t = _target_thread(tclient, port, target)
    res = run_module(migration_relocate, _source_args(tmp_path, port))
    t.join(10)
    assert "error" not in target, target.get("error")
    # the restart policy is cleared before the stop, so that the engine does not bring the source back
    assert client.api.method_calls.index(mock.call.update_container(
        SRC_ID, restart_policy={"Name": "no", "MaximumRetryCount": 0})) < \
        client.api.method_calls.index(mock.call.stop(SRC_ID, timeout=1))
    assert res["restart_policy_cleared"] == {"Name": "always", "MaximumRetryCount": 0}
    tclient.api.start.assert_called_once_with(DST_ID)
    assert sorted(p.name for p in dst_mp.iterdir()) == ["count"]
    assert (dst_mp / "count").read_text() == "1234"
    assert res["changed"] is True and res["source_stopped"] is True and res["target_answer"] == "received"
    assert set(res["durations"]) == {"stop", "transfer"}
    assert res["sizes"]["volume"] == 4 and res["sizes"]["stream"] >= 1024
    tres = target["result"]
    assert set(tres["durations"]) == {"wait", "receive", "start"}
    assert tres["running_at"] >= res["stopped_at"]


def test_stream_relocation_sends_only_the_changed_pages_of_the_final_checkpoint(run_module, client, tmp_path):
    """m3: the target holds the pre-relocation checkpoint in its container's checkpoint directory; the source
    sends the final one as its delta, and the target ends with exactly the final checkpoint's files."""
    src_mp, dst_mp = tmp_path / "src", tmp_path / "dst"
    src_mp.mkdir()
    dst_mp.mkdir()
    (src_mp / "count").write_text("7")
    pre = tmp_path / "pre"
    pre.mkdir()
    pages = bytes(range(256)) * 16 * 64  # 64 pages of 4 KiB
    (pre / "pages-1.img").write_bytes(pages)
    (pre / "core-1.img").write_bytes(b"core before")
    (pre / "only-in-pre.img").write_bytes(b"gone at the final dump")
    final_pages = bytearray(pages)
    final_pages[5 * 4096 + 17] ^= 0xFF       # one changed page
    final_pages += b"\x01" * 4096           # one more page
    client.info.return_value = {"DockerRootDir": str(tmp_path / "src-docker")}
    src_ck = tmp_path / "src-docker" / "containers" / SRC_ID / "checkpoints" / "run1-final"

    def final_dump(url, data=None):
        src_ck.mkdir(parents=True)
        (src_ck / "pages-1.img").write_bytes(bytes(final_pages))
        (src_ck / "core-1.img").write_bytes(b"core after, longer")
    client.api._post_json.side_effect = final_dump
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    tclient = _target_client(dst_mp, [False, True])
    tclient.info.return_value = {"DockerRootDir": str(tmp_path / "dst-docker")}
    tclient.api._url.side_effect = lambda path, *args: "http+docker://t" + path.format(*args)
    dst_ck = tmp_path / "dst-docker" / "containers" / DST_ID / "checkpoints" / "run1-final"
    dst_ck.mkdir(parents=True)
    for p in pre.iterdir():
        (dst_ck / p.name).write_bytes(p.read_bytes())
    port = _free_port()
    target = {}
    t = _target_thread(tclient, port, target, checkpoint="run1-final")
    res = run_module(migration_relocate, _source_args(tmp_path, port, checkpoint="run1-final",
                                                      base_checkpoint_dir=str(pre)))
    t.join(10)
    assert "error" not in target, target.get("error")
    assert sorted(p.name for p in dst_ck.iterdir()) == ["core-1.img", "pages-1.img"]
    assert (dst_ck / "pages-1.img").read_bytes() == bytes(final_pages)
    assert (dst_ck / "core-1.img").read_bytes() == b"core after, longer"
    # two changed pages of 65 and the small file: far less than the 266 KiB checkpoint
    assert res["sizes"]["checkpoint_delta"] == 2 * 4096 + len(b"core after, longer")
    assert res["sizes"]["checkpoint_final"] == len(final_pages) + len(b"core after, longer")
    assert res["checkpoint_via"] == "engine" and res["checkpoint_path"] == str(src_ck)
    client.api.stop.assert_not_called()  # the final checkpoint stops the container
    tclient.api._post.assert_called_once_with("http+docker://t/containers/%s/start" % DST_ID,
                                              params={"checkpoint": "run1-final"})
    assert target["result"]["checkpoint_delta"] == {"files": 2, "literal_bytes": res["sizes"]["checkpoint_delta"]}


def test_changed_pre_checkpoint_on_the_target_is_refused(run_module, client, tmp_path):
    """A target whose copy of the pre-relocation checkpoint differs from the source's ends with files that do
    not match the source's SHA-256: it refuses, and does not start."""
    src_mp, dst_mp = tmp_path / "src", tmp_path / "dst"
    src_mp.mkdir()
    dst_mp.mkdir()
    pre = tmp_path / "pre"
    pre.mkdir()
    (pre / "pages-1.img").write_bytes(b"\0" * 8192)
    client.info.return_value = {"DockerRootDir": str(tmp_path / "src-docker")}
    src_ck = tmp_path / "src-docker" / "containers" / SRC_ID / "checkpoints" / "fin"
    client.api._post_json.side_effect = lambda url, data=None: (src_ck.mkdir(parents=True),
                                                                (src_ck / "pages-1.img").write_bytes(b"\0" * 8192))
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    tclient = _target_client(dst_mp, [False])
    tclient.info.return_value = {"DockerRootDir": str(tmp_path / "dst-docker")}
    dst_ck = tmp_path / "dst-docker" / "containers" / DST_ID / "checkpoints" / "fin"
    dst_ck.mkdir(parents=True)
    (dst_ck / "pages-1.img").write_bytes(b"\0" * 4096 + b"X" * 4096)  # corrupted copy
    port = _free_port()
    target = {}
    t = _target_thread(tclient, port, target, checkpoint="fin")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, _source_args(tmp_path, port, checkpoint="fin", base_checkpoint_dir=str(pre)))
    t.join(10)
    assert "does not match the source's" in exc.value.result["msg"]
    assert exc.value.result["source_stopped"] is True
    assert "does not match the source's" in target["error"].msg
    tclient.api._post.assert_not_called()


def _source_after_a_first_peer(run_module, client, tmp_path, greeting):
    """A peer connects to the target's receiver first and sends ``greeting``, then the source runs; the peer closes
    after the source's run. (source result, target dict, the target's volume folder)."""
    import socket
    src_mp, dst_mp = tmp_path / "src", tmp_path / "dst"
    src_mp.mkdir()
    dst_mp.mkdir()
    (src_mp / "count").write_text("1")
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    port = _free_port()
    tclient = _target_client(dst_mp, [False, True])
    target = {}
    t = _target_thread(tclient, port, target)
    deadline = __import__("time").monotonic() + 5
    while True:
        try:
            peer = socket.create_connection(("127.0.0.1", port), timeout=2)
            break
        except OSError:
            assert __import__("time").monotonic() < deadline
    peer.sendall(greeting)
    try:
        res = run_module(migration_relocate, _source_args(tmp_path, port))
        t.join(10)
    finally:
        peer.close()
    assert "error" not in target, target.get("error")
    return res, target, dst_mp


def test_foreign_peer_is_dropped_and_the_source_still_gets_through(run_module, client, tmp_path):
    # a peer that does not know the secret connects first and sends a tar of its own
    res, target, dst_mp = _source_after_a_first_peer(run_module, client, tmp_path, b"MECSTRM1" + b"\0" * 200)
    assert res["target_answer"] == "received"
    assert len(target["result"]["rejected_peers"]) == 1
    assert (dst_mp / "count").read_text() == "1"


def test_a_peer_still_in_its_handshake_when_the_source_gets_through_is_listed(run_module, client, tmp_path):
    """A peer that connected first and then says nothing more is still mid-handshake when the source's stream is
    accepted: it is dropped and listed too (before, such a peer went unrecorded, and the foreign-peer test above
    depended on which handshake ended first)."""
    res, target, _dst = _source_after_a_first_peer(run_module, client, tmp_path, b"MECS")  # a greeting's start
    assert res["target_answer"] == "received"
    assert [reason for _address, reason in target["result"]["rejected_peers"]] == [
        "its handshake had not ended when the wait did"]


def test_wrong_secret_is_refused_before_the_stop(run_module, client, tmp_path):
    src_mp, dst_mp = tmp_path / "src", tmp_path / "dst"
    src_mp.mkdir()
    dst_mp.mkdir()
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    port = _free_port()
    tclient = _target_client(dst_mp, [False])
    target = {}
    t = _target_thread(tclient, port, target, secret="7a" * 32, timeout=3)
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, _source_args(tmp_path, port, wait_timeout=3))
    t.join(10)
    assert "did not prove that it knows this run's secret" in exc.value.result["msg"]
    assert exc.value.result["source_stopped"] is False
    client.api.stop.assert_not_called()
    tclient.api.start.assert_not_called()


def test_nc_is_a_deprecated_alias_of_stream(run_module, client, tmp_path):
    with mock.patch.object(basic.AnsibleModule, "deprecate") as deprecate, pytest.raises(AnsibleFailJson):
        run_module(migration_relocate, _source_args(tmp_path, _free_port(), transfer="nc", wait_timeout=1))
    assert "transfer=nc is deprecated" in deprecate.call_args.args[0]


@pytest.mark.parametrize("args, message", [
    ({"secret": "abc"}, "The stream secret must be 32 random bytes"),
    ({"run_id": None}, "transfer=stream needs run_id"),
    ({"checkpoint": "fin"}, "needs base_checkpoint_dir"),
    ({"role": "target", "listen_address": None}, "needs listen_address"),
])
def test_bad_stream_arguments_are_refused_before_any_call(run_module, client, tmp_path, args, message):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, _source_args(tmp_path, 1, **args))
    assert message in exc.value.result["msg"]
    client.api.inspect_container.assert_not_called()


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
        run_module(migration_relocate, _source_args(tmp_path, _free_port(), wait_timeout=1))
    assert "Could not open the authenticated volume stream" in exc.value.result["msg"]
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


def test_receiver_that_dies_after_the_stop_reports_source_stopped(run_module, client, tmp_path):
    """The target accepts the stream, the source stops, then the receiver dies before it confirms: the
    source's result says it stopped (the playbook rolls back)."""
    src_mp = tmp_path / "src"
    src_mp.mkdir()
    (src_mp / "f").write_text("x")
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    port = _free_port()
    receiver = transport.StreamReceiver(SECRET, "run1", "127.0.0.1", port, "127.0.0.1")
    receiver.listen()

    def accept_and_die():
        reader = receiver.accept_authenticated(__import__("time").monotonic() + 5)
        reader.wait_for_data()
        receiver.conn.close()  # no acknowledgement
    t = threading.Thread(target=accept_and_die)
    t.start()
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, _source_args(tmp_path, port, wait_timeout=5))
    t.join(5)
    receiver.close()
    assert exc.value.result["source_stopped"] is True
    assert "stop" in exc.value.result["durations"]
    client.api.stop.assert_called_once_with(SRC_ID, timeout=1)


def test_the_relocation_journals_itself_before_it_touches_the_app(run_module, client, tmp_path):
    from ansible_collections.mec.migration.plugins.module_utils import journal as jr
    root = tmp_path / "state"
    # no journal of the run on this host: refused before the engine is asked
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(migration_relocate, _source_args(tmp_path, 1, journal_root=str(root)))
    assert "has no journal here" in exc.value.result["msg"]
    client.api.inspect_container.assert_not_called()
    # with it, the phase relocation is written first (the target never listens: the source fails, still running)
    jr.begin(str(root), "run1", "app", {}, [], "h")
    src_mp = tmp_path / "src"
    src_mp.mkdir()
    client.api.inspect_container.return_value = inspect_container(cid=SRC_ID, running=True, mounts=_volume(src_mp))
    with pytest.raises(AnsibleFailJson):
        run_module(migration_relocate, _source_args(tmp_path, _free_port(), wait_timeout=1, journal_root=str(root)))
    journal = jr.read_journal(str(root), "run1")
    assert journal["phase"] == "relocation"
    client.api.stop.assert_not_called()
