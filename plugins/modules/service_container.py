#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Run a service container idempotently, by a hash of its declared configuration kept as a label."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: service_container
short_description: Run a service container idempotently, re-created only when its declared configuration changes
description:
  - Runs one long-lived container (the lab's MEC sandbox, the API gateway, the apps A1-A3) like C(docker run --detach)
    with an image, a command, environment, user, restart policy, published ports, volumes, networks with aliases and
    fixed addresses, and labels.
  - The module computes a SHA-256 hash of the declared configuration (the image's id included, so a rebuilt image
    under the same name counts as a change) and keeps it in the label C(mec.migration.spec).
  - An existing container whose label differs is removed and created again; one with the same label is started when
    it is stopped and otherwise left alone. Only the label is compared, not the container's actual options, so a
    container that the migration re-created from this one (it copies the labels) is kept.
  - The image must already be on the engine; nothing is pulled.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports the action (RV(action)) and the C(docker run) command (RV(run_argv)) without creating,
      starting or removing a container; a missing image is not an error in check mode.
  diff_mode:
    support: partial
    description: The diff shows whether the container exists and runs, and its configuration hash, not each option.
  idempotent:
    support: full
    description: The container carries a hash of its declared configuration in a label; a running container with the
      same hash is left alone.
options:
  name:
    description: Container name.
    type: str
    required: true
  state:
    description: C(started) to run the container as declared, C(absent) to remove it (its volumes are kept).
    type: str
    choices: [started, absent]
    default: started
  image:
    description: Image reference, already on the engine. Required with O(state=started).
    type: str
  command:
    description: Arguments after the image (the image's C(CMD) is replaced); default is the image's.
    type: list
    elements: str
  env:
    description: Environment variables added at run time.
    type: dict
    default: {}
  user:
    description: User (name or uid[:gid]) the container runs as; empty is the image's own.
    type: str
    default: ""
  restart_policy:
    description: The engine's restart policy.
    type: str
    choices: ["no", always, on-failure, unless-stopped]
    default: "no"
  ports:
    description: Published ports, each C([ip:][host_port:]container_port[/protocol]) as C(docker run --publish).
    type: list
    elements: str
    default: []
  volumes:
    description: Volumes, each C(source:/destination[:mode]); the source is a named volume or an absolute host path.
    type: list
    elements: str
    default: []
  networks:
    description: Networks to attach to, in order (the first is the container's network mode); they must exist.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Network name.
        type: str
        required: true
      aliases:
        description: DNS aliases on that network.
        type: list
        elements: str
        default: []
      ipv4_address:
        description: Fixed address on that network.
        type: str
  labels:
    description: Labels of the container (besides the configuration hash).
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Run the API gateway
  mec.migration.service_container:
    name: mec-gateway
    image: mec-apps/gateway:latest
    restart_policy: unless-stopped
    networks:
      - name: mec-apps
        aliases: [gateway-app]
        ipv4_address: 10.77.0.2
    volumes:
      - /opt/mec-gateway/conf:/etc/apache2/mec:ro
      - mec-gateway-logs:/var/log/mec-gateway
    labels:
      mec.migration.role: mec_gateway

- name: Run app A2 with its volume and published port
  mec.migration.service_container:
    name: a2
    image: mec-apps/a2:latest
    env:
      MEC_GATEWAY_URL: http://gateway-app
    ports: ["3000:3000"]
    volumes: ["a2-data:/data"]
    networks:
      - name: mec-apps
        aliases: [a2]

- name: Remove it
  mec.migration.service_container:
    name: a2
    state: absent
"""

RETURN = r"""
action:
  description: What was done (or would be in check mode) - C(create), C(recreate), C(start), C(remove) or C(none).
  returned: always
  type: str
  sample: recreate
config_hash:
  description: SHA-256 of the declared configuration, the value of the label C(mec.migration.spec).
  returned: state is started
  type: str
image_id:
  description: Id of O(image) on the engine.
  returned: state is started
  type: str
container_id:
  description: Id of the container.
  returned: state is started and not check mode
  type: str
run_argv:
  description:
    - The C(docker run) command line equivalent to the declared container (with the hash label), for tools that
      start it again without Ansible. Networks after the first are not in it.
  returned: state is started
  type: list
  elements: str
ip_addresses:
  description: The container's address on each of its networks.
  returned: state is started and not check mode
  type: dict
  sample: {mec-apps: 10.77.0.2}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.service_container import ensure_service


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["started", "absent"], default="started"),
            image=dict(type="str"),
            command=dict(type="list", elements="str"),
            env=dict(type="dict", default={}),
            user=dict(type="str", default=""),
            restart_policy=dict(type="str", choices=["no", "always", "on-failure", "unless-stopped"], default="no"),
            ports=dict(type="list", elements="str", default=[]),
            volumes=dict(type="list", elements="str", default=[]),
            networks=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                aliases=dict(type="list", elements="str", default=[]),
                ipv4_address=dict(type="str"),
            )),
            labels=dict(type="dict", default={}),
            **DOCKER_COMMON_ARGS
        ),
        required_if=[("state", "started", ("image",))],
        supports_check_mode=True,
    )
    client = get_client(module)
    result = run_guarded(module, ensure_service, client, module.params, check_mode=module.check_mode)
    if not module._diff:
        result.pop("diff")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
