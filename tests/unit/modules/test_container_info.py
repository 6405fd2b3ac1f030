from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.modules import container_info
from .conftest import inspect_container, inspect_image


def test_absent_container_reports_not_exists(run_module, client):
    client.api.inspect_container.side_effect = NotFound("no such container")
    result = run_module(container_info, {"name": "ghost"})
    assert result["changed"] is False
    assert result["exists"] is False
    assert result["container"] == {}
    assert result["engine"] == {"name": "docker", "version": "20.10.24", "experimental": True,
                                "docker_root_dir": "/var/lib/docker", "engine_id": "ENGINE1", "hostname": "host1"}


def test_run_config_splits_image_and_run_settings(run_module, client, tmp_path):
    (tmp_path / "count").write_text("12345")
    data = inspect_container(mounts=[{"Type": "volume", "Name": "appdata", "Source": str(tmp_path),
                                      "Destination": "/data", "RW": True, "Driver": "local"}])
    data["HostConfig"]["PortBindings"] = {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]}
    data["HostConfig"]["RestartPolicy"] = {"Name": "always", "MaximumRetryCount": 0}
    data["NetworkSettings"]["Networks"] = {"mec": {"Aliases": ["gateway-app", "c" * 12], "IPAMConfig": None}}
    client.api.inspect_container.return_value = data
    client.api.inspect_image.return_value = inspect_image(size=4096)
    client.api.inspect_network.return_value = {"Driver": "bridge", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]},
                                               "Labels": {}}
    client.api.containers.return_value = [{"SizeRw": 10, "SizeRootFs": 5000}]
    result = run_module(container_info, {"name": "app"})
    c = result["container"]
    assert c["overrides"] == {"env": ["MODE=x"]}  # PATH comes from the image, MODE from docker run
    assert c["ports"] == {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]}
    assert c["networks"] == {"mec": {"aliases": ["gateway-app"], "ipv4_address": None}}
    assert c["network_drivers"] == {"mec": {"driver": "bridge", "subnets": ["10.9.0.0/24"], "labels": {}}}
    assert c["restart_policy"] == {"Name": "always", "MaximumRetryCount": 0}
    assert c["mounts"] == [{"type": "volume", "name": "appdata", "destination": "/data", "rw": True,
                            "driver": "local"}]
    assert (c["size_rw"], c["size_root_fs"], c["image_size"]) == (10, 5000, 4096)
    assert c["volume_sizes"] == {"appdata": 5}
    client.api.containers.assert_called_once_with(all=True, size=True, filters={"id": "c" * 64})


def test_engine_unreachable_names_host(monkeypatch):
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.mec.migration.plugins.module_utils import docker_client
    from .conftest import AnsibleFailJson

    def boom(**kwargs):
        raise docker_client.DockerException("connection refused")
    monkeypatch.setattr(docker_client.docker, "from_env", boom)
    with patch_module_args({"name": "app"}):
        with pytest.raises(AnsibleFailJson) as exc:
            container_info.main()
    msg = exc.value.result["msg"]
    assert "not reachable" in msg and docker_client.hostname() in msg and "mec-dockerd-supervisor" in msg
    assert "Traceback" not in msg
    assert "Traceback" in exc.value.result["exception"]


def test_reads_the_journals_and_the_layers_in_the_same_call(run_module, client, tmp_path):
    from ansible_collections.mec.migration.plugins.module_utils import journal as jr
    jr.begin(str(tmp_path), "r0", "app", {}, [], "h")
    client.api.inspect_container.side_effect = NotFound("none")
    client.api.images.return_value = ["sha256:" + "1" * 64]
    client.api.inspect_image.return_value = {"RootFS": {"Layers": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]}}
    result = run_module(container_info, {"name": "app", "journal_root": str(tmp_path), "chain_ids": True})
    assert result["lock"]["run_id"] == "r0" and [j["run_id"] for j in result["unfinished"]] == ["r0"]
    assert len(result["chain_ids"]) == 2 and "sha256:" + "a" * 64 in result["chain_ids"]


def test_only_the_unfinished_journals_when_asked(run_module, client, tmp_path):
    from ansible_collections.mec.migration.plugins.module_utils import journal as jr
    jr.begin(str(tmp_path), "r0", "app", {}, [], "h")
    jr.finish(str(tmp_path), "r0", "app", "done")
    jr.begin(str(tmp_path), "r1", "app", {}, [], "h")
    client.api.inspect_container.side_effect = NotFound("none")
    every = run_module(container_info, {"name": "app", "journal_root": str(tmp_path)})
    assert sorted(j["run_id"] for j in every["journals"]) == ["r0", "r1"]
    few = run_module(container_info, {"name": "app", "journal_root": str(tmp_path), "journals": "unfinished"})
    assert [j["run_id"] for j in few["journals"]] == ["r1"] == [j["run_id"] for j in few["unfinished"]]
    assert few["lock"] == every["lock"] and few["lock"]["run_id"] == "r1"
