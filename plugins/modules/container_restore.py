#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: container_restore
short_description: Start a created container from a CRIU checkpoint (docker start --checkpoint)
description:
  - Docker 20.10 refuses C(--checkpoint-dir) at start, so the module first places the checkpoint
    directory O(src) (if given) into the container's own C(<docker root>/containers/<id>/checkpoints/<checkpoint>/)
    and then runs C(docker start --checkpoint <checkpoint>), and confirms the container runs.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the stopped container would be started; no checkpoint is placed and nothing is
      started.
  diff_mode:
    support: none
    description: No diff; RV(running) tells whether the container runs.
  idempotent:
    support: full
    description: A running container is left alone.
options:
  name:
    description: The created (not running) container.
    type: str
    required: true
  checkpoint:
    description: Checkpoint name.
    type: str
    required: true
  src:
    description: Checkpoint directory to place first (for example one received with rsync).
    type: path
"""

EXAMPLES = r"""
- name: Restore the app on the target
  mec.migration.container_restore:
    name: v2x-app
    checkpoint: run1-final
    src: /var/lib/mec-migration/work/run1/checkpoint
"""

RETURN = r"""
placed:
  description: Where the checkpoint was placed.
  returned: when O(src) is given
  type: str
duration:
  description: Seconds the start from the checkpoint took.
  returned: always
  type: float
running:
  description: Whether the container runs.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_client, hostname)
from ansible_collections.mec.migration.plugins.module_utils.checkpoints import place_checkpoint, start_from_checkpoint
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container, wait_running


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True),
                                              checkpoint=dict(type="str", required=True),
                                              src=dict(type="path"), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    info = run_guarded(module, require_container, client, p["name"])
    if (info.get("State") or {}).get("Running"):
        module.exit_json(changed=False, running=True, duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, running=False, duration=0.0)
    result = {}
    if p["src"]:
        result["placed"] = run_guarded(module, place_checkpoint, client, info["Id"], p["src"], p["checkpoint"])
    result["duration"] = run_guarded(module, start_from_checkpoint, client, info["Id"], p["checkpoint"])
    running, state = run_guarded(module, wait_running, client, info["Id"])
    if not running:
        module.fail_json(msg="Container %s did not stay running after the restore on host %s (status %s, error %r)."
                         % (p["name"], hostname(), state.get("Status"), state.get("Error")), state=state, **result)
    module.exit_json(changed=True, running=True, **result)


if __name__ == "__main__":
    main()
