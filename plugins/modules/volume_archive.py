#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: volume_archive
short_description: Archive a Docker volume's content into a tarball
description:
  - Writes a tar of the volume's Mountpoint (members under C(<volume>/), owners and modes kept) for
    M(mec.migration.volume_restore).
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the tarball would be written; nothing is archived.
  diff_mode:
    support: none
    description: No diff; RV(path) and RV(size) describe the tarball.
  idempotent:
    support: full
    description: An existing tarball is kept unless O(force=true).
options:
  volume:
    description: Volume name.
    type: str
    required: true
  dest:
    description: Path of the tarball to write.
    type: path
    required: true
  force:
    description: Archive again even if O(dest) exists.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Archive the app's volume
  mec.migration.volume_archive:
    volume: v2x-data
    dest: /var/tmp/mec-migration/run1/volume.tar
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
volume_size:
  description: Bytes of the files in the volume.
  returned: when archived
  type: int
duration:
  description: Seconds the archive took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded, write_artifact
from ansible_collections.mec.migration.plugins.module_utils.volumes import archive_volume


def main():
    module = AnsibleModule(argument_spec=dict(volume=dict(type="str", required=True),
                                              dest=dict(type="path", required=True),
                                              force=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    run_guarded(module, client.api.inspect_volume, p["volume"])
    write_artifact(module, p["dest"], p["force"], archive_volume, client, p["volume"], p["dest"])


if __name__ == "__main__":
    main()
