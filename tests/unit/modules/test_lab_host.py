import hashlib
from unittest import mock

import pytest
from docker.errors import APIError, NotFound

from ansible_collections.mec.migration.plugins.modules import lab_host
from .conftest import AnsibleFailJson

BASE_ARGS = {"name": "mec-lab-source", "image": "mec-lab/host:bookworm", "network": "mec-lab",
             "ipv4_address": "172.30.77.11", "labels": {"mec.migration.lab": "x"}}


@pytest.fixture
def args(tmp_path):
    key = tmp_path / "id_ed25519.pub"
    key.write_text("ssh-ed25519 AAAA lab\n")
    return dict(BASE_ARGS, authorized_keys=str(key))


def fresh_engine(client):
    client.containers.get.side_effect = NotFound("no such container")
    client.volumes.get.side_effect = NotFound("no such volume")
    client.images.get.return_value = mock.Mock(id="sha256:host")
    client.api.create_host_config.side_effect = lambda **kw: dict(kw)
    client.api.create_container.return_value = {"Id": "c1"}


def test_privileged_first_then_capabilities_where_privileged_is_refused(run_module, client, args):
    fresh_engine(client)
    client.api.start.side_effect = [APIError("unable to apply caps: operation not permitted"), None]
    with mock.patch.object(lab_host, "get_client", return_value=client):
        # After creation the module reads the address back.
        started = mock.Mock()
        started.attrs = {"NetworkSettings": {"Networks": {"mec-lab": {"IPAddress": "172.30.77.11"}}}}
        client.containers.get.side_effect = [NotFound("none"), started]
        result = run_module(lab_host, args)
    first, second = client.api.create_host_config.call_args_list
    assert first.kwargs["privileged"] is True
    assert "privileged" not in second.kwargs
    assert second.kwargs["cap_add"] == ["ALL"] and second.kwargs["cap_drop"] == ["SYS_RESOURCE"]
    assert second.kwargs["security_opt"] == ["seccomp=unconfined", "apparmor=unconfined"]
    assert second.kwargs["device_cgroup_rules"] == ["a *:* rwm"]
    assert second.kwargs["binds"]["mec-lab-source-docker"] == {"bind": "/var/lib/docker", "mode": "rw"}
    assert second.kwargs["tmpfs"] == {"/run": "", "/tmp": ""}
    # The refused container was removed before the second try.
    client.api.remove_container.assert_called_once_with("c1", force=True)
    # systempaths=unconfined is passed as empty masked and read-only path lists.
    host_config = client.api.create_container.call_args_list[1].kwargs["host_config"]
    assert host_config["MaskedPaths"] == [] and host_config["ReadonlyPaths"] == []
    client.volumes.create.assert_called_once_with(name="mec-lab-source-docker", labels={"mec.migration.lab": "x"})
    assert result == {"changed": True, "container_id": "c1", "privilege_mode": "capabilities",
                      "ipv4_address": "172.30.77.11"}


def test_same_configuration_running_is_unchanged(run_module, client, args, tmp_path):
    client.images.get.return_value = mock.Mock(id="sha256:host")
    wanted = lab_host.wanted_config(client, dict(args, hostname=None, drop_capabilities=["SYS_RESOURCE"],
                                                 host_engine="docker"))
    existing = mock.Mock(id="c9", status="running",
                         labels={lab_host.CONFIG_LABEL: wanted, lab_host.MODE_LABEL: "privileged"})
    existing.attrs = {"NetworkSettings": {"Networks": {"mec-lab": {"IPAddress": "172.30.77.11"}}}}
    client.containers.get.side_effect = None
    client.containers.get.return_value = existing
    with mock.patch.object(lab_host, "get_client", return_value=client):
        result = run_module(lab_host, args)
    client.api.create_container.assert_not_called()
    existing.start.assert_not_called()
    assert result["changed"] is False and result["privilege_mode"] == "privileged"
    # The same key in another checkout's file is the same host; another key is not.
    moved = tmp_path / "elsewhere.pub"
    moved.write_text("ssh-ed25519 AAAA lab\n")
    assert lab_host.wanted_config(client, dict(args, authorized_keys=str(moved), hostname=None,
                                               drop_capabilities=["SYS_RESOURCE"], host_engine="docker")) == wanted
    moved.write_text("ssh-ed25519 BBBB other\n")
    assert lab_host.wanted_config(client, dict(args, authorized_keys=str(moved), hostname=None,
                                               drop_capabilities=["SYS_RESOURCE"], host_engine="docker")) != wanted


def test_both_modes_refused_fails_with_both_reasons(run_module, client, args):
    fresh_engine(client)
    client.api.start.side_effect = [APIError("caps refused"), APIError("devices refused")]
    with mock.patch.object(lab_host, "get_client", return_value=client), pytest.raises(AnsibleFailJson) as exc:
        run_module(lab_host, args)
    msg = exc.value.result["msg"]
    assert "Could not start lab host mec-lab-source" in msg
    assert "privileged: caps refused" in msg and "capabilities: devices refused" in msg


def test_absent_removes_container_and_volume_and_is_quiet_when_gone(run_module, client):
    container, volume = mock.Mock(), mock.Mock()
    client.containers.get.return_value = container
    client.volumes.get.return_value = volume
    with mock.patch.object(lab_host, "get_client", return_value=client):
        assert run_module(lab_host, {"name": "h", "state": "absent"})["changed"] is True
        container.remove.assert_called_once_with(force=True)
        # both engines' store volumes, whichever engine the host ran
        assert [c.args for c in client.volumes.get.call_args_list] == [("h-docker",), ("h-containers",)]
        assert volume.remove.call_args_list == [mock.call(force=True)] * 2
        client.containers.get.side_effect = NotFound("gone")
        client.volumes.get.side_effect = NotFound("gone")
        assert run_module(lab_host, {"name": "h", "state": "absent"})["changed"] is False


def test_podman_host_keeps_var_lib_containers_on_its_own_volume(run_module, client, args):
    fresh_engine(client)
    started = mock.Mock()
    started.attrs = {"NetworkSettings": {"Networks": {"mec-lab": {"IPAddress": "172.30.77.11"}}}}
    client.containers.get.side_effect = [NotFound("none"), started]
    with mock.patch.object(lab_host, "get_client", return_value=client):
        run_module(lab_host, dict(args, host_engine="podman", privilege_mode="capabilities"))
    binds = client.api.create_host_config.call_args.kwargs["binds"]
    assert binds["mec-lab-source-containers"] == {"bind": "/var/lib/containers", "mode": "rw"}
    assert "mec-lab-source-docker" not in binds
    client.volumes.create.assert_called_once_with(name="mec-lab-source-containers",
                                                  labels={"mec.migration.lab": "x"})
    assert client.api.create_container.call_args.kwargs["labels"][lab_host.ENGINE_LABEL] == "podman"
    # The engine is part of the configuration for Podman hosts only: a Docker host of a running lab keeps its hash.
    common = dict(args, hostname=None, drop_capabilities=["SYS_RESOURCE"])
    docker_hash = lab_host.wanted_config(client, dict(common, host_engine="docker"))
    assert lab_host.wanted_config(client, dict(common, host_engine="podman")) != docker_hash
    legacy = {k: common[k] for k in ("hostname", "network", "ipv4_address", "drop_capabilities", "labels")}
    legacy["authorized_keys"] = hashlib.sha256(b"ssh-ed25519 AAAA lab\n").hexdigest()
    legacy["image"] = "sha256:host"
    assert docker_hash == lab_host.config_hash(legacy)
