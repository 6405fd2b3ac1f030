#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The local lab's own bridge network."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_network
short_description: Create or remove the local lab's bridge network
description:
  - Ensures a Docker bridge network with a fixed subnet and labels exists (or does not).
  - A network of that name with another subnet is an error, never silently replaced, because other
    containers may use it.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
options:
  name:
    description: Network name.
    type: str
    required: true
  state:
    description: Whether the network should exist.
    type: str
    choices: [present, absent]
    default: present
  subnet:
    description: IPv4 subnet in CIDR form. Required with O(state=present).
    type: str
  labels:
    description: Labels of the network.
    type: dict
    default: {}
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the network would be created or removed; nothing is created or removed.
  diff_mode:
    support: none
    description: No diff; RV(network_id) and RV(gateway) describe the network.
  idempotent:
    support: full
    description: An existing network with O(subnet) is kept (a different subnet is an error); removing an absent
      network reports no change.
"""

EXAMPLES = r"""
- name: The lab network
  mec.migration.lab_network:
    name: mec-lab
    subnet: 172.30.77.0/24
    labels:
      mec.migration.lab: mec-lab
"""

RETURN = r"""
network_id:
  description: Id of the network.
  returned: state is present and not check mode
  type: str
gateway:
  description: The bridge's address on the network (the controller's side).
  returned: state is present and not check mode
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, NotFound, fail, get_client, hostname)

try:
    from docker.types import IPAMConfig, IPAMPool
except ImportError:  # pragma: no cover - get_client reports the missing SDK
    IPAMConfig = IPAMPool = None


def subnets(network):
    return [cfg.get("Subnet") for cfg in (network.attrs.get("IPAM") or {}).get("Config") or []]


def gateway_of(network):
    for cfg in (network.attrs.get("IPAM") or {}).get("Config") or []:
        if cfg.get("Gateway"):
            return cfg["Gateway"]
    return None


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            subnet=dict(type="str"),
            labels=dict(type="dict", default={}),
            **DOCKER_COMMON_ARGS
        ),
        required_if=[("state", "present", ("subnet",))],
        supports_check_mode=True,
    )
    params = module.params
    client = get_client(module)
    try:
        try:
            network = client.networks.get(params["name"])
        except NotFound:
            network = None
        if params["state"] == "absent":
            if network is not None and not module.check_mode:
                network.remove()
            module.exit_json(changed=network is not None)
        if network is not None:
            if params["subnet"] not in subnets(network):
                module.fail_json(msg="Network %s on %s exists with subnet(s) %s, not %s. Remove it or choose "
                                     "another lab network name or subnet." % (
                                         params["name"], hostname(), ", ".join(subnets(network)) or "none",
                                         params["subnet"]))
            module.exit_json(changed=False, network_id=network.id, gateway=gateway_of(network))
        if module.check_mode:
            module.exit_json(changed=True)
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=params["subnet"])])
        network = client.networks.create(params["name"], driver="bridge", ipam=ipam, labels=params["labels"],
                                         check_duplicate=True)
        network.reload()
        module.exit_json(changed=True, network_id=network.id, gateway=gateway_of(network))
    except Exception as exc:
        fail(module, "Lab network %s on %s: %s" % (params["name"], hostname(), exc), exc=exc)


def main():
    run_module()


if __name__ == "__main__":
    main()
