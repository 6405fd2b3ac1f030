"""volume_archive and volume_restore: a real tar round trip between two directories."""
import os

from docker.errors import NotFound

from ansible_collections.mec.migration.plugins.modules import volume_archive, volume_restore


def test_archive_then_restore_round_trip(run_module, client, tmp_path):
    src_mp = tmp_path / "src"
    (src_mp / "sub").mkdir(parents=True)
    (src_mp / "count").write_text("41")
    (src_mp / "sub" / "log").write_text("a\nb\n")
    os.chmod(src_mp / "count", 0o640)
    dest_mp = tmp_path / "dest"
    dest_mp.mkdir()
    (dest_mp / "stale").write_text("old")
    archive = tmp_path / "vol.tar"

    client.api.inspect_volume.return_value = {"Name": "appdata", "Mountpoint": str(src_mp)}
    res = run_module(volume_archive, {"volume": "appdata", "dest": str(archive)})
    assert (res["changed"], res["volume_size"]) == (True, 6)
    assert res["size"] == archive.stat().st_size

    client.api.inspect_volume.reset_mock()
    client.api.inspect_volume.side_effect = [NotFound("no volume yet")] * 2
    client.api.create_volume.return_value = {"Name": "appdata", "Mountpoint": str(dest_mp)}
    res = run_module(volume_restore, {"volume": "appdata", "src": str(archive)})
    client.api.create_volume.assert_called_once_with(name="appdata")
    assert (res["changed"], res["created"], res["volume_size"]) == (True, True, 6)
    assert sorted(os.listdir(dest_mp)) == ["count", "sub"]  # the stale file is gone
    assert (dest_mp / "count").read_text() == "41"
    assert oct((dest_mp / "count").stat().st_mode & 0o777) == oct(0o640)


def test_restore_keeps_filled_volume_without_force(run_module, client, tmp_path):
    mp = tmp_path / "mp"
    mp.mkdir()
    (mp / "data").write_text("keep")
    archive = tmp_path / "vol.tar"
    archive.write_bytes(b"")
    client.api.inspect_volume.return_value = {"Mountpoint": str(mp)}
    res = run_module(volume_restore, {"volume": "appdata", "src": str(archive)})
    assert res["changed"] is False
    assert (mp / "data").read_text() == "keep"


def test_archive_kept_when_present(run_module, client, tmp_path):
    archive = tmp_path / "vol.tar"
    archive.write_bytes(b"x" * 3)
    client.api.inspect_volume.return_value = {"Mountpoint": str(tmp_path)}
    res = run_module(volume_archive, {"volume": "appdata", "dest": str(archive)})
    assert (res["changed"], res["size"]) == (False, 3)
