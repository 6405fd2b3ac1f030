#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

# The documentation of the action plugin plugins/action/migration_decide.py: it runs in the controller's process and
# never sends this file anywhere.
from __future__ import annotations

DOCUMENTATION = r"""
module: migration_decide
short_description: Decide whether a stopped migration run is finished, rolled back or left to recover.yml
description:
  - The one place that decides what happens to a migration run that stopped after its preflight (a failed step,
    or its controller died), from what the hosts say now; the role's rescue and C(playbooks/recover.yml) both use it.
  - C(finish) when the target runs the app and the source does not (the relocation went through; with
    O(target_journaled=false), never - the target has no journal of the run).
  - C(undecided) when the source's half of the relocation went through, the target's half never reported and the
    target cannot be asked now (the app may run there; recover.yml decides once it answers).
  - C(rollback) otherwise.
  - An action plugin - it runs in the controller's process; no module process, no connection. The logic is
    C(end_action) in C(plugins/module_utils/migration_run.py).
version_added: 0.4.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Decides in check mode too (it changes nothing).
  diff_mode:
    support: none
    description: No diff.
  idempotent:
    support: full
    description: The same results give the same decision.
options:
  step:
    description:
      - C(read) after C(mec.migration.container_info) on both hosts (a host that cannot be read, a run that holds
        the app or left it unfinished, an app already migrated); C(preflight) after C(mec.migration.migration_preflight)
        on both hosts; C(end) the decision above.
    type: str
    choices: [read, preflight, end]
    default: end
  source_host:
    description: The source's inventory name.
    type: str
  target_host:
    description: The target's inventory name.
    type: str
  source:
    description: The registered result of C(mec.migration.container_info) on the source, now (with O(step=preflight),
      of C(mec.migration.migration_preflight)).
    type: raw
  target:
    description: The registered result of C(mec.migration.container_info) on the target, now (with
      O(step=preflight), of C(mec.migration.migration_preflight)).
    type: raw
  registered:
    description:
      - With O(step=read) or O(step=preflight), instead of O(source) and O(target) - the name of the variable in
        which both hosts (O(source_host), O(target_host)) registered that result; the action reads it as stored,
        without passing it through the templating engine (much less CPU for a large result, e.g. an app with many
        past runs' journals).
    type: str
  app:
    description: The app's container name (O(step=read)'s messages).
    type: str
  state_root:
    description: The hosts' state folder (O(step=read)'s messages).
    type: str
    default: /var/lib/mec-migration
  recover:
    description: With O(step=read), unfinished runs are returned (fact C(migration_unfinished)) to be recovered
      first instead of refusing the run.
    type: bool
    default: false
  source_relocation:
    description: The source's registered result of C(mec.migration.migration_relocate), if it ran.
    type: raw
  target_relocation:
    description: The target's registered result of C(mec.migration.migration_relocate); unset or empty when it
      never reported.
    type: raw
  target_journaled:
    description: Whether the target has the run's journal (C(recover.yml)).
    type: bool
    default: true
  fact:
    description: The fact that receives the decision.
    type: str
    default: migration_end_action
"""

EXAMPLES = r"""
- name: Decide whether to finish, roll back or leave it to recover.yml
  mec.migration.migration_decide:
    source: "{{ migration_rescue_info.results[0] }}"
    target: "{{ migration_rescue_info.results[1] }}"
    source_relocation: "{{ hostvars[migration_source].migration_relocation | default({}) }}"
    target_relocation: "{{ hostvars[migration_target].migration_relocation | default({}) }}"
    fact: migration_rescue_action
  run_once: true
"""

RETURN = r"""
action:
  description: The decision.
  returned: success
  type: str
  sample: rollback
ansible_facts:
  description: The decision under the name O(fact).
  returned: success
  type: dict
"""
