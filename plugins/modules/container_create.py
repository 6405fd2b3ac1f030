#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: container_create
short_description: Create a container from a run configuration captured on another host
description:
  - Re-creates the source container's run configuration (from M(mec.migration.container_info)) on this host
    from O(image) - command and entrypoint overrides, environment added at run time, published ports, named
    volumes and bind mounts, user-defined networks with their aliases (created when missing), restart
    policy, labels, hostname, user and working directory.
  - Only what C(docker run) added is given; what the image gave comes from O(image). An imported image
    (strategy m1) therefore lacks the source image's configuration; O(start_command) is then the command
    to start it with (the seed's manual input).
  - The container is only created unless O(start=true); the relocation starts it.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Checks that the image exists and reports whether the container would be created; nothing is created
      or removed.
  diff_mode:
    support: none
    description: No diff; RV(id) and RV(checkpoint_dir) describe the container.
  idempotent:
    support: full
    description: An existing container of that name is kept unless O(recreate=true).
options:
  run_config:
    description: The C(container) result of M(mec.migration.container_info) on the source.
    type: dict
    required: true
  image:
    description: Image to create the container from.
    type: str
    required: true
  name:
    description: Container name; default is the source's.
    type: str
  start_command:
    description: Command (argv) replacing the image's and the source's.
    type: list
    elements: str
  start:
    description: Start the container after creating it.
    type: bool
    default: false
  recreate:
    description: Remove an existing container of that name first.
    type: bool
    default: false
  load_archive:
    description:
      - An image archive on this host (C(mec.migration.image_save)'s, possibly without the layers this engine holds)
        to load first, in the same call, as C(mec.migration.image_load) does - the layers it leaves out must be held
        here (else it fails naming them, nothing loaded), the loaded image must have the archive's ID and layers,
        and O(image) must then name it. RV(load) returns the load's figures.
    type: path
"""

EXAMPLES = r"""
- name: Create the app on the target, not started
  mec.migration.container_create:
    run_config: "{{ source_app.container }}"
    image: mec-migration/v2x-app:run1
"""

RETURN = r"""
id:
  description: ID of the container.
  returned: always
  type: str
name:
  description: Name of the container.
  returned: always
  type: str
created_networks:
  description: Networks that had to be created.
  returned: when created
  type: list
  elements: str
checkpoint_dir:
  description: The container's own checkpoints directory (where a restore looks).
  returned: always
  type: str
duration:
  description: Seconds the creation took.
  returned: always
  type: float
load:
  description: The figures of the load (O(load_archive)) - C(images), C(image_id), C(size), C(layers_loaded),
    C(layers_present), C(duration).
  returned: with O(load_archive)
  type: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.checkpoints import container_checkpoint_dir
from ansible_collections.mec.migration.plugins.module_utils.images import find_image, load_image_archive
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError, run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import (
    create_container_from_config, find_container)


def main():
    module = AnsibleModule(argument_spec=dict(
        run_config=dict(type="dict", required=True),
        image=dict(type="str", required=True),
        name=dict(type="str"),
        start_command=dict(type="list", elements="str"),
        start=dict(type="bool", default=False),
        recreate=dict(type="bool", default=False),
        load_archive=dict(type="path"),
        **DOCKER_COMMON_ARGS), supports_check_mode=True)
    p = module.params
    name = p["name"] or p["run_config"].get("name")
    if not name:
        module.fail_json(msg="No container name: set name or give a run_config with one.")
    client = get_client(module)
    loaded = {}
    if p["load_archive"] and not module.check_mode:
        loaded = {"load": run_guarded(module, load_image_archive, client, p["load_archive"], p["image"])}
    existing = run_guarded(module, find_container, client, name)
    if existing and not p["recreate"]:
        module.exit_json(changed=bool(loaded), id=existing["Id"], name=name, duration=0.0,
                         checkpoint_dir=run_guarded(module, container_checkpoint_dir, client, existing["Id"]), **loaded)
    if run_guarded(module, find_image, client, p["image"]) is None:
        run_guarded(module, _raise, "Image %s does not exist on this host: load or import it first." % p["image"])
    if module.check_mode:
        module.exit_json(changed=True, id="", name=name, duration=0.0, checkpoint_dir="")
    if existing:
        client.api.remove_container(existing["Id"], force=True)
    t0 = time.monotonic()
    cid, nets = run_guarded(module, create_container_from_config, client, p["run_config"], p["image"], name=name,
                            start_command=p["start_command"], start=p["start"])
    module.exit_json(changed=True, id=cid, name=name, created_networks=nets,
                     duration=round(time.monotonic() - t0, 6),
                     checkpoint_dir=run_guarded(module, container_checkpoint_dir, client, cid), **loaded)


def _raise(msg):
    raise MigrationError(msg)


if __name__ == "__main__":
    main()
