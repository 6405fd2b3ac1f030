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
  - With O(via=runtime) (the default where possible) runc makes the dump instead (see O(via)).
  - A failed dump names CRIU's reason, read from CRIU's log on the host (RV(criu_errors), RV(criu_log) in the
    failure's result). Established TCP connections follow the runtime's CRIU configuration
    (M(mec.migration.criu_config)).
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether a checkpoint would be made (C(changed)) and where; nothing is dumped.
  diff_mode:
    support: none
    description: No diff; RV(checkpoint_path) and RV(size) describe the checkpoint.
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
    description: Directory to write the checkpoint into (as C(<checkpoint_dir>/<checkpoint>)); default is the
      container's own C(checkpoints/) directory.
    type: path
  via:
    description:
      - V(runtime) dumps the container with runc, the runtime below the engine, straight into
        O(checkpoint_dir) (needs it); the app is frozen only while CRIU dumps it, where the engine's call
        pauses it for the whole call (about 0.2 s against 0.45 s for a 14 MB app here). The engine sees a
        checkpoint with O(leave_running=false) as an exit, as after its own.
      - V(engine) uses the engine's checkpoint API (Docker only; on a Podman host the module dumps through runc,
        whose state root there is C(/run/runc)).
      - The checkpoint folder gets a C(mec-checkpoint.json) naming the engine, so that a target of the other engine
        refuses it before a relocation.
      - V(auto) is V(runtime) when O(checkpoint_dir) is given and runc holds the container's state, else V(engine).
    type: str
    choices: [auto, runtime, engine]
    default: auto
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
  description: Directory holding the checkpoint's CRIU images (not C(path), which Ansible would decorate with the
    directory's own stat).
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
via:
  description: How the checkpoint was made, V(runtime) or V(engine).
  returned: changed
  type: str
criu_duration:
  description: Seconds CRIU's own dump took, from its log (V(runtime) only).
  returned: changed
  type: float
attempts:
  description:
    - Dumps tried (V(runtime) only); 2 when the first failed on a race with the container's own processes (a task
      CRIU could not seize while it exited or forked) and was tried again. Null with V(engine).
  returned: changed
  type: int
retried_after:
  description: CRIU's reason for the failed first dump when there was a second (V(runtime) only), else null.
  returned: changed
  type: str
criu_errors:
  description: CRIU's error lines from its log of the failed dump (empty when the log has none or is unreadable).
  returned: failure of the dump
  type: list
  elements: str
criu_log:
  description: Path, on the host, of CRIU's log of the failed dump (null when none was found).
  returned: failure of the dump
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_client, hostname)
from ansible_collections.mec.migration.plugins.module_utils.engines import engine_of
from ansible_collections.mec.migration.plugins.module_utils.podman_checkpoint import write_marker
from ansible_collections.mec.migration.plugins.module_utils.checkpoints import (
    container_checkpoint_dir, create_checkpoint, remove_checkpoint, runtime_checkpoint, runtime_root)
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
        via=dict(type="str", choices=["auto", "runtime", "engine"], default="auto"),
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
    via = p["via"]
    if via == "auto":
        via = "runtime" if p["checkpoint_dir"] and runtime_root(info["Id"]) else "engine"
    if via == "runtime":
        if not p["checkpoint_dir"]:
            module.fail_json(msg="via=runtime needs checkpoint_dir (where runc writes the checkpoint).")
        res = run_guarded(module, runtime_checkpoint, module, info["Id"], path, leave_running=p["leave_running"])
        # which engine's container it is: the target refuses a checkpoint of the other engine before the relocation
        run_guarded(module, write_marker, path, engine_of(client), info["Id"])
    elif engine_of(client) == "podman":
        module.fail_json(msg="On Podman (host %s) the module checkpoints through runc only: give checkpoint_dir (and "
                             "via=auto or runtime); the relocation's final checkpoint uses Podman's own API."
                         % hostname())
    else:
        if os.path.isdir(path):
            run_guarded(module, remove_checkpoint, client, info["Id"], p["checkpoint"], p["checkpoint_dir"])
        res = run_guarded(module, create_checkpoint, client, p["name"], p["checkpoint"],
                          leave_running=p["leave_running"], checkpoint_dir=p["checkpoint_dir"], container_id=info["Id"])
    module.exit_json(changed=True, checkpoint_path=res["path"], size=res["size"], duration=res["duration"], via=via,
                     criu_duration=res.get("criu_duration"), attempts=res.get("attempts"),
                     retried_after=res.get("retried_after"))


if __name__ == "__main__":
    main()
