#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

# The documentation of the action plugin plugins/action/migration_input.py: it runs in the controller's process and
# never sends this file anywhere.
from __future__ import annotations

DOCUMENTATION = r"""
module: migration_input
short_description: Check a migration's input on the controller and fix the run's id
description:
  - Reads the inputs of the role C(mec.migration.migration) as its C(meta/argument_specs.yml) declares them (the
    task's variables, the short forms such as C(app) and C(strategy) already applied by the role's defaults) and
    checks each one; every problem is one sentence naming the input, the value it got and what it takes, all of
    them in one message (C(Bad input, nothing was changed) ...), before anything changes.
  - Then checks the hop's hosts (one in group C(source) and one in group C(target), or C(migration_source_host)
    and C(migration_target_host); different hosts at different addresses).
  - On success sets the facts C(migration_run_id) (the given one, or the time and 32 random bits),
    C(migration_started_at), C(migration_stream_secret) (32 random bytes for the relocation stream) and
    C(migration_controller) (the controller's host name, kept in the journals); its result
    is never displayed (it carries the secret). C(transfer=nc) gives a deprecation warning.
  - An action plugin - it runs in the controller's process; no module process, no connection.
version_added: 0.4.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Checks in check mode too (nothing changes anyway).
  diff_mode:
    support: none
    description: No diff.
  idempotent:
    support: none
    description: Each call makes a fresh run id (unless one is given) and a fresh secret.
options: {}
notes:
  - Used by the role's first phase (C(roles/migration/tasks/validate.yml)) with C(run_once=true).
"""

EXAMPLES = r"""
- name: Check the input before anything changes
  mec.migration.migration_input:
  run_once: true
"""

RETURN = r"""
run_id:
  description: The run's id (also the fact C(migration_run_id)).
  returned: success
  type: str
  sample: 20261126T130330Z-3f9a1c2e
problems:
  description: Every problem of the input, one sentence each.
  returned: failure
  type: list
  elements: str
  sample: ["strategy=m9 is unknown: strategy in m1, m2, m3."]
ansible_facts:
  description: C(migration_run_id), C(migration_started_at) (seconds since the epoch), C(migration_stream_secret),
    C(migration_controller).
  returned: success
  type: dict
"""
