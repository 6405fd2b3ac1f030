"""service_container: main() with a mocked Docker client; the exact engine calls of each path."""
from unittest import mock

import pytest
from docker.errors import APIError, NotFound

from ansible_collections.mec.migration.plugins.module_utils import service_container as utils
from ansible_collections.mec.migration.plugins.modules import service_container
from .conftest import AnsibleFailJson, inspect_container

IMAGE_ID = "sha256:" + "1" * 64
ARGS = {
    "name": "a2", "image": "mec-apps/a2:latest", "command": ["--verbose"],
    "env": {"MEC_GATEWAY_URL": "http://gateway-app", "A2_INTERVAL_MS": 200},
    "user": "0", "restart_policy": "unless-stopped",
    "ports": ["3000:3000", "127.0.0.1:18090:8080", "9000/udp"],
    "volumes": ["a2-data:/data", "/opt/conf:/etc/conf:ro"],
    "networks": [{"name": "mec-apps", "aliases": ["a2"], "ipv4_address": "10.77.0.9"}],
    "labels": {"mec.migration.role": "mec_apps"},
}


@pytest.fixture
def engine(client):
    """An engine with the image and without the container; create/start answer like Docker 20.10."""
    client.api.inspect_image.return_value = {"Id": IMAGE_ID}
    created = inspect_container(name="a2", cid="new1", running=True)
    created["NetworkSettings"]["Networks"] = {"mec-apps": {"IPAddress": "10.77.0.9"}}
    client.api.inspect_container.side_effect = [NotFound("no such container"), created]
    client.api.create_host_config.side_effect = lambda **kw: dict(kw)
    client.api.create_endpoint_config.side_effect = lambda **kw: dict(kw)
    client.api.create_networking_config.side_effect = lambda endpoints: {"EndpointsConfig": endpoints}
    client.api.create_container.return_value = {"Id": "new1"}
    return client


def existing(labels, running=True, cid="old1"):
    data = inspect_container(name="a2", cid=cid, running=running)
    data["Config"]["Labels"] = labels
    data["NetworkSettings"]["Networks"] = {"mec-apps": {"IPAddress": "10.77.0.9"}}
    return data


def wanted_hash(args=ARGS, image_id=IMAGE_ID):
    params = dict(state="started", command=None, env={}, user="", restart_policy="no", ports=[], volumes=[],
                  networks=[], labels={})
    params.update(args)
    return utils.config_hash(utils.declared_config(params, image_id))


def test_creates_and_starts_a_missing_container_with_the_hash_label(run_module, engine):
    result = run_module(service_container, ARGS)
    engine.api.inspect_image.assert_called_once_with("mec-apps/a2:latest")
    host_config = dict(binds=["a2-data:/data", "/opt/conf:/etc/conf:ro"],
                       port_bindings={"3000/tcp": [3000], "8080/tcp": [("127.0.0.1", 18090)], "9000/udp": [None]},
                       restart_policy={"Name": "unless-stopped"}, network_mode="mec-apps")
    engine.api.create_host_config.assert_called_once_with(**host_config)
    engine.api.create_endpoint_config.assert_called_once_with(aliases=["a2"], ipv4_address="10.77.0.9")
    engine.api.create_container.assert_called_once_with(
        image="mec-apps/a2:latest", name="a2", command=["--verbose"], user="0",
        environment=["MEC_GATEWAY_URL=http://gateway-app", "A2_INTERVAL_MS=200"],
        ports=[(3000, "tcp"), (8080, "tcp"), (9000, "udp")],
        labels={"mec.migration.role": "mec_apps", "mec.migration.spec": wanted_hash()}, detach=True,
        host_config=host_config,
        networking_config={"EndpointsConfig": {"mec-apps": {"aliases": ["a2"], "ipv4_address": "10.77.0.9"}}})
    engine.api.start.assert_called_once_with("new1")
    engine.api.remove_container.assert_not_called()
    engine.api.connect_container_to_network.assert_not_called()
    assert result == {"changed": True, "action": "create", "config_hash": wanted_hash(), "image_id": IMAGE_ID,
                      "container_id": "new1", "ip_addresses": {"mec-apps": "10.77.0.9"}, "run_argv": mock.ANY}


def test_second_run_on_what_the_first_made_changes_nothing(run_module, engine):
    run_module(service_container, ARGS)
    labels = engine.api.create_container.call_args.kwargs["labels"]
    engine.reset_mock()
    engine.api.inspect_container.side_effect = None
    engine.api.inspect_container.return_value = existing(labels)
    result = run_module(service_container, ARGS)
    assert (result["changed"], result["action"], result["container_id"]) == (False, "none", "old1")
    engine.api.create_container.assert_not_called()
    engine.api.remove_container.assert_not_called()
    engine.api.start.assert_not_called()


def test_a_stopped_container_of_the_same_configuration_is_started_not_recreated(run_module, client):
    client.api.inspect_image.return_value = {"Id": IMAGE_ID}
    client.api.inspect_container.side_effect = [existing({utils.CONFIG_LABEL: wanted_hash()}, running=False),
                                                existing({utils.CONFIG_LABEL: wanted_hash()})]
    result = run_module(service_container, ARGS)
    client.api.start.assert_called_once_with("old1")
    client.api.create_container.assert_not_called()
    client.api.remove_container.assert_not_called()
    assert (result["changed"], result["action"]) == (True, "start")


