from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.modules import container_export
from .conftest import AnsibleFailJson, inspect_container


def test_exports_stream_to_file(run_module, client, tmp_path):
    client.api.inspect_container.return_value = inspect_container()
    client.api.export.return_value = iter([b"abc", b"defg"])
    dest = tmp_path / "image.tar"
    result = run_module(container_export, {"name": "app", "dest": str(dest)})
    client.api.export.assert_called_once_with("app")
    assert dest.read_bytes() == b"abcdefg"
    assert (result["changed"], result["size"], result["path"]) == (True, 7, str(dest))


def test_existing_tarball_is_kept(run_module, client, tmp_path):
    client.api.inspect_container.return_value = inspect_container()
    dest = tmp_path / "image.tar"
    dest.write_bytes(b"12345")
    result = run_module(container_export, {"name": "app", "dest": str(dest)})
    client.api.export.assert_not_called()
    assert (result["changed"], result["size"]) == (False, 5)


def test_unknown_container_fails(run_module, client, tmp_path):
    client.api.inspect_container.side_effect = NotFound("nope")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(container_export, {"name": "ghost", "dest": str(tmp_path / "x.tar")})
    assert "Container ghost does not exist" in exc.value.result["msg"]
    assert not (tmp_path / "x.tar").exists()
