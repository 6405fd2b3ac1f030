#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: container_info
short_description: Run configuration and sizes of a container on a MEC host
description:
  - Reads the run configuration of a container (image, command overrides, environment, ports, volumes,
    networks with aliases, restart policy, labels, hostname, user, working directory) split into what its
    image gives and what C(docker run) added, and its sizes in bytes.
  - The preflight and the results record of C(playbooks/migrate.yml) use it.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
    description: No diff; the module only reads.
  idempotent:
    support: full
    description: It only reads the container and its image; it never reports a change.
options:
  name:
    description: Container name or ID.
    type: str
    required: true
  sizes:
    description: Also measure the container's and its volumes' sizes (slower on big containers).
    type: bool
    default: true
  journal_root:
    description:
      - Also read, in the same call, the app's (O(name)) lock and its runs' journals under this state root (as
        C(mec.migration.migration_journal) C(action=read)); the migration's preflight reads both hosts this way.
    type: path
  journals:
    description:
      - With O(journal_root), which of the app's runs' journals to return in RV(journals) - V(all), or V(unfinished)
        only (the migration's preflight needs no more; an app with hundreds of past runs returns kilobytes, not a
        quarter of a megabyte). RV(lock) and RV(unfinished) are the same either way.
    type: str
    choices: [all, unfinished]
    default: all
  journal_work_root:
    description:
      - With O(journal_root), the migration's own work root. Every unfinished run's journal must name only what
        that run made (as C(mec.migration.migration_journal) checks with its option C(work_root)), or the read fails
        naming every problem, so that no recovery acts on another run's files, images or volumes.
    type: path
  chain_ids:
    description: Also list the chain IDs of the image layers the engine holds (the target's, so that the source
      leaves those layers out of the image it sends with C(mec.migration.image_save)'s C(skip_chain_ids)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the container, the app's lock and journals, and the layers the engine holds, one call
  mec.migration.container_info:
    name: v2x-app
    journal_root: /var/lib/mec-migration
    journal_work_root: /var/lib/mec-migration/work
    chain_ids: true
  register: host_state

- name: Capture the source container's run configuration
  mec.migration.container_info:
    name: v2x-app
  register: source_app
"""

RETURN = r"""
lock:
  description: The app's lock (O(journal_root)), or null.
  returned: with O(journal_root)
  type: dict
journals:
  description: The app's runs' journals on this host (O(journal_root)); only the unfinished ones with
    O(journals=unfinished).
  returned: with O(journal_root)
  type: list
  elements: dict
unfinished:
  description: The journals of the app's runs that did not finish (O(journal_root)).
  returned: with O(journal_root)
  type: list
  elements: dict
chain_ids:
  description:
    - The chain IDs (C(sha256:...)) of every layer of every image the engine holds (O(chain_ids)), the layers an
      image archive for this host may leave out.
    - Empty on Podman, whose load needs every layer in the archive (the source then sends every layer).
  returned: with O(chain_ids)
  type: list
  elements: str

exists:
  description: Whether the container exists.
  returned: always
  type: bool
container:
  description: >-
    Run configuration (keys C(name), C(id), C(image), C(image_id), C(running), C(status), C(overrides),
    C(ports), C(mounts), C(tmpfs), C(network_mode), C(networks), C(network_drivers), C(restart_policy),
    C(image_config), C(effective)) and, with O(sizes), C(size_rw), C(size_root_fs), C(image_size),
    C(volume_sizes) in bytes. Empty when the container does not exist.
  returned: always
  type: dict
engine:
  description: Engine facts C(name) (docker or podman), C(version), C(experimental), C(docker_root_dir) (the engine's
    store), C(engine_id), C(hostname).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils import journal as jr
from ansible_collections.mec.migration.plugins.module_utils.docker_client import DOCKER_COMMON_ARGS, get_client
from ansible_collections.mec.migration.plugins.module_utils.engines import facts as engine_facts
from ansible_collections.mec.migration.plugins.module_utils.images import skippable_chain_ids
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError, run_guarded
from ansible_collections.mec.migration.plugins.module_utils.run_config import container_info


def read_journals(root, app, work_root=None, which="all"):
    """The app's lock and its runs' journals on this host (migration_journal action=read); with ``work_root``
    every unfinished run's journal must name only what the run made (journal.check_recoverable)."""
    try:
        jr.check_name("app", app)
        unreadable = []
        journals = (jr.recoverable_journals(root, app, work_root, unreadable=unreadable) if work_root
                    else jr.app_journals(root, app, unreadable=unreadable))
        unfinished = jr.unfinished(journals)
        return dict(lock=jr.read_lock(root, app), journals=journals if which == "all" else unfinished,
                    unfinished=unfinished, unreadable=unreadable)
    except jr.JournalError as exc:
        raise MigrationError(str(exc)) from exc


def main():
    module = AnsibleModule(argument_spec=dict(name=dict(type="str", required=True),
                                              sizes=dict(type="bool", default=True),
                                              journal_root=dict(type="path"),
                                              journal_work_root=dict(type="path"),
                                              journals=dict(type="str", choices=["all", "unfinished"],
                                                            default="all"),
                                              chain_ids=dict(type="bool", default=False), **DOCKER_COMMON_ARGS),
                           supports_check_mode=True)
    p = module.params
    extra = {}
    if p["journal_root"]:
        extra = run_guarded(module, read_journals, p["journal_root"], p["name"], p["journal_work_root"],
                            p["journals"])
    client = get_client(module)
    cfg = run_guarded(module, container_info, client, p["name"], p["sizes"])
    engine = run_guarded(module, engine_facts, client)
    if p["chain_ids"]:
        extra["chain_ids"] = run_guarded(module, skippable_chain_ids, client)
    module.exit_json(changed=False, exists=cfg is not None, container=cfg or {}, engine=engine, **extra)


if __name__ == "__main__":
    main()
