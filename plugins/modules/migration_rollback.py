#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_rollback
short_description: Bring the source container back after a failed relocation
description:
  - With O(checkpoint) (strategy m3) the stopped container is started from that checkpoint, so it keeps its
    memory state; if that fails, or without a checkpoint, it is started as it is, with its volumes (which the
    migration only read).
  - Confirms that the container runs; fails otherwise.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports whether the source container would be started, and how; nothing is started.
  diff_mode:
    support: none
    description: No diff; RV(method) tells how the container was brought back.
  idempotent:
    support: full
    description: A running container is left alone.
options:
  name:
    description: The source container.
    type: str
    required: true
  checkpoint:
    description: The last checkpoint of the container (its final relocation checkpoint).
    type: str
  checkpoint_dir:
    description:
      - Where else O(checkpoint) may lie (as C(<checkpoint_dir>/<checkpoint>)) when it is not in the container's
        own C(checkpoints/) directory, as after a final checkpoint made through the runtime into the run's work
        directory; it is copied there before the start.
    type: path
  restart_policy:
    description:
      - The source's own restart policy (C(Name), C(MaximumRetryCount)), which the relocation cleared so that
        the engine would not restart the stopped source; it is put back.
    type: dict
"""

EXAMPLES = r"""
- name: Bring the app back on the source
  mec.migration.migration_rollback:
    name: v2x-app
    checkpoint: run1-final
"""

RETURN = r"""
method:
  description: V(checkpoint), V(start) or V(already running).
  returned: always
  type: str
running:
  description: Whether the container runs.
  returned: always
  type: bool
errors:
  description: What failed on the way (for example the restore from the checkpoint before a plain start).
  returned: when changed
  type: list
  elements: str
duration:
  description: Seconds the rollback took.
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_client, hostname)
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.relocation import rollback_source
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True),
                                              checkpoint=dict(type="str"), restart_policy=dict(type="dict"),
                                              checkpoint_dir=dict(type="path"),
                                              **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    client = get_client(module)
    info = run_guarded(module, require_container, client, p["name"])
    if (info.get("State") or {}).get("Running") and not module.check_mode:
        res = run_guarded(module, rollback_source, client, p["name"], restart_policy=p["restart_policy"])
        module.exit_json(changed=res["changed"], method=res["method"], running=True, duration=0.0)
    if (info.get("State") or {}).get("Running"):
        module.exit_json(changed=False, method="already running", running=True, duration=0.0)
    if module.check_mode:
        module.exit_json(changed=True, method="checkpoint" if p["checkpoint"] else "start", running=False,
                         duration=0.0)
    t0 = time.monotonic()
    res = run_guarded(module, rollback_source, client, p["name"], checkpoint=p["checkpoint"],
                      restart_policy=p["restart_policy"], checkpoint_dir=p["checkpoint_dir"])
    res["duration"] = round(time.monotonic() - t0, 6)
    state = res.pop("state", {})
    if not res["running"]:
        module.fail_json(msg="The source container %s did not come back on host %s (status %s, error %r)."
                         % (p["name"], hostname(), state.get("Status"), state.get("Error")), **res)
    module.exit_json(**res)


if __name__ == "__main__":
    main()
