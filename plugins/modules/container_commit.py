#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: container_commit
short_description: Commit a running container into an image (docker commit) and measure its freeze
description:
  - Creates an image from the container, keeping the image configuration (strategies m2 and m3).
  - The engine pauses the container during the commit; the module measures that freeze from the engine's
    C(pause)/C(unpause) events, or reports the commit's duration as an upper bound when no events are seen.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the image would be committed; the container is neither paused nor committed.
  diff_mode:
    support: none
    description: No diff; RV(image_id) and RV(size) describe the image.
  idempotent:
    support: full
    description: An existing O(image) is kept unless O(force=true).
options:
  name:
    description: Container to commit.
    type: str
    required: true
  image:
    description: Reference (C(repo:tag)) of the image to create.
    type: str
    required: true
  changes:
    description: Dockerfile instructions applied to the new image.
    type: list
    elements: str
    default: []
  force:
    description: Commit again even if O(image) exists.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Commit the app
  mec.migration.container_commit:
    name: v2x-app
    image: mec-migration/v2x-app:run1
  register: commit
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
  description: Seconds the commit took.
  returned: always
  type: float
freeze_duration:
  description: Seconds the container was paused.
  returned: always
  type: float
freeze_source:
  description: How RV(freeze_duration) was measured.
  returned: when committed
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import commit_container, find_image
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        image=dict(type="str", required=True),
        changes=dict(type="list", elements="str", default=[]),
        force=dict(type="bool", default=False),
        **DOCKER_COMMON_ARGS), supports_check_mode=True)
    p = module.params
    client = get_client(module)
    run_guarded(module, require_container, client, p["name"])
    existing = run_guarded(module, find_image, client, p["image"])
    if existing and not p["force"]:
        module.exit_json(changed=False, image=p["image"], image_id=existing["Id"],
                         size=int(existing.get("Size") or 0), duration=0.0, freeze_duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, image=p["image"], size=0, duration=0.0, freeze_duration=0.0)
    res = run_guarded(module, commit_container, client, p["name"], p["image"], changes=p["changes"])
    module.exit_json(changed=True, **res)


if __name__ == "__main__":
    main()
