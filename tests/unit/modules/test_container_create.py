from docker.errors import NotFound
import pytest

from ansible_collections.mec.migration.plugins.modules import container_create
from .conftest import inspect_container, inspect_image

RUN_CONFIG = {
    "name": "app", "image": "mec/app:1",
    "overrides": {"env": ["MODE=x"], "labels": {"role": "edge"}, "hostname": "gw"},
    "ports": {"8080/tcp": [{"HostIp": "", "HostPort": "18080"}]},
    "mounts": [{"type": "volume", "name": "appdata", "destination": "/data", "rw": True, "driver": "local"},
               {"type": "bind", "source": "/etc/mec", "destination": "/etc/mec", "rw": False}],
    "tmpfs": {}, "network_mode": "mec",
    "networks": {"mec": {"aliases": ["gateway-app"], "ipv4_address": None},
                 "extra": {"aliases": ["x"], "ipv4_address": None}},
    "network_drivers": {"mec": {"driver": "bridge", "subnets": [], "labels": {}},
                        "extra": {"driver": "bridge", "subnets": [], "labels": {}}},
    "restart_policy": {"Name": "always", "MaximumRetryCount": 0},
}


def test_creates_from_run_config(run_module, client):
    client.api.inspect_container.side_effect = NotFound("absent")
    client.api.inspect_image.return_value = inspect_image()
    client.api.networks.side_effect = lambda names: [{"Name": "mec"}] if names == ["mec"] else []
    client.api.volumes.return_value = {"Volumes": None}
    client.api.create_host_config.return_value = {"hc": 1}
    client.api.create_endpoint_config.return_value = {"ep": 1}
    client.api.create_networking_config.return_value = {"nc": 1}
    client.api.create_container.return_value = {"Id": "e" * 64}
    res = run_module(container_create, {"run_config": RUN_CONFIG, "image": "mec-migration/app:run1"})
    client.api.create_network.assert_called_once_with("extra", driver="bridge", ipam=None, labels=None)
    client.api.create_volume.assert_called_once_with(name="appdata", driver="local")
    client.api.create_host_config.assert_called_once_with(
        binds=["appdata:/data:rw", "/etc/mec:/etc/mec:ro"], port_bindings={"8080/tcp": [("", "18080")]},
        restart_policy={"Name": "always", "MaximumRetryCount": 0}, network_mode="mec", tmpfs=None)
    client.api.create_endpoint_config.assert_called_once_with(aliases=["gateway-app"], ipv4_address=None)
    client.api.create_container.assert_called_once_with(
        image="mec-migration/app:run1", name="app", environment=["MODE=x"], hostname="gw",
        labels={"role": "edge"}, ports=[("8080", "tcp")], volumes=["/data", "/etc/mec"],
        host_config={"hc": 1}, networking_config={"nc": 1})
    client.api.connect_container_to_network.assert_called_once_with("e" * 64, "extra", aliases=["x"],
                                                                    ipv4_address=None)
    client.api.start.assert_not_called()
    assert (res["changed"], res["id"], res["created_networks"]) == (True, "e" * 64, ["extra"])
    assert res["checkpoint_dir"] == "/var/lib/docker/containers/%s/checkpoints" % ("e" * 64)


def test_start_command_replaces_command(run_module, client):
    client.api.inspect_container.side_effect = NotFound("absent")
    client.api.inspect_image.return_value = inspect_image()
    client.api.create_container.return_value = {"Id": "f" * 64}
    cfg = dict(RUN_CONFIG, networks={}, network_drivers={}, network_mode="default", mounts=[], ports={})
    run_module(container_create, {"run_config": cfg, "image": "imp:1", "start_command": ["/bin/sh", "/run.sh"],
                                  "start": True})
    assert client.api.create_container.call_args.kwargs["command"] == ["/bin/sh", "/run.sh"]
    client.api.start.assert_called_once_with("f" * 64)


def test_existing_container_unchanged(run_module, client):
    client.api.inspect_container.return_value = inspect_container(cid="e" * 64)
    res = run_module(container_create, {"run_config": RUN_CONFIG, "image": "mec-migration/app:run1"})
    client.api.create_container.assert_not_called()
    assert (res["changed"], res["id"]) == (False, "e" * 64)


def test_load_archive_with_missing_layers_fails_before_anything_is_created(run_module, client, tmp_path):
    """load_archive: the target's load and create in one call; an archive whose left-out layers this engine does not
    hold fails naming them, nothing loaded, no container created."""
    from ansible_collections.mec.migration.plugins.module_utils import images
    from .conftest import AnsibleFailJson
    from .test_image_layers import Store, base_layer, commit_layer, loaded_client, trimmed_archive
    store = Store(tmp_path / "docker")
    store.add_image("mec-lab/base:bookworm", [base_layer()])
    store.add_image("app:run1", [base_layer(), commit_layer()])
    src = trimmed_archive(store, tmp_path)
    target = loaded_client(store, [], "app:run1")
    for name in ("images", "inspect_image", "load_image"):
        setattr(client.api, name, getattr(target.api, name))
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(container_create, {"run_config": {"name": "app"}, "image": "app:run1", "load_archive": src})
    base = images.chain_ids(store.images["mec-lab/base:bookworm"]["RootFS"]["Layers"])
    assert exc.value.result["missing_chain_ids"] == base and "Nothing was loaded" in exc.value.result["msg"]
    client.api.create_container.assert_not_called()
