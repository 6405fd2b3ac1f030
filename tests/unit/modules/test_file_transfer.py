import pytest

from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C
from ansible_collections.mec.migration.plugins.module_utils.transport import DEFAULT_SSH_OPTIONS
from ansible_collections.mec.migration.plugins.modules import file_transfer
from .conftest import AnsibleFailJson

RSYNC_STATS = """
Number of files: 12 (reg: 11, dir: 1)
Number of regular files transferred: 3
Total file size: 13,631,488 bytes
Total transferred file size: 5,242,880 bytes
Literal data: 2,903,040 bytes
Matched data: 2,339,840 bytes
Total bytes sent: 2,911,211
Total bytes received: 1,337
"""


def test_rsync_delta_reports_stats(run_module, run_command, tmp_path):
    src = tmp_path / "ck"
    src.mkdir()
    run_command.return_value = (0, RSYNC_STATS, "")
    res = run_module(file_transfer, {"src": str(src) + "/", "dest_host": "172.30.77.12", "dest": "/x/ck/",
                                     "method": "rsync"})
    run_command.assert_called_once_with(
        ["/usr/bin/rsync", "-a", "--stats", "-e", " ".join(["/usr/bin/ssh"] + DEFAULT_SSH_OPTIONS), "--delete",
         str(src) + "/", "root@172.30.77.12:/x/ck/"], environ_update=LANG_C)
    assert res["stats"] == {"files_transferred": 3, "total_file_size": 13631488, "transferred_file_size": 5242880,
                            "literal_data": 2903040, "matched_data": 2339840, "bytes_sent": 2911211,
                            "bytes_received": 1337}
    assert (res["changed"], res["transferred_bytes"]) == (True, 2911211)


def test_rsync_nothing_to_send_is_unchanged(run_module, run_command, tmp_path):
    run_command.return_value = (0, RSYNC_STATS.replace("transferred: 3", "transferred: 0"), "")
    res = run_module(file_transfer, {"src": str(tmp_path), "dest_host": "h", "dest": "/x", "method": "rsync"})
    assert res["changed"] is False


def test_scp_argv(run_module, run_command, tmp_path):
    f = tmp_path / "image.tar"
    f.write_bytes(b"z" * 100)
    res = run_module(file_transfer, {"src": str(f), "dest_host": "172.30.77.12", "dest": "/w/image.tar",
                                     "ssh_options": ["-o", "BatchMode=yes"]})
    run_command.assert_called_once_with(["/usr/bin/scp", "-q", "-r", "-o", "BatchMode=yes", str(f),
                                         "root@172.30.77.12:/w/image.tar"], environ_update=LANG_C)
    assert (res["changed"], res["transferred_bytes"]) == (True, 100)


def test_failed_copy_names_host_and_error(run_module, run_command, tmp_path):
    f = tmp_path / "a"
    f.write_text("a")
    run_command.return_value = (255, "", "ssh: connect to host 172.30.77.12 port 22: Connection refused")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(file_transfer, {"src": str(f), "dest_host": "172.30.77.12", "dest": "/w/a"})
    assert "scp of %s to 172.30.77.12 failed" % f in exc.value.result["msg"]
    assert "Connection refused" in exc.value.result["msg"]
    assert exc.value.result["rc"] == 255
