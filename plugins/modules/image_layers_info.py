#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: image_layers_info
short_description: List the layer stacks (chain IDs) a Docker engine holds, for image_save's skip_chain_ids
version_added: 0.2.0
author: mec.migration developers (@mec-migration)
description:
  - Returns the chain ID of every layer stack the engine holds (every prefix of every image's layers). A layer is
    only usable by C(docker load) on the same parents, which is what its chain ID names.
  - Give the result to M(mec.migration.image_save) on the source as O(mec.migration.image_save#module:skip_chain_ids)
    so that the archive leaves out what this host already has.
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reads only; runs the same in check mode.
  diff_mode:
    support: none
    description: Reads only.
  idempotent:
    support: full
    description: Reads only; never changed.
options: {}
seealso:
  - module: mec.migration.image_save
  - module: mec.migration.image_load
"""

EXAMPLES = r"""
- name: Read which layers the target holds
  mec.migration.image_layers_info:
  register: target_layers
"""

RETURN = r"""
chain_ids:
  description: Chain IDs of the layer stacks the engine holds, sorted.
  returned: always
  type: list
  elements: str
  sample: [sha256:00ded2a506f2c273a7def0ccbb52836e075d900292acc7345babc9a83c70ee92]
duration:
  description: Seconds the listing took.
  returned: always
  type: float
  sample: 0.04
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.images import present_chain_ids
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded


def main():
    module = AnsibleModule(argument_spec=dict(**DOCKER_COMMON_ARGS), supports_check_mode=True)
    client = get_client(module)
    t0 = time.monotonic()
    ids = run_guarded(module, present_chain_ids, client)
    module.exit_json(changed=False, chain_ids=ids, duration=round(time.monotonic() - t0, 6))


if __name__ == "__main__":
    main()
