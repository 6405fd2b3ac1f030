from docker.errors import NotFound

from ansible_collections.mec.migration.plugins.modules import image_import
from .conftest import inspect_image

SOURCE_CFG = {"Cmd": ["/app/run"], "Entrypoint": ["/bin/sh"], "Env": ["PATH=/bin", "A=1"], "WorkingDir": "/app",
              "User": "1000", "ExposedPorts": {"80/tcp": {}}, "Labels": {"x": "y"}}


def test_import_with_changes_reports_lost_config(run_module, client, tmp_path):
    src = tmp_path / "image.tar"
    src.write_bytes(b"tar")
    imported = inspect_image(cid="sha256:new", size=77, Cmd=["/app/run"], Entrypoint=None, Env=None,
                             WorkingDir="", User="")
    client.api.inspect_image.side_effect = [NotFound("none yet"), imported]
    client.api.import_image_from_file.return_value = '{"status":"sha256:new"}'
    result = run_module(image_import, {"src": str(src), "image": "mec-migration/app:run1",
                                       "changes": ['CMD ["/app/run"]'], "source_image_config": SOURCE_CFG})
    client.api.import_image_from_file.assert_called_once_with(str(src), repository="mec-migration/app", tag="run1",
                                                              changes=['CMD ["/app/run"]'])
    assert result["changed"] is True
    assert result["lost_config"] == ["ENTRYPOINT", "ENV", "WORKDIR", "USER", "EXPOSE", "LABEL"]
    assert (result["image_id"], result["size"]) == ("sha256:new", 77)


def test_existing_image_is_not_imported_again(run_module, client, tmp_path):
    client.api.inspect_image.return_value = inspect_image(cid="sha256:old", **SOURCE_CFG)
    result = run_module(image_import, {"src": str(tmp_path / "x.tar"), "image": "mec-migration/app:run1",
                                       "source_image_config": SOURCE_CFG})
    client.api.import_image_from_file.assert_not_called()
    assert (result["changed"], result["lost_config"]) == (False, [])
