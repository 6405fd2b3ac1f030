#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_load
short_description: Load an image tarball made by docker save (docker load)
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
description:
  - Loads a tarball made by M(mec.migration.image_save); the image keeps its configuration.
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Checks that O(src) exists and reports a load; nothing is loaded.
  diff_mode:
    support: none
    description: No diff; RV(images) names the images loaded.
  idempotent:
    support: partial
    description: With O(image) set, an image that is already present is not loaded again.
options:
  src:
    description: The tarball on this host.
    type: path
    required: true
  image:
    description: Reference the tarball holds; when it exists already nothing is loaded (unless O(force=true)).
    type: str
  force:
    description: Load even if O(image) exists.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Load the image on the target
  mec.migration.image_load:
    src: /var/tmp/mec-migration/run1/image.tar
    image: mec-migration/v2x-app:run1
"""

RETURN = r"""
images:
  description: References loaded.
  returned: always
  type: list
  elements: str
size:
  description: Bytes of the tarball.
  returned: always
  type: int
duration:
  description: Seconds the load took.
  returned: always
  type: float
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import find_image, load_image
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded


def main():
    module = AnsibleModule(argument_spec=dict(src=dict(type="path", required=True),
                                              image=dict(type="str"),
                                              force=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    if p["image"] and not p["force"] and run_guarded(module, find_image, client, p["image"]):
        module.exit_json(changed=False, images=[p["image"]], size=0, duration=0.0)
    if not os.path.isfile(p["src"]):
        module.fail_json(msg="The tarball %s does not exist." % p["src"])
    if module.check_mode:
        module.exit_json(changed=True, images=[], size=os.path.getsize(p["src"]), duration=0.0)
    res = run_guarded(module, load_image, client, p["src"])
    module.exit_json(changed=True, **res)


if __name__ == "__main__":
    main()
