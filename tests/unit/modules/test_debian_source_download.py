import hashlib

import pytest

from ansible_collections.mec.migration.plugins.modules import debian_source_download as dsd
from .conftest import AnsibleFailJson


def test_upstream_version():
    assert dsd.upstream("4.1.1-1") == "4.1.1"
    assert dsd.upstream("1:2.0-3+deb12u1") == "2.0"
    assert dsd.upstream("7") == "7"


def test_verified_tarball_in_dest_is_not_fetched_again(run_module, run_command, tmp_path):
    tarball = tmp_path / "criu_4.1.1.orig.tar.xz"
    tarball.write_bytes(b"release")
    args = {"package": "criu", "version": "4.1.1-1", "suite": "trixie", "dest": str(tmp_path),
            "sha256": hashlib.sha256(b"release").hexdigest(), "mirror": "http://archive.example/debian"}
    result = run_module(dsd, args)
    run_command.assert_not_called()
    assert result == {"changed": False, "path": str(tarball), "mirror": "http://archive.example/debian"}


def test_wrong_checksum_fails_and_names_what_arrived(run_module, run_command, tmp_path):
    def fake_apt(argv, **kwargs):
        if "source" in argv:
            with open(kwargs["cwd"] + "/criu_4.1.1.orig.tar.xz", "wb") as handle:
                handle.write(b"tampered")
        return 0, "", ""
    run_command.side_effect = fake_apt
    args = {"package": "criu", "version": "4.1.1-1", "suite": "trixie", "dest": str(tmp_path / "d"),
            "sha256": hashlib.sha256(b"release").hexdigest(), "mirror": "http://archive.example/debian"}
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(dsd, args)
    assert "criu_4.1.1.orig.tar.xz" in exc.value.result["msg"]
    source_call = [c for c in run_command.call_args_list if "source" in c.args[0]][0].args[0]
    assert source_call[-3:] == ["source", "--download-only", "criu=4.1.1-1"]
    assert not (tmp_path / "d").exists()
