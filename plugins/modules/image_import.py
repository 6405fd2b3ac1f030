#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_import
short_description: Create an image from an exported tarball (docker import) and report the lost configuration
description:
  - Imports a tarball made by M(mec.migration.container_export) as an image, with optional Dockerfile
    O(changes).
  - An imported image has none of the source image's CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE and LABEL
    unless given as O(changes); with O(source_image_config) the module says which of them were lost.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the tarball would be imported; no image is created.
  diff_mode:
    support: none
    description: No diff; RV(lost_config) lists the image configuration the import lost.
  idempotent:
    support: full
    description: An existing O(image) is kept unless O(force=true).
options:
  src:
    description: The tarball on this host.
    type: path
    required: true
  image:
    description: Reference (C(repo:tag)) of the image to create.
    type: str
    required: true
  changes:
    description: Dockerfile instructions applied while importing, for example C(CMD ["/app/run"]).
    type: list
    elements: str
    default: []
  source_image_config:
    description: The C(image_config) of the source container from M(mec.migration.container_info).
    type: dict
  force:
    description: Import again even if O(image) exists.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Import the exported file system on the target
  mec.migration.image_import:
    src: /var/tmp/mec-migration/run1/image.tar
    image: mec-migration/v2x-app:run1
    source_image_config: "{{ source_app.container.image_config }}"
"""

RETURN = r"""
image:
  description: The image reference.
  returned: always
  type: str
image_id:
  description: The image ID.
  returned: unless check mode created nothing
  type: str
size:
  description: Bytes of the image.
  returned: always
  type: int
duration:
  description: Seconds the import took.
  returned: always
  type: float
lost_config:
  description: >-
    Configuration keys of the source image the new image lacks (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE,
    LABEL).
  returned: when O(source_image_config) is given
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import find_image, import_image
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import IMAGE_CONFIG_KEYS, lost_image_config


def main():
    module = AnsibleModule(argument_spec=dict(
        src=dict(type="path", required=True),
        image=dict(type="str", required=True),
        changes=dict(type="list", elements="str", default=[]),
        source_image_config=dict(type="dict"),
        force=dict(type="bool", default=False),
        **DOCKER_COMMON_ARGS), supports_check_mode=True)
    p = module.params
    client = get_client(module)
    existing = run_guarded(module, find_image, client, p["image"])
    if existing and not p["force"]:
        cfg = dict((k, (existing.get("Config") or {}).get(k)) for k in IMAGE_CONFIG_KEYS)
        lost = lost_image_config(p["source_image_config"], cfg) if p["source_image_config"] is not None else None
        module.exit_json(changed=False, image=p["image"], image_id=existing["Id"],
                         size=int(existing.get("Size") or 0), duration=0.0, lost_config=lost)
    if module.check_mode:
        module.exit_json(changed=True, image=p["image"], size=0, duration=0.0)
    res = run_guarded(module, import_image, client, p["src"], p["image"], changes=p["changes"],
                      source_config=p["source_image_config"])
    res.pop("config", None)
    module.exit_json(changed=True, **res)


if __name__ == "__main__":
    main()