@pytest.mark.parametrize("change", [
    {"env": {"MEC_GATEWAY_URL": "http://other"}},
    {"ports": ["3001:3000"]},
    {"networks": [{"name": "mec-apps", "aliases": ["a2", "zone-counter"]}]},
    {"user": ""},
    {"restart_policy": "no"},
])
def test_another_declared_configuration_recreates_the_container(run_module, engine, change):
    old = existing({utils.CONFIG_LABEL: wanted_hash()})
    new = existing({}, cid="new1")
    engine.api.inspect_container.side_effect = [old, new]
    result = run_module(service_container, dict(ARGS, **change))
    engine.api.remove_container.assert_called_once_with("old1", force=True)
    engine.api.create_container.assert_called_once()
    labels = engine.api.create_container.call_args.kwargs["labels"]
    assert labels[utils.CONFIG_LABEL] == wanted_hash(dict(ARGS, **change))
    engine.api.start.assert_called_once_with("new1")
    assert (result["changed"], result["action"]) == (True, "recreate")


def test_a_rebuilt_image_under_the_same_name_recreates_the_container(run_module, engine):
    engine.api.inspect_container.side_effect = [existing({utils.CONFIG_LABEL: wanted_hash(image_id="sha256:old")}),
                                                existing({}, cid="new1")]
    result = run_module(service_container, ARGS)
    engine.api.remove_container.assert_called_once_with("old1", force=True)
    assert result["action"] == "recreate"


def test_check_mode_reports_without_acting(run_module, engine):
    engine.api.inspect_container.side_effect = [existing({utils.CONFIG_LABEL: "other"})]
    result = run_module(service_container, dict(ARGS, _ansible_check_mode=True, _ansible_diff=True))
    engine.api.remove_container.assert_not_called()
    engine.api.create_container.assert_not_called()
    engine.api.start.assert_not_called()
    assert (result["changed"], result["action"]) == (True, "recreate")
    assert result["diff"] == {"before": {"exists": True, "running": True, "config_hash": "other"},
                              "after": {"exists": True, "running": True, "config_hash": wanted_hash()}}


def test_second_network_is_connected_before_the_start(run_module, engine):
    args = dict(ARGS, networks=[{"name": "mec-apps", "aliases": ["a2"]},
                                {"name": "mec-lab", "aliases": [], "ipv4_address": "172.30.77.50"}])
    run_module(service_container, args)
    engine.api.connect_container_to_network.assert_called_once_with("new1", "mec-lab", aliases=None,
                                                                    ipv4_address="172.30.77.50")
    assert [c[0] for c in engine.method_calls if c[0] in ("api.connect_container_to_network", "api.start")] == \
        ["api.connect_container_to_network", "api.start"]


def test_a_container_that_fails_to_start_is_removed_and_the_failure_reported(run_module, engine):
    engine.api.start.side_effect = APIError("port is already allocated")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(service_container, ARGS)
    engine.api.remove_container.assert_called_once_with("new1", force=True)
    assert "port is already allocated" in exc.value.result["msg"]
    assert "Traceback" not in exc.value.result["msg"] and "exception" in exc.value.result


def test_missing_image_fails_clearly_before_any_change(run_module, engine):
    engine.api.inspect_image.side_effect = NotFound("no such image")
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(service_container, ARGS)
    assert "Image mec-apps/a2:latest is not on host" in exc.value.result["msg"]
    engine.api.create_container.assert_not_called()
    engine.api.remove_container.assert_not_called()


@pytest.mark.parametrize("field,value,words", [
    ("ports", ["3000-3005:3000"], "Port '3000-3005:3000'"),
    ("ports", ["80/icmp"], "Port '80/icmp'"),
    ("volumes", ["a2-data"], "Volume 'a2-data'"),
    ("volumes", ["a2-data:data"], "Volume 'a2-data:data'"),
])
def test_malformed_ports_and_volumes_fail_before_any_change(run_module, engine, field, value, words):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(service_container, dict(ARGS, **{field: value}))
    assert words in exc.value.result["msg"]
    engine.api.create_container.assert_not_called()
    engine.api.remove_container.assert_not_called()


def test_absent_removes_and_is_quiet_when_gone(run_module, client):
    client.api.inspect_container.side_effect = [existing({})]
    result = run_module(service_container, {"name": "a2", "state": "absent"})
    client.api.remove_container.assert_called_once_with("old1", force=True)
    assert (result["changed"], result["action"]) == (True, "remove")
    client.api.inspect_container.side_effect = NotFound("gone")
    result = run_module(service_container, {"name": "a2", "state": "absent"})
    assert (result["changed"], result["action"]) == (False, "none")
    client.api.remove_container.assert_called_once()


def test_next_action_decides_from_the_label_and_the_state():
    assert utils.next_action(None, False, "h") == "create"
    assert utils.next_action({utils.CONFIG_LABEL: "x"}, True, "h") == "recreate"
    assert utils.next_action({}, True, "h") == "recreate"
    assert utils.next_action({utils.CONFIG_LABEL: "h"}, False, "h") == "start"
    assert utils.next_action({utils.CONFIG_LABEL: "h"}, True, "h") == "none"
    assert utils.next_action({"other.label": "h"}, True, "h", label="other.label") == "none"


def test_run_argv_is_the_equivalent_docker_run(run_module, engine):
    result = run_module(service_container, ARGS)
    assert result["run_argv"] == [
        "docker", "run", "--detach", "--name", "a2",
        "--label", "mec.migration.role=mec_apps", "--label", "mec.migration.spec=" + wanted_hash(),
        "--restart", "unless-stopped", "--network", "mec-apps", "--network-alias", "a2", "--ip", "10.77.0.9",
        "--publish", "3000:3000/tcp", "--publish", "127.0.0.1:18090:8080/tcp", "--publish", "9000/udp",
        "--volume", "a2-data:/data", "--volume", "/opt/conf:/etc/conf:ro",
        "--env", "MEC_GATEWAY_URL=http://gateway-app", "--env", "A2_INTERVAL_MS=200", "--user", "0",
        "mec-apps/a2:latest", "--verbose"]
