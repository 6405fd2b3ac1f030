#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""A simulated MEC host of the local lab: a system container that can run its own engine (Docker or Podman)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: lab_host
short_description: Run a system container that serves as a simulated MEC host with its own container engine
description:
  - Creates and starts (or removes) one host of the local lab, a system container on a lab network with a
    fixed address and host name, whose own nested engine (Docker or Podman) and CRIU are then provisioned by
    the roles C(docker_engine) or C(podman_engine) and C(criu), exactly like a real host.
  - A nested engine needs more than a default container. With O(privilege_mode=auto) the module first tries
    C(--privileged); where the engine refuses it (for example "unable to apply caps" because a capability
    is missing from the bounding set) it falls back to all capabilities but the missing ones, with
    seccomp, AppArmor and the masked system paths unconfined and every device allowed. The mode used is
    returned and recorded on the container.
  - The host's engine store lives on a named volume (no overlay on overlay), C(/var/lib/docker) for
    O(host_engine=docker), C(/var/lib/containers) for O(host_engine=podman). C(/run) and C(/tmp) are tmpfs, and
    the cgroup file system is mounted read-write.
  - A container whose configuration differs from the requested one is re-created; its engine's volume is
    kept.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
options:
  name:
    description: Container name.
    type: str
    required: true
  state:
    description: C(started) to create and run the host, C(absent) to remove it.
    type: str
    choices: [started, absent]
    default: started
  image:
    description: Host image (sshd, python3 and the init script as its command). Required with O(state=started).
    type: str
  hostname:
    description: Host name inside the container; default is O(name).
    type: str
  network:
    description: Lab network to attach to. Required with O(state=started).
    type: str
  ipv4_address:
    description: Fixed address on O(network).
    type: str
  authorized_keys:
    description: Public key file on the Docker host that the host's root accepts for SSH.
    type: path
  host_engine:
    description:
      - The engine the host will run (provisioned by the role C(docker_engine) or C(podman_engine)); decides which
        store folder gets the named volume. The engine is recorded in the label C(mec.migration.lab.engine).
    type: str
    choices: [docker, podman]
    default: docker
  privilege_mode:
    description: How to give the nested engine its privileges.
    type: str
    choices: [auto, privileged, capabilities]
    default: auto
  drop_capabilities:
    description: Capabilities dropped in O(privilege_mode=capabilities).
    type: list
    elements: str
    default: [SYS_RESOURCE]
  labels:
    description: Labels of the container (and of the engine volume it creates).
    type: dict
    default: {}
  remove_volumes:
    description: With O(state=absent), also remove the engine volumes (Docker's and Podman's store).
    type: bool
    default: true
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the host would be created, re-created, started or removed; no container or volume is
      touched.
  diff_mode:
    support: none
    description: No diff; the host's configuration hash is kept in a label of its container.
  idempotent:
    support: full
    description: A running host whose configuration hash label matches the wanted configuration is left alone; a
      stopped one is only started; an absent one (O(state=absent)) is not reported as removed.
"""

EXAMPLES = r"""
- name: Start the lab's source host
  mec.migration.lab_host:
    name: mec-lab-source
    image: mec-lab/host:bookworm
    network: mec-lab
    ipv4_address: 172.30.77.11
    authorized_keys: /root/.cache/mec-migration/labs/mec-lab/id_ed25519.pub
    labels:
      mec.migration.lab: mec-lab

- name: Start a host that will run Podman (its /var/lib/containers on a volume)
  mec.migration.lab_host:
    name: mec-pod-source
    image: mec-lab/host:bookworm
    network: mec-pod
    ipv4_address: 172.30.81.11
    host_engine: podman
    labels:
      mec.migration.lab: mec-pod
"""

RETURN = r"""
container_id:
  description: Id of the container.
  returned: state is started and not check mode
  type: str
ipv4_address:
  description: Address of the host on the lab network.
  returned: state is started and not check mode
  type: str
privilege_mode:
  description: The mode the container runs with (C(privileged) or C(capabilities)).
  returned: state is started and not check mode
  type: str
  sample: capabilities
"""

import hashlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, APIError, NotFound, fail, get_client, hostname)
from ansible_collections.mec.migration.plugins.module_utils.service_container import config_hash, next_action

# The lab's own label for the configuration hash (the running labs carry it: renaming it would re-create their hosts).
CONFIG_LABEL = "mec.migration.lab.config"
MODE_LABEL = "mec.migration.lab.privilege_mode"
ENGINE_LABEL = "mec.migration.lab.engine"
# Where each engine keeps its store inside the host: on a named volume, since overlay on overlay fails.
STORE = {"docker": "/var/lib/docker", "podman": "/var/lib/containers"}
UNCONFINED = ["seccomp=unconfined", "apparmor=unconfined"]


def engine_volume(name, engine="docker"):
    """The named volume of the host's engine store: <name>-docker (Docker's, the name running labs use) or
    <name>-containers (Podman's)."""
    return name + ("-docker" if engine == "docker" else "-containers")


def wanted_config(client, params):
    """Hash of what the container is made from; a rebuilt image counts as a change."""
    keys = ("hostname", "network", "ipv4_address", "drop_capabilities", "labels")
    wanted = {k: params[k] for k in keys}
    # The key, not the path of its file: another checkout with the same key reaches the same host.
    if params["authorized_keys"]:
        with open(params["authorized_keys"], "rb") as handle:
            wanted["authorized_keys"] = hashlib.sha256(handle.read()).hexdigest()
    wanted["image"] = client.images.get(params["image"]).id
    # Only a non-default engine enters the hash, so that the Docker hosts of running labs keep theirs.
    if params["host_engine"] != "docker":
        wanted["engine"] = params["host_engine"]
    return config_hash(wanted)


def host_config(client, params, mode):
    engine = params["host_engine"]
    binds = {
        engine_volume(params["name"], engine): {"bind": STORE[engine], "mode": "rw"},
        "/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"},
        "/lib/modules": {"bind": "/lib/modules", "mode": "ro"},
    }
    if params["authorized_keys"]:
        binds[params["authorized_keys"]] = {"bind": "/etc/mec-lab/authorized_keys", "mode": "ro"}
    kwargs = dict(binds=binds, tmpfs={"/run": "", "/tmp": ""}, init=True)
    if mode == "privileged":
        kwargs["privileged"] = True
    else:
        kwargs.update(cap_add=["ALL"], cap_drop=params["drop_capabilities"], security_opt=UNCONFINED,
                      device_cgroup_rules=["a *:* rwm"])
    config = client.api.create_host_config(**kwargs)
    if mode != "privileged":
        # The CLI's --security-opt systempaths=unconfined: no masked or read-only /proc and /sys paths.
        # The SDK has no argument for it; the API takes the empty lists.
        config["MaskedPaths"] = []
        config["ReadonlyPaths"] = []
    return config


