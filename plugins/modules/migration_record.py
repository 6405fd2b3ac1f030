#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_record
short_description: Build and write a migration run's results record (schema mec.migration/record/v1)
description:
  - Builds the run's record from the run's facts and the raw results its tasks registered, with every figure
    a number (or null when the run did not measure it), checks it against the schema and writes it as
    C(<results_dir>/<run_id>-<app>-<strategy>-<network>.json) (mode 0644, written to a temporary file and
    renamed, so a reader never sees half a record).
  - The schema (fields, types) lives in C(plugins/module_utils/records.py); docs/migration.md describes it.
  - Runs on the controller (the task delegated to localhost); playbooks/migrate.yml and playbooks/recover.yml call it
    through the role mec.migration.migration (roles/migration/tasks/record.yml); an action plugin of the same name
    (plugins/action/migration_record.py) runs it in the controller's process.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Builds and returns the record without writing it.
  diff_mode:
    support: none
    description: No diff; RV(record) returns the whole record.
  idempotent:
    support: none
    description: Every call writes the record again, with the time it was written as C(timestamps.finished_at).
options:
  results_dir:
    description: Directory on the controller the record is written to (made if missing).
    type: path
    required: true
  status:
    description: C(ok) or C(failed).
    type: str
    required: true
    choices: [ok, failed]
  outcome:
    description: Where the app ended up.
    type: str
    choices: [migrated, rolled_back, unchanged, source_not_running, undecided]
  phase:
    description:
      - The phase the run reached (C(preflight), C(pre_relocation), C(relocation), C(target_running), C(done));
        C(done) when omitted for an ok run.
    type: str
  error:
    description: The cause of a failure (task and message).
    type: str
  recovered_by:
    description: C(recover.yml) for a run finished or undone by the recovery.
    type: str
  run_id:
    description: The run's id.
    type: str
    required: true
  app:
    description: The app's container name.
    type: str
    required: true
  strategy:
    description: The strategy (C(m1), C(m2), C(m3)).
    type: str
    required: true
  strategy_title:
    description: The strategy's title (roles/migration/vars/main/strategies.yml).
    type: str
  transfer:
    description: How the relocation sent the volumes (C(stream) or C(ssh)).
    type: str
  network:
    description: The network profile's label (C(n1), C(lab), ...).
    type: str
    required: true
  tcp_policy:
    description: CRIU's policy for established TCP connections (strategies with a checkpoint only).
    type: str
  source:
    description: The source host.
    type: dict
    required: true
    suboptions:
      host:
        description: Inventory name.
        type: str
        required: true
      address:
        description: Address (ansible_host).
        type: str
        required: true
      engine:
        description: Its container engine (its C(migration_engine)); null in the record when not given.
        type: str
        choices: [docker, podman]
  target:
    description: The target host.
    type: dict
    required: true
    suboptions:
      host:
        description: Inventory name.
        type: str
        required: true
      address:
        description: Address (ansible_host).
        type: str
        required: true
      engine:
        description: Its container engine (its C(migration_engine)); null in the record when not given.
        type: str
        choices: [docker, podman]
  started_at:
    description: When the run began, epoch seconds.
    type: float
  source_container:
    description: The source container as M(mec.migration.container_info) returned it (C(container)).
    type: dict
    default: {}
  steps:
    description:
      - The registered results of the pre-relocation steps; a step the strategy has not, or that was skipped,
        is omitted or empty.
    type: dict
    default: {}
    suboptions:
      export:
        description: M(mec.migration.container_export) (m1).
        type: dict
        default: {}
      commit:
        description: M(mec.migration.container_commit) (m2, m3).
        type: dict
        default: {}
      save:
        description: M(mec.migration.image_save) (m2, m3).
        type: dict
        default: {}
      checkpoint:
        description: M(mec.migration.container_checkpoint), the pre-relocation checkpoint (m3).
        type: dict
        default: {}
      image_copy:
        description: M(mec.migration.file_transfer) of the image tarball.
        type: dict
        default: {}
      checkpoint_copy:
        description: M(mec.migration.file_transfer) of the pre-relocation checkpoint (m3).
        type: dict
        default: {}
      import:
        description: M(mec.migration.image_import) (m1).
        type: dict
        default: {}
      load:
        description: M(mec.migration.image_load) (m2, m3).
        type: dict
        default: {}
      create:
        description: M(mec.migration.container_create).
        type: dict
        default: {}
  relocation:
    description: The results of M(mec.migration.migration_relocate) on each host.
    type: dict
    default: {}
    suboptions:
      source:
        description: The source's half.
        type: dict
        default: {}
      target:
        description: The target's half.
        type: dict
        default: {}
  rollback:
    description: The result of M(mec.migration.migration_rollback), if the source was brought back.
    type: dict
    default: {}
  cleanup:
    description: The results of M(mec.migration.migration_cleanup) on each host.
    type: dict
    default: {}
    suboptions:
      source:
        description: On the source.
        type: dict
        default: {}
      target:
        description: On the target.
        type: dict
        default: {}
  state_check:
    description: The results of the state checks on the target.
    type: dict
    default: {}
    suboptions:
      command:
        description: The command's result (C(rc), C(stdout)).
        type: dict
        default: {}
      url:
        description: The URL's result (C(status)).
        type: dict
        default: {}
  gate:
    description:
      - The result of M(mec.migration.relocation_gate)'s wait (migration_relocation_gate); the record's C(gate) is
        null when omitted or skipped.
    type: dict
    default: {}
  lost_config:
    description: m1, what the imported image lacks; the import's C(lost_config) when omitted.
    type: list
    elements: str
  start_command:
    description: m1, the argv the imported image was started with.
    type: list
    elements: str
  host_results:
    description:
      - Every result of the run's tasks on each host; a host with one C(unreachable) result is named in the
        record's C(unreachable).
    type: dict
    default: {}
    suboptions:
      source:
        description: The source's results.
        type: list
        elements: dict
        default: []
      target:
        description: The target's results.
        type: list
        elements: dict
        default: []
