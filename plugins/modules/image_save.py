#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_save
short_description: Save an image with its layers and configuration into a tarball (docker save)
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
description:
  - Writes the image (all layers, configuration and tags) into a tarball for M(mec.migration.image_load).
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the tarball would be written; nothing is saved.
  diff_mode:
    support: none
    description: No diff; RV(path) and RV(size) describe the tarball.
  idempotent:
    support: full
    description: An existing tarball is kept unless O(force=true).
options:
  image:
    description: Image reference.
    type: str
    required: true
  dest:
    description: Path of the tarball to write.
    type: path
    required: true
  force:
    description: Save again even if O(dest) exists.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Save the committed image
  mec.migration.image_save:
    image: mec-migration/v2x-app:run1
    dest: /var/tmp/mec-migration/run1/image.tar
"""

RETURN = r"""
path:
  description: The tarball.
  returned: always
  type: str
size:
  description: Bytes of the tarball.
  returned: always
  type: int
duration:
  description: Seconds the save took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import find_image, save_image
from ansible_collections.mec.migration.plugins.module_utils.module_glue import (
    MigrationError, run_guarded, write_artifact)


def _require_image(client, ref):
    if find_image(client, ref) is None:
        raise MigrationError("Image %s does not exist." % ref)


def main():
    module = AnsibleModule(argument_spec=dict(image=dict(type="str", required=True),
                                              dest=dict(type="path", required=True),
                                              force=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    run_guarded(module, _require_image, client, p["image"])
    write_artifact(module, p["dest"], p["force"], save_image, client, p["image"], p["dest"])


if __name__ == "__main__":
    main()