def create_and_start(client, params, mode, wanted_hash):
    labels = dict(params["labels"])
    labels[CONFIG_LABEL] = wanted_hash
    labels[MODE_LABEL] = mode
    labels[ENGINE_LABEL] = params["host_engine"]
    endpoint = client.api.create_endpoint_config(ipv4_address=params["ipv4_address"]) if params["ipv4_address"] \
        else client.api.create_endpoint_config()
    created = client.api.create_container(
        image=params["image"], name=params["name"], hostname=params["hostname"] or params["name"], detach=True,
        labels=labels, host_config=host_config(client, params, mode),
        networking_config=client.api.create_networking_config({params["network"]: endpoint}))
    try:
        client.api.start(created["Id"])
    except APIError:
        client.api.remove_container(created["Id"], force=True)
        raise
    return created["Id"]


def ensure_volume(client, params):
    name = engine_volume(params["name"], params["host_engine"])
    try:
        client.volumes.get(name)
    except NotFound:
        client.volumes.create(name=name, labels=params["labels"])


def start_host(module, client):
    params = module.params
    wanted_hash = wanted_config(client, params)
    try:
        container = client.containers.get(params["name"])
    except NotFound:
        container = None
    action = next_action(container.labels if container is not None else None,
                         container is not None and container.status == "running", wanted_hash, label=CONFIG_LABEL)
    if action in ("none", "start"):
        if action == "start" and not module.check_mode:
            container.start()
        return action == "start", container.id, container.labels.get(MODE_LABEL)
    if module.check_mode:
        return True, None, None
    if container is not None:
        container.remove(force=True)
    ensure_volume(client, params)
    modes = ["privileged", "capabilities"] if params["privilege_mode"] == "auto" else [params["privilege_mode"]]
    errors = []
    for mode in modes:
        try:
            return True, create_and_start(client, params, mode, wanted_hash), mode
        except APIError as exc:
            errors.append("%s: %s" % (mode, exc.explanation or exc))
    module.fail_json(msg="Could not start lab host %s on %s in any privilege mode (%s). The nested engine "
                         "needs either --privileged or all capabilities but SYS_RESOURCE; run the lab as root "
                         "on a host that allows them." % (params["name"], hostname(), "; ".join(errors)))


def remove_host(module, client):
    params = module.params
    changed = False
    try:
        container = client.containers.get(params["name"])
        changed = True
        if not module.check_mode:
            container.remove(force=True)
    except NotFound:
        pass
    if params["remove_volumes"]:
        for engine in sorted(STORE):
            try:
                volume = client.volumes.get(engine_volume(params["name"], engine))
                changed = True
                if not module.check_mode:
                    volume.remove(force=True)
            except NotFound:
                pass
    return changed


def run_module():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "absent"], default="started"),
            image=dict(type="str"),
            hostname=dict(type="str"),
            network=dict(type="str"),
            ipv4_address=dict(type="str"),
            authorized_keys=dict(type="path"),
            host_engine=dict(type="str", choices=["docker", "podman"], default="docker"),
            privilege_mode=dict(type="str", choices=["auto", "privileged", "capabilities"], default="auto"),
            drop_capabilities=dict(type="list", elements="str", default=["SYS_RESOURCE"]),
            labels=dict(type="dict", default={}),
            remove_volumes=dict(type="bool", default=True),
            **DOCKER_COMMON_ARGS
        ),
        required_if=[("state", "started", ("image", "network"))],
        supports_check_mode=True,
    )
    client = get_client(module)
    try:
        if module.params["state"] == "absent":
            module.exit_json(changed=remove_host(module, client))
        changed, container_id, mode = start_host(module, client)
        result = dict(changed=changed, container_id=container_id, privilege_mode=mode)
        if container_id:
            container = client.containers.get(container_id)
            networks = container.attrs["NetworkSettings"]["Networks"]
            result["ipv4_address"] = networks.get(module.params["network"], {}).get("IPAddress")
        module.exit_json(**result)
    except Exception as exc:
        fail(module, "Lab host %s on %s: %s" % (module.params["name"], hostname(), exc), exc=exc)


def main():
    run_module()


if __name__ == "__main__":
    main()
