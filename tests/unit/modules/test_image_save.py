from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.modules import image_save
from .conftest import AnsibleFailJson, inspect_image


def test_save_writes_stream(run_module, client, tmp_path):
    client.api.inspect_image.return_value = inspect_image()
    client.api.get_image.return_value = iter([b"x" * 10, b"y" * 5])
    dest = tmp_path / "image.tar"
    result = run_module(image_save, {"image": "mec-migration/app:run1", "dest": str(dest)})
    client.api.get_image.assert_called_once_with("mec-migration/app:run1")
    assert dest.read_bytes() == b"x" * 10 + b"y" * 5
    assert (result["changed"], result["size"]) == (True, 15)


def test_check_mode_writes_nothing(run_module, client, tmp_path):
    client.api.inspect_image.return_value = inspect_image()
    dest = tmp_path / "image.tar"
    result = run_module(image_save, {"image": "i:1", "dest": str(dest), "_ansible_check_mode": True})
    client.api.get_image.assert_not_called()
    assert result["changed"] is True and not dest.exists()


def test_missing_image_fails(run_module, client, tmp_path):
    client.api.inspect_image.side_effect = NotFound("none")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_save, {"image": "i:1", "dest": str(tmp_path / "a.tar")})
    assert exc.value.result["msg"] == "Image i:1 does not exist."