"""

EXAMPLES = r"""
- name: Write the record of a run that stopped at the preflight
  mec.migration.migration_record:
    results_dir: results
    status: failed
    outcome: unchanged
    phase: preflight
    error: "Preflight on both hosts: not enough free space"
    run_id: 20261127T180632Z-43cd7fc4
    app: a2
    strategy: m2
    network: lab
    source: {host: mec-lab-source, address: 172.30.77.11}
    target: {host: mec-lab-target, address: 172.30.77.12}
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
record:
  description: The record as written (schema mec.migration/record/v1).
  returned: always
  type: dict
path:
  description: The record's file on the controller.
  returned: always
  type: str
msg:
  description: One line for the user, the status, the downtime and the record's file.
  returned: always
  type: str
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.records import (
    OUTCOMES, STATUSES, build_record, problems, record_name, write_record)

_RESULT = dict(type="dict", default={})
_HOST = dict(type="dict", required=True, options=dict(host=dict(type="str", required=True),
                                                      address=dict(type="str", required=True),
                                                      engine=dict(type="str", choices=["docker", "podman"])))

ARGUMENT_SPEC = dict(
    results_dir=dict(type="path", required=True),
    status=dict(type="str", required=True, choices=list(STATUSES)),
    outcome=dict(type="str", choices=list(OUTCOMES)),
    phase=dict(type="str"),
    error=dict(type="str"),
    recovered_by=dict(type="str"),
    run_id=dict(type="str", required=True),
    app=dict(type="str", required=True),
    strategy=dict(type="str", required=True),
    strategy_title=dict(type="str"),
    transfer=dict(type="str"),
    network=dict(type="str", required=True),
    tcp_policy=dict(type="str"),
    source=_HOST,
    target=_HOST,
    started_at=dict(type="float"),
    source_container=_RESULT,
    steps=dict(type="dict", default={}, options={k: _RESULT for k in (
        "export", "commit", "save", "checkpoint", "image_copy", "checkpoint_copy", "import", "load", "create")}),
    relocation=dict(type="dict", default={}, options=dict(source=_RESULT, target=_RESULT)),
    rollback=_RESULT,
    cleanup=dict(type="dict", default={}, options=dict(source=_RESULT, target=_RESULT)),
    state_check=dict(type="dict", default={}, options=dict(command=_RESULT, url=_RESULT)),
    gate=_RESULT,
    lost_config=dict(type="list", elements="str"),
    start_command=dict(type="list", elements="str"),
    host_results=dict(type="dict", default={}, options=dict(
        source=dict(type="list", elements="dict", default=[]), target=dict(type="list", elements="dict", default=[]))),
)


def summary(record, path):
    wall, operations = (("n/a" if v is None else v) for v in (record["downtime"]["wall"],
                                                              record["downtime"]["operations_sum"]))
    return "%s: downtime wall %s s, operations %s s; record %s" % (record["status"], wall, operations, path)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    p = module.params
    record = build_record(p)
    bad = problems(record)
    if bad:
        module.fail_json(msg="The record of run %s does not fit %s (a bug in the record's inputs; nothing was "
                             "written): %s" % (p["run_id"], record["schema"], "; ".join(bad)), record=record)
    path = os.path.join(p["results_dir"], record_name(record))
    if not module.check_mode:
        try:
            path = write_record(p["results_dir"], record)
        except OSError as exc:
            module.fail_json(msg="Cannot write the record %s on the controller: %s. Set results_dir to a directory "
                                 "you can write (-e results_dir=...)." % (path, exc),
                             exception=traceback.format_exc(), record=record, path=path)
    module.exit_json(changed=True, record=record, path=path, msg=summary(record, path))


if __name__ == "__main__":
    main()
