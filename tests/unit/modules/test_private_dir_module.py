"""The private_dir module: makes the folder 0700, fails (naming path, owner, mode) on a folder someone else owns."""
import os
import pwd

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.mec.migration.plugins.modules import private_dir as mod

from .conftest import AnsibleExitJson, AnsibleFailJson


def _run(args):
    with patch_module_args(args):
        mod.main()


def test_makes_the_folder_then_leaves_it(tmp_path):
    target = tmp_path / "build" / "criu"
    with pytest.raises(AnsibleExitJson) as res:
        _run({"path": str(target)})
    assert res.value.result["changed"] is True and res.value.result["mode"] == "0700"
    assert oct(os.lstat(target).st_mode & 0o777) == "0o700"
    with pytest.raises(AnsibleExitJson) as res:
        _run({"path": str(target)})
    assert res.value.result["changed"] is False


def test_check_mode_makes_nothing(tmp_path):
    target = tmp_path / "criu"
    with pytest.raises(AnsibleExitJson) as res:
        _run({"path": str(target), "_ansible_check_mode": True})
    assert res.value.result["changed"] is True and not target.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_fails_on_a_folder_someone_else_made(tmp_path):
    target = tmp_path / "criu"
    target.mkdir(mode=0o700)
    os.chown(target, pwd.getpwnam("nobody").pw_uid, -1)
    with pytest.raises(AnsibleFailJson) as res:
        _run({"path": str(target)})
    msg = res.value.result["msg"]
    assert str(target) in msg and "nobody" in msg and "(host " in msg


def test_a_0755_folder_of_ours_is_tightened_and_reported(tmp_path):
    target = tmp_path / "cache"
    target.mkdir()
    os.chmod(target, 0o755)
    with pytest.raises(AnsibleExitJson) as res:
        _run({"path": str(target)})
    assert res.value.result["changed"] is True and res.value.result["mode"] == "0700"
