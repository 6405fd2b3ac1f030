#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_restore
short_description: Create a Docker volume and fill it from a tarball made by volume_archive
description:
  - Creates the volume when missing and replaces its Mountpoint's content with the tarball's.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the volume would be created (RV(created)) and filled; nothing is changed.
  diff_mode:
    support: none
    description: No diff; RV(created) tells whether the volume was created.
  idempotent:
    support: partial
    description: A volume that exists and is not empty is left alone unless O(force=true).
options:
  volume:
    description: Volume name.
    type: str
    required: true
  src:
    description: Tarball made by M(mec.migration.volume_archive).
    type: path
    required: true
  force:
    description: Replace the content of a volume that is not empty.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Restore the app's volume on the target
  mec.migration.volume_restore:
    volume: v2x-data
    src: /var/tmp/mec-migration/run1/volume.tar
"""

RETURN = r"""
created:
  description: Whether the volume was created.
  returned: when restored
  type: bool
members:
  description: Number of tar members extracted.
  returned: when restored
  type: int
volume_size:
  description: Bytes of the files in the volume afterwards.
  returned: when restored
  type: int
duration:
  description: Seconds the restore took.
  returned: always
  type: float
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, NotFound, get_client)
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.volumes import restore_volume


def main():
    module = AnsibleModule(argument_spec=dict(volume=dict(type="str", required=True),
                                              src=dict(type="path", required=True),
                                              force=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    if not os.path.isfile(p["src"]):
        module.fail_json(msg="The tarball %s does not exist." % p["src"])
    try:
        mountpoint = client.api.inspect_volume(p["volume"])["Mountpoint"]
    except NotFound:
        mountpoint = None
    if mountpoint and os.listdir(mountpoint) and not p["force"]:
        module.exit_json(changed=False, duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, created=mountpoint is None, duration=0.0)
    res = run_guarded(module, restore_volume, client, p["volume"], p["src"])
    module.exit_json(changed=True, **res)


if __name__ == "__main__":
    main()
