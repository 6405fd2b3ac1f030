"""Root's SSH ControlMaster sockets live in a private folder (transport.ssh_base), checked on every use.

A folder someone else made first (the attack on the former /var/tmp/mec-migration), a folder opened to others,
or a link in its place stops the hop before ssh runs."""
import os
import stat

import pytest

from ansible_collections.mec.migration.plugins.module_utils import transport
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

NOBODY = 65534


class Module:
    """Just enough of AnsibleModule for ssh_command: records the commands it would run."""

    def __init__(self):
        self.commands = []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, argv, environ_update=None):
        self.commands.append(argv)
        return 0, "", ""


def options(folder):
    return ["-o", "BatchMode=yes", "-o", "ControlMaster=auto", "-o", "ControlPath=%s/%%C" % folder]


def test_the_default_sockets_are_in_a_root_only_folder_under_run():
    assert "ControlPath=/run/mec-migration/ssh/%C" in transport.DEFAULT_SSH_OPTIONS
    assert transport.control_dirs(transport.DEFAULT_SSH_OPTIONS) == ["/run/mec-migration/ssh"]
    assert not any("/var/tmp" in o or "/tmp/" in o for o in transport.DEFAULT_SSH_OPTIONS)


def test_the_folder_is_made_private(tmp_path):
    folder = tmp_path / "run" / "ssh"
    module = Module()
    transport.ssh_command(module, "192.0.2.12", ["true"], ssh_options=options(folder))
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    assert len(module.commands) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the folder to another user")
def test_a_folder_someone_else_made_first_stops_the_hop(tmp_path):
    folder = tmp_path / "ssh"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)  # created by a local user before the first run
    module = Module()
    with pytest.raises(MigrationError, match="SSH control socket folder is not safe") as exc:
        transport.ssh_command(module, "192.0.2.12", ["true"], ssh_options=options(folder))
    assert str(folder) in str(exc.value) and "uid %d" % NOBODY in str(exc.value)
    assert module.commands == []  # ssh never ran
    assert os.lstat(folder).st_uid == NOBODY  # nothing was changed in shape


def test_the_folder_is_checked_on_every_use(tmp_path):
    folder = tmp_path / "ssh"
    module = Module()
    transport.ssh_command(module, "192.0.2.12", ["true"], ssh_options=options(folder))
    os.chmod(folder, 0o777)  # opened to others after the first hop
    with pytest.raises(MigrationError, match="chmod 0700"):
        transport.ssh_command(module, "192.0.2.12", ["true"], ssh_options=options(folder))
    assert len(module.commands) == 1


def test_a_link_in_place_of_the_folder_stops_the_hop(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder = tmp_path / "ssh"
    folder.symlink_to(elsewhere)
    with pytest.raises(MigrationError, match="symlink"):
        transport.ssh_base(Module(), options(folder))


def test_control_path_forms(tmp_path):
    assert transport.control_dirs(["-oControlPath=%s/s-%%r" % tmp_path]) == [str(tmp_path)]
    assert transport.control_dirs(["-o", "controlpath = /x/y/sock"]) == ["/x/y"]
    assert transport.control_dirs(["-o", "ControlPath /x/y/%C"]) == ["/x/y"]
    assert transport.control_dirs(["-o", "ControlPath=none", "-o", "BatchMode=yes"]) == []
    for bad in ("ControlPath=/tmp/%u/sock", "ControlPath=relative/sock"):
        with pytest.raises(MigrationError, match="fixed absolute path"):
            transport.ssh_base(Module(), ["-o", bad])
