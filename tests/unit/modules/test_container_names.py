"""A container is found by its name (or its full ID), never by an ID prefix: Docker and Podman answer a reference
that no container is named with the container whose ID starts with it (on the Podman lab A2's container a343df09...
answered for a missing "a3", and playbooks/apps.yml then replaced A2 with A3)."""

from unittest import mock

import pytest

from ansible_collections.mec.migration.plugins.module_utils import run_config, service_container
from .conftest import resolving_inspect

A2 = {"Id": "a343df09" + "0" * 56, "Name": "/a2", "State": {"Running": True}}


def engine(*containers):
    client = mock.Mock()
    client.api.inspect_container.side_effect = resolving_inspect(*containers)
    return client


@pytest.mark.parametrize("find", [run_config.find_container, service_container.read_container])
def test_an_id_prefix_is_not_a_name(find):
    client = engine(A2)
    assert find(client, "a3") is None
    assert find(client, "a2") is A2
    assert find(client, A2["Id"]) is A2
    assert find(client, "missing") is None


def test_podmans_names_without_the_slash_count_too():
    a3 = {"Id": "b" * 64, "Name": "a3", "State": {"Running": True}}
    assert run_config.find_container(engine(A2, a3), "a3") is a3


def test_container_info_of_a_missing_app_is_none_not_another_container():
    assert run_config.container_info(engine(A2), "a3", with_sizes=False) is None
