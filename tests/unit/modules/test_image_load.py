from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.modules import image_load
from .conftest import AnsibleFailJson, inspect_image


def test_load_reports_loaded_references(run_module, client, tmp_path):
    src = tmp_path / "image.tar"
    src.write_bytes(b"0123456789")
    client.api.inspect_image.side_effect = NotFound("none")
    client.api.load_image.return_value = iter([{"stream": "Loaded image: mec-migration/app:run1\n"}])
    result = run_module(image_load, {"src": str(src), "image": "mec-migration/app:run1"})
    assert client.api.load_image.call_count == 1
    assert client.api.load_image.call_args[0][0].name == str(src)
    assert (result["changed"], result["images"], result["size"]) == (True, ["mec-migration/app:run1"], 10)


def test_load_error_fails(run_module, client, tmp_path):
    src = tmp_path / "image.tar"
    src.write_bytes(b"bad")
    client.api.load_image.return_value = iter([{"error": "unexpected EOF"}])
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_load, {"src": str(src)})
    assert "docker load of %s failed" % src in exc.value.result["msg"]
    assert "unexpected EOF" in exc.value.result["msg"]


def test_present_image_is_not_loaded(run_module, client, tmp_path):
    client.api.inspect_image.return_value = inspect_image()
    result = run_module(image_load, {"src": str(tmp_path / "none.tar"), "image": "mec-migration/app:run1"})
    client.api.load_image.assert_not_called()
    assert result["changed"] is False
