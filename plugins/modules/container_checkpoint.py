#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: container_checkpoint
short_description: Checkpoint a running container with CRIU (docker checkpoint create)
description:
  - Dumps the container's processes (memory pages, registers, files, sockets) with CRIU through the engine
    (strategy m3). Needs an engine with experimental features on and a working C(criu).
  - The Docker SDK has no checkpoint call; this module calls the engine's checkpoint API directly (what
    C(docker checkpoint create) calls), through the SDK's client.
  - A failed dump names CRIU's reason, read from CRIU's log on the host (RV(criu_errors), RV(criu_log) in the
    failure's result). Established TCP connections follow the runtime's CRIU configuration
    (M(mec.migration.criu_config)).
version_added: 0.1.0
author: mec.migration developers
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  idempotent:
    support: full
    description: An existing checkpoint of that name is kept unless O(force=true).
options:
  name:
    description: Container to checkpoint.
    type: str
    required: true
  checkpoint:
    description: Checkpoint name.
    type: str
    required: true
  leave_running:
    description: Keep the container running after the dump (pre-relocation); V(false) stops it (relocation).
    type: bool
    default: true
  checkpoint_dir:
    description: Directory to write the checkpoint into (as C(<checkpoint_dir>/<checkpoint>)); default is the container's own C(checkpoints/) directory.
    type: path
  force:
    description: Remove an existing checkpoint of that name first.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Pre-relocation checkpoint, the app keeps running
  mec.migration.container_checkpoint:
    name: v2x-app
    checkpoint: run1-pre
"""

RETURN = r"""
checkpoint_path:
  description: Directory holding the checkpoint's CRIU images (not C(path), which Ansible would decorate with the directory's own stat).
  returned: always
  type: str
size:
  description: Bytes of the checkpoint.
  returned: always
  type: int
duration:
  description: Seconds the checkpoint took.
  returned: always
  type: float
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_client)
from ansible_collections.mec.migration.plugins.module_utils.checkpoints import (
    container_checkpoint_dir, create_checkpoint, remove_checkpoint)
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def main():
    module = AnsibleModule(argument_spec=dict(
        name=dict(type="str", required=True),
        checkpoint=dict(type="str", required=True),
        leave_running=dict(type="bool", default=True),
        checkpoint_dir=dict(type="path"),
        force=dict(type="bool", default=False),
        **DOCKER_COMMON_ARGS), supports_check_mode=True)
    p = module.params
    client = get_client(module)
    info = run_guarded(module, require_container, client, p["name"])
    path = os.path.join(p["checkpoint_dir"], p["checkpoint"]) if p["checkpoint_dir"] else \
        run_guarded(module, container_checkpoint_dir, client, info["Id"], p["checkpoint"])
    if os.path.isdir(path) and not p["force"]:
        module.exit_json(changed=False, checkpoint_path=path, size=dir_size(path), duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, checkpoint_path=path, size=0, duration=0.0)
    if os.path.isdir(path):
        run_guarded(module, remove_checkpoint, client, info["Id"], p["checkpoint"], p["checkpoint_dir"])
    res = run_guarded(module, create_checkpoint, client, p["name"], p["checkpoint"],
                      leave_running=p["leave_running"], checkpoint_dir=p["checkpoint_dir"], container_id=info["Id"])
    module.exit_json(changed=True, checkpoint_path=res["path"], size=res["size"], duration=res["duration"])


if __name__ == "__main__":
    main()
