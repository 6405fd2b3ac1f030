"""image_load: the archive's own image decides idempotence (not the name), missing layers fail before a load."""
from unittest import mock

from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.module_utils import images
from ansible_collections.mec.migration.plugins.modules import image_load
from .conftest import AnsibleFailJson
from .test_image_layers import Store, base_layer, commit_layer, loaded_client, trimmed_archive


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "docker")
    s.add_image("mec-lab/base:bookworm", [base_layer()])
    s.add_image("app:run1", [base_layer(), commit_layer()])
    s.add_image("other:1", [base_layer(), commit_layer(b"7\n")])
    return s


def use(client, target):
    for name in ("images", "inspect_image", "load_image"):
        setattr(client.api, name, getattr(target.api, name))


def test_load_reports_the_layers(run_module, client, store, tmp_path):
    src = trimmed_archive(store, tmp_path)
    use(client, loaded_client(store, ["mec-lab/base:bookworm"], "app:run1"))
    result = run_module(image_load, {"src": src, "image": "app:run1"})
    assert client.api.load_image.call_args[0][0].name == src
    assert (result["changed"], result["images"], result["layers_loaded"], result["layers_present"]) == \
        (True, ["app:run1"], 1, 1)
    assert result["image_id"] == store.images["app:run1"]["Id"]


def test_a_different_image_under_the_same_name_is_replaced(run_module, client, store, tmp_path):
    src = trimmed_archive(store, tmp_path)
    target = loaded_client(store, ["mec-lab/base:bookworm"], "app:run1")
    target.api.inspect_image.side_effect = None
    answers = {"app:run1": store.images["other:1"]}       # the name points at another image before the load

    def inspect(ref):
        if ref in answers:
            return answers[ref]
        for img in store.images.values():
            if ref == img["Id"]:
                return img
        raise NotFound(ref)

    def load(fh):
        answers["app:run1"] = store.images["app:run1"]
        return iter([{"stream": "Loaded image: app:run1\n"}])
    target.api.inspect_image.side_effect = inspect
    target.api.load_image.side_effect = load
    use(client, target)
    result = run_module(image_load, {"src": src, "image": "app:run1"})
    assert result["changed"] is True and client.api.load_image.call_count == 1


def test_the_same_image_is_not_loaded_again(run_module, client, store, tmp_path):
    src = trimmed_archive(store, tmp_path)
    use(client, loaded_client(store, ["mec-lab/base:bookworm", "app:run1"], "app:run1"))
    result = run_module(image_load, {"src": src, "image": "app:run1"})
    client.api.load_image.assert_not_called()
    assert (result["changed"], result["image_id"]) == (False, store.images["app:run1"]["Id"])


def test_missing_layers_fail_before_the_load(run_module, client, store, tmp_path):
    src = trimmed_archive(store, tmp_path)
    use(client, loaded_client(store, [], "app:run1"))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_load, {"src": src, "image": "app:run1"})
    client.api.load_image.assert_not_called()
    base = images.chain_ids(store.images["mec-lab/base:bookworm"]["RootFS"]["Layers"])
    assert exc.value.result["missing_chain_ids"] == base
    assert "Nothing was loaded" in exc.value.result["msg"] and exc.value.result["host"]


def test_load_error_fails(run_module, client, store, tmp_path):
    src = trimmed_archive(store, tmp_path)
    use(client, loaded_client(store, ["mec-lab/base:bookworm"], "app:run1"))
    client.api.load_image = mock.MagicMock(return_value=iter([{"error": "unexpected EOF"}]))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_load, {"src": src})
    assert "docker load of %s failed" % src in exc.value.result["msg"]
    assert "unexpected EOF" in exc.value.result["msg"]


def test_not_an_archive_fails_clearly(run_module, client, tmp_path):
    src = tmp_path / "image.tar"
    src.write_bytes(b"\0" * 1024)
    client.api.inspect_image.side_effect = NotFound("none")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(image_load, {"src": str(src), "image": "app:run1"})
    assert "has no manifest.json" in exc.value.result["msg"]
    client.api.load_image.assert_not_called()


def test_present_image_without_archive_is_kept(run_module, client, store, tmp_path):
    use(client, loaded_client(store, ["app:run1"], "app:run1"))
    result = run_module(image_load, {"src": str(tmp_path / "none.tar"), "image": "app:run1"})
    client.api.load_image.assert_not_called()
    assert result["changed"] is False
