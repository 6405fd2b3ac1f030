#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_load
short_description: Load an image archive made by docker save or image_save, checking the layers it leaves out
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
description:
  - Loads an archive made by M(mec.migration.image_save) (or C(docker save)); the image keeps its configuration and
    its ID.
  - An archive written with C(skip_chain_ids) lists layers without their tar. Before anything is loaded the module
    checks that this engine holds each of them with the same parents (chain ID); when one is missing it fails with
    RV(missing_chain_ids) and loads nothing, so that the caller writes a full archive instead. It never leaves a
    broken image.
  - After the load it checks that the image has the archive's ID and every diff ID of its configuration, and that
    O(image) names it.
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
    description: With O(image) set, nothing is loaded when O(image) already is the archive's image (same ID); a
      different image under that name is replaced. Without O(src) on the host, an existing O(image) is kept.
options:
  src:
    description: The archive on this host.
    type: path
    required: true
  image:
    description: Reference the archive holds; when it already names the archive's image nothing is loaded (unless
      O(force=true)), and after a load it must name the loaded image.
    type: str
  force:
    description: Load even if O(image) already is the archive's image.
    type: bool
    default: false
seealso:
  - module: mec.migration.image_save
  - module: mec.migration.image_layers_info
"""

EXAMPLES = r"""
- name: Load the image on the target
  mec.migration.image_load:
    src: /var/lib/mec-migration/work/run1/image.tar
    image: mec-migration/v2x-app:run1
"""

RETURN = r"""
images:
  description: References loaded.
  returned: always
  type: list
  elements: str
  sample: [mec-migration/v2x-app:run1]
image_id:
  description: ID of the archive's image (null when nothing was read).
  returned: always
  type: str
  sample: sha256:343efa5160a06709c7624ef9eb1afc7a5eb1f6a298f0637d6258ced132fd28f8
size:
  description: Bytes of the archive.
  returned: always
  type: int
  sample: 30720
duration:
  description: Seconds the checks and the load took.
  returned: always
  type: float
  sample: 0.21
layers_loaded:
  description: Layers whose tar the archive carried.
  returned: always
  type: int
  sample: 1
layers_present:
  description: Layers the archive left out, taken from this engine's layer store.
  returned: always
  type: int
  sample: 1
missing_chain_ids:
  description: On failure, the chain IDs the archive left out that this engine does not hold.
  returned: when the archive leaves out layers this engine lacks
  type: list
  elements: str
  sample: [sha256:00ded2a506f2c273a7def0ccbb52836e075d900292acc7345babc9a83c70ee92]
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import (
    find_image, load_image_archive, read_archive_plan)
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded


def _already_loaded(client, image, src):
    """The ID of ``image`` when it already is the archive's image (or when there is no archive to compare)."""
    existing = find_image(client, image)
    if existing is None:
        return None
    if not os.path.isfile(src):
        return existing["Id"]
    ids = [plan["config_id"] for plan in read_archive_plan(src)]
    return existing["Id"] if existing["Id"] in ids else None


def main():
    module = AnsibleModule(argument_spec=dict(src=dict(type="path", required=True),
                                              image=dict(type="str"),
                                              force=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    if p["image"] and not p["force"]:
        image_id = run_guarded(module, _already_loaded, client, p["image"], p["src"])
        if image_id:
            module.exit_json(changed=False, images=[p["image"]], image_id=image_id, size=0, duration=0.0,
                             layers_loaded=0, layers_present=0)
    if not os.path.isfile(p["src"]):
        module.fail_json(msg="The archive %s does not exist." % p["src"])
    if module.check_mode:
        module.exit_json(changed=True, images=[], image_id=None, size=os.path.getsize(p["src"]), duration=0.0,
                         layers_loaded=0, layers_present=0)
    module.exit_json(changed=True, **run_guarded(module, load_image_archive, client, p["src"], p["image"]))


if __name__ == "__main__":
    main()
