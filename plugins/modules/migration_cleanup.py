#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_cleanup
short_description: Remove what a migration left on a MEC host (containers, images, volumes, work files)
description:
  - Removes the listed containers (forced), images, volumes and paths that exist; absent ones are skipped.
  - The playbook calls it on the source only after the target container is confirmed running and only when
    the user asked for the clean-up, and on the target to remove a half-made container after a failure.
  - O(paths) are removed first and without the Docker engine, so that a failed run's tarball goes even where
    the engine does not answer (the module then fails, naming the engine, after removing them).
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Reports in RV(removed) what exists and would be removed; nothing is removed.
  diff_mode:
    support: none
    description: No diff; RV(removed) lists what was removed.
  idempotent:
    support: full
    description: Only what exists is removed, so a second run reports C(changed=false).
options:
  containers:
    description: Container names (their checkpoints go with them).
    type: list
    elements: str
    default: []
  images:
    description: Image references.
    type: list
    elements: str
    default: []
  volumes:
    description: Volume names.
    type: list
    elements: str
    default: []
  paths:
    description: Files or directories (for example the run's work directory).
    type: list
    elements: path
    default: []
  finish_journal:
    description:
      - After the removal went through, close the run's journal with O(finish_journal.outcome) and release the app's
        lock, in the same call (C(mec.migration.migration_journal) C(action=finish)). A removal that fails leaves
        the journal open (C(playbooks/recover.yml) finishes it).
    type: dict
    suboptions:
      root:
        description: The state root of the journals and locks.
        type: path
        default: /var/lib/mec-migration
      app:
        description: The app whose lock is released.
        type: str
        required: true
      run_id:
        description: The run whose journal is closed.
        type: str
        required: true
      outcome:
        description: How the run ended.
        type: str
        choices: [done, rolled_back, failed]
        required: true
      data:
        description: Data kept in the closed journal (for example the error).
        type: dict
"""

EXAMPLES = r"""
- name: Remove the half-made target container after a failure
  mec.migration.migration_cleanup:
    containers: [v2x-app]
    volumes: [v2x-data]

- name: Remove the run's work directory and close its journal, one call
  mec.migration.migration_cleanup:
    paths: [/var/lib/mec-migration/work/20261126T130330Z-3f9a1c2e]
    finish_journal:
      app: v2x-app
      run_id: 20261126T130330Z-3f9a1c2e
      outcome: done
"""

RETURN = r"""
removed:
  description: What was removed, per kind (C(containers), C(images), C(volumes), C(paths)).
  returned: always
  type: dict
journal:
  description: The run's journal as closed (O(finish_journal)), or null.
  returned: with O(finish_journal)
  type: dict
released:
  description: Whether the app's lock was released (O(finish_journal)).
  returned: with O(finish_journal)
  type: bool
"""

import os
import shutil

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, NotFound, get_client)
from ansible_collections.mec.migration.plugins.module_utils import journal as jr
from ansible_collections.mec.migration.plugins.module_utils.fsutil import clear_dir
from ansible_collections.mec.migration.plugins.module_utils.images import find_image
from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import find_container


def _volume_exists(client, name):
    try:
        client.api.inspect_volume(name)
        return True
    except NotFound:
        return False


def plan(client, p):
    return dict(containers=[c for c in p["containers"] if find_container(client, c) is not None],
                images=[i for i in p["images"] if find_image(client, i) is not None],
                volumes=[v for v in p["volumes"] if _volume_exists(client, v)],
                paths=[x for x in p["paths"] if os.path.lexists(x)])


def apply(client, todo):
    for name in todo["containers"]:
        client.api.remove_container(name, force=True)
    for ref in todo["images"]:
        client.api.remove_image(ref, force=True)
    for name in todo["volumes"]:
        client.api.remove_volume(name, force=True)
    for path in todo["paths"]:
        if os.path.ismount(path):
            clear_dir(path)  # a file system mounted there: its content goes, the mount point stays
        elif os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


def close_journal(module, j, removed_changed):
    """Close the run's journal and release the app's lock (finish_journal), after the cleanup went through."""
    jr.check_name("app", j["app"])
    jr.check_name("run_id", j["run_id"])
    if module.check_mode:
        return dict(changed=removed_changed, journal=jr.read_journal(j["root"], j["run_id"]), released=False)
    changed, journal, released = jr.finish(j["root"], j["run_id"], j["app"], j["outcome"], data=j["data"])
    return dict(changed=removed_changed or changed, journal=journal, released=released)


def main():
    module = AnsibleModule(argument_spec=dict(
        containers=dict(type="list", elements="str", default=[]),
        images=dict(type="list", elements="str", default=[]),
        volumes=dict(type="list", elements="str", default=[]),
        paths=dict(type="list", elements="path", default=[]),
        finish_journal=dict(type="dict", options=dict(
            root=dict(type="path", default="/var/lib/mec-migration"),
            app=dict(type="str", required=True),
            run_id=dict(type="str", required=True),
            outcome=dict(type="str", choices=list(jr.FINAL_PHASES), required=True),
            data=dict(type="dict"))),
        **DOCKER_COMMON_ARGS), supports_check_mode=True)
    p = module.params
    paths = [x for x in p["paths"] if os.path.lexists(x)]
    if paths and not module.check_mode:
        run_guarded(module, apply, None, dict(containers=[], images=[], volumes=[], paths=paths))
    if not (p["containers"] or p["images"] or p["volumes"]):
        todo, changed = dict(containers=[], images=[], volumes=[], paths=paths), bool(paths)
    else:
        client = get_client(module)
        todo = run_guarded(module, plan, client, dict(p, paths=[]))
        todo["paths"] = paths
        changed = any(todo.values())
        if changed and not module.check_mode:
            run_guarded(module, apply, client, dict(todo, paths=[]))
    if p["finish_journal"]:
        closed = run_guarded(module, close_journal, module, p["finish_journal"], changed)
        module.exit_json(removed=todo, **closed)
    module.exit_json(changed=changed, removed=todo)


if __name__ == "__main__":
    main()
