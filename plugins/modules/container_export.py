#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: container_export
short_description: Export a container's file system into a tarball (docker export)
description:
  - Flattens the container's layered file system into a tarball, the first step of strategy m1.
  - The container keeps running.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the tarball would be written; nothing is exported.
  diff_mode:
    support: none
    description: No diff; RV(path) and RV(size) describe the tarball.
  idempotent:
    support: full
    description: An existing tarball is kept unless O(force=true).
options:
  name:
    description: Container to export.
    type: str
    required: true
  dest:
    description: Path of the tarball to write.
    type: path
    required: true
  force:
    description: Export again even if O(dest) exists.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Export the app's file system
  mec.migration.container_export:
    name: v2x-app
    dest: /var/lib/mec-migration/work/run1/image.tar
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
  description: Seconds the export took (0 when nothing was done).
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import export_container
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded, write_artifact
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True),
                                              dest=dict(type="path", required=True),
                                              force=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    run_guarded(module, require_container, client, p["name"])
    write_artifact(module, p["dest"], p["force"], export_container, client, p["name"], p["dest"])


if __name__ == "__main__":
    main()
