# Unit tests of fsutil.private_dir: the root-only folders (work root, state root, control sockets, CRIU build
# folder) are refused when someone else could own or swap them, before anything is written in them.
import os
import pwd
import stat

import pytest

from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, private_dir

NOBODY = pwd.getpwnam("nobody").pw_uid
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


def _mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_creates_missing_parents_with_0700(tmp_path):
    target = tmp_path / "a" / "b" / "work"
    old = os.umask(0o022)
    try:
        assert private_dir(str(target)) == str(target)
    finally:
        os.umask(old)
    for path in (tmp_path / "a", tmp_path / "a" / "b", target):
        assert path.is_dir() and not path.is_symlink()
        assert _mode(path) == 0o700
        assert os.lstat(path).st_uid == os.geteuid()


def test_an_existing_good_folder_is_accepted_and_kept(tmp_path):
    target = tmp_path / "work"
    target.mkdir(mode=0o700)
    (target / "keep").write_text("x")
    assert private_dir(str(target)) == str(target)
    assert (target / "keep").read_text() == "x"


def test_relative_path_comes_back_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert private_dir("rel") == str(tmp_path / "rel")


def test_a_symlink_is_refused_even_to_a_good_folder(tmp_path):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "work"
    link.symlink_to(real)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(link))
    msg = str(err.value)
    assert str(link) in msg and "a symlink" in msg and "remove it" in msg
    assert err.value.path == str(link)


@needs_root
def test_a_folder_owned_by_another_user_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "work"
    target.mkdir(mode=0o700)
    os.chown(target, NOBODY, -1)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(target))
    msg = str(err.value)
    assert str(target) in msg and "nobody" in msg and "uid %d" % NOBODY in msg
    assert "remove it" in msg and "fix its owner" in msg
    assert os.lstat(target).st_uid == NOBODY  # reported, not taken over


def test_mode_0777_is_refused_and_left_alone(tmp_path):
    target = tmp_path / "work"
    target.mkdir()
    os.chmod(target, 0o777)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(target))
    msg = str(err.value)
    assert str(target) in msg and "0777" in msg and "chmod 0700" in msg
    assert _mode(target) == 0o777


@pytest.mark.parametrize("mode", [0o770, 0o720, 0o707, 0o702, 0o1777])
def test_a_folder_others_may_write_to_is_refused(tmp_path, mode):
    target = tmp_path / "work"
    target.mkdir()
    os.chmod(target, mode)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(target))
    assert "writable by others" in str(err.value)
    assert _mode(target) == mode


@pytest.mark.parametrize("mode", [0o755, 0o750, 0o701, 0o704, 0o711])
def test_a_folder_of_ours_nobody_else_could_write_is_tightened(tmp_path, mode):
    # an earlier version made its folders 0755: nobody else could have put anything in them
    target = tmp_path / "work"
    target.mkdir()
    os.chmod(target, mode)
    assert private_dir(str(target)) == str(target)
    assert _mode(target) == 0o700


def test_a_regular_file_in_the_place_is_refused(tmp_path):
    target = tmp_path / "work"
    target.write_text("planted")
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(target))
    assert "a regular file" in str(err.value)


def test_without_create_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(tmp_path / "missing"), create=False)
    assert "does not exist" in str(err.value)
    assert not (tmp_path / "missing").exists()


@needs_root
def test_a_parent_owned_by_another_user_is_refused(tmp_path):
    parent = tmp_path / "state"
    parent.mkdir(mode=0o755)
    os.chown(parent, NOBODY, -1)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(parent / "work"))
    assert str(parent) in str(err.value) and "nobody" in str(err.value)


def test_a_parent_writable_by_others_without_sticky_bit_is_refused(tmp_path):
    parent = tmp_path / "shared"
    parent.mkdir()
    os.chmod(parent, 0o777)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(parent / "work"))
    assert str(parent) in str(err.value) and "go-w" in str(err.value)


def test_a_sticky_world_writable_parent_is_fine(tmp_path):
    parent = tmp_path / "tmp"
    parent.mkdir()
    os.chmod(parent, 0o1777)
    assert private_dir(str(parent / "work")) == str(parent / "work")


@needs_root
def test_a_parent_link_owned_by_another_user_is_refused(tmp_path):
    # /tmp-like sticky folder: the link's owner can delete it and point it elsewhere at any time
    sticky = tmp_path / "tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = sticky / "state"
    link.symlink_to(real)
    os.lchown(link, NOBODY, -1)
    with pytest.raises(PrivateDirError) as err:
        private_dir(str(link / "work"))
    assert str(link) in str(err.value)
