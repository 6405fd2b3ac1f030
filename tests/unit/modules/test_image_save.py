"""image_save: options checked before any work, the archive written by write_image_archive, idempotence."""
import json
import os
import tarfile
from unittest import mock

from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.module_utils import images
from ansible_collections.mec.migration.plugins.modules import image_save
from .conftest import AnsibleFailJson
from .test_image_layers import Store, base_layer, commit_layer


@pytest.fixture
def store(tmp_path, client):
    s = Store(tmp_path / "docker")
    s.add_image("mec-lab/base:bookworm", [base_layer()])
    s.add_image("app:run1", [base_layer(), commit_layer()])
    real = s.client()
    client.info.side_effect = real.info
    client.api.inspect_image.side_effect = real.api.inspect_image
    client.api.get_image.side_effect = real.api.get_image
    with mock.patch.object(images, "_local_engine", return_value=True):
        yield s


def test_save_skips_the_targets_layers(run_module, client, store, tmp_path):
    dest = tmp_path / "image.tar"
    base = images.chain_ids(store.images["mec-lab/base:bookworm"]["RootFS"]["Layers"])
    result = run_module(image_save, {"image": "app:run1", "dest": str(dest), "skip_chain_ids": base})
    assert (result["changed"], result["method"], result["layers_sent"], result["layers_skipped"]) == \
        (True, "layerdb", 1, 1)
    assert result["bytes_written"] == dest.stat().st_size and result["image_id"] == store.images["app:run1"]["Id"]
    with tarfile.open(str(dest)) as tar:
        names = tar.getnames()
        layers = json.loads(tar.extractfile("manifest.json").read())[0]["Layers"]
    assert layers[0] not in names and layers[1] in names
    client.api.get_image.assert_not_called()


def test_save_without_skip_writes_every_layer(run_module, client, store, tmp_path):
    dest = tmp_path / "image.tar"
    result = run_module(image_save, {"image": "app:run1", "dest": str(dest), "method": "save"})
    client.api.get_image.assert_called_once_with("app:run1")
    assert (result["method"], result["layers_sent"], result["layers_skipped"], result["bytes_skipped"]) == \
        ("save", 2, 0, 0)


def test_bad_chain_id_fails_before_any_work(run_module, client, tmp_path):
    dest = tmp_path / "image.tar"
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_save, {"image": "app:run1", "dest": str(dest), "skip_chain_ids": ["app:run1"]})
    assert "'app:run1' is not a chain ID" in exc.value.result["msg"]
    client.api.inspect_image.assert_not_called()
    assert not dest.exists()


def test_existing_archive_is_kept(run_module, client, store, tmp_path):
    dest = tmp_path / "image.tar"
    dest.write_bytes(b"x" * 20)
    result = run_module(image_save, {"image": "app:run1", "dest": str(dest)})
    assert (result["changed"], result["size"]) == (False, 20)
    assert dest.read_bytes() == b"x" * 20


def test_check_mode_writes_nothing(run_module, client, store, tmp_path):
    dest = tmp_path / "image.tar"
    result = run_module(image_save, {"image": "app:run1", "dest": str(dest), "_ansible_check_mode": True})
    client.api.get_image.assert_not_called()
    assert result["changed"] is True and not dest.exists() and not os.path.exists(str(dest) + ".part")


def test_missing_image_fails(run_module, client, tmp_path):
    client.api.inspect_image.side_effect = NotFound("none")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_save, {"image": "i:1", "dest": str(tmp_path / "a.tar")})
    assert exc.value.result["msg"] == "Image i:1 does not exist."
