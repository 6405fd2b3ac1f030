"""lab_network: main() with a mocked Docker client; create, keep, refuse another subnet, remove."""
from unittest import mock

import pytest
from docker.errors import NotFound
from docker.types import IPAMConfig, IPAMPool

from ansible_collections.mec.migration.plugins.modules import lab_network
from .conftest import AnsibleFailJson

ARGS = {"name": "mec-lab", "subnet": "172.30.77.0/24", "labels": {"mec.migration.lab": "mec-lab"}}


def network(subnet="172.30.77.0/24", gateway="172.30.77.1", nid="n1"):
    net = mock.Mock(id=nid)
    net.attrs = {"IPAM": {"Config": [{"Subnet": subnet, "Gateway": gateway}]}}
    return net


def test_creates_a_missing_network_with_its_subnet_and_labels(run_module, client):
    client.networks.get.side_effect = NotFound("no such network")
    client.networks.create.return_value = network()
    result = run_module(lab_network, ARGS)
    client.networks.create.assert_called_once_with(
        "mec-lab", driver="bridge", ipam=IPAMConfig(pool_configs=[IPAMPool(subnet="172.30.77.0/24")]),
        labels={"mec.migration.lab": "mec-lab"}, check_duplicate=True)
    client.networks.create.return_value.reload.assert_called_once_with()
    assert result == {"changed": True, "network_id": "n1", "gateway": "172.30.77.1"}


def test_an_existing_network_of_that_subnet_is_unchanged(run_module, client):
    client.networks.get.return_value = network()
    result = run_module(lab_network, ARGS)
    client.networks.get.assert_called_once_with("mec-lab")
    client.networks.create.assert_not_called()
    assert result == {"changed": False, "network_id": "n1", "gateway": "172.30.77.1"}


def test_an_existing_network_of_another_subnet_is_refused_not_replaced(run_module, client):
    existing = network(subnet="10.9.0.0/16")
    client.networks.get.return_value = existing
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(lab_network, ARGS)
    assert "exists with subnet(s) 10.9.0.0/16, not 172.30.77.0/24" in exc.value.result["msg"]
    existing.remove.assert_not_called()
    client.networks.create.assert_not_called()


def test_check_mode_creates_nothing(run_module, client):
    client.networks.get.side_effect = NotFound("no such network")
    result = run_module(lab_network, dict(ARGS, _ansible_check_mode=True))
    client.networks.create.assert_not_called()
    assert result == {"changed": True}


def test_absent_removes_and_is_quiet_when_gone(run_module, client):
    existing = network()
    client.networks.get.return_value = existing
    assert run_module(lab_network, {"name": "mec-lab", "state": "absent"}) == {"changed": True}
    existing.remove.assert_called_once_with()
    client.networks.get.side_effect = NotFound("gone")
    assert run_module(lab_network, {"name": "mec-lab", "state": "absent"}) == {"changed": False}
    existing.remove.assert_called_once_with()


def test_present_without_a_subnet_is_refused(run_module, client):
    with pytest.raises(AnsibleFailJson) as exc:
        run_module(lab_network, {"name": "mec-lab"})
    assert "subnet" in exc.value.result["msg"]
    client.networks.get.assert_not_called()
