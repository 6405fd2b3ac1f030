#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_relocate
short_description: The relocation phase of a container migration, in one call per host
description:
  - Runs on the source and the target host at the same time (one task, both hosts, forks >= 2), so the
    downtime holds no orchestration round trips.
  - O(role=source) stops the container (or, with O(checkpoint), takes the final CRIU checkpoint, which
    stops it), rsyncs the checkpoint over the pre-relocation one directly into the target container's
    C(checkpoints/<checkpoint>/) directory (only the delta travels), sends the container's named volumes
    and signals completion. With O(transfer=nc) the volumes go as one raw tar stream over TCP to the
    target's O(port) (unencrypted, lab use; EOF is the completion signal; the target answers C(OK));
    with O(transfer=ssh) they go as a tarball with scp and a marker file written over ssh is the signal.
  - O(role=target) receives the volumes into the Mountpoints of the container created during
    pre-relocation, waits (at most O(wait_timeout) seconds) for the completion signal, starts the container
    (from O(checkpoint) when given) and confirms it runs.
  - Both report wall-clock instants (C(stopped_at) on the source, C(running_at) on the target; the hosts'
    clocks must agree, for example with NTP) and per-operation durations.
version_added: 0.1.0
author: mec.migration developers
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: none
  diff_mode:
    support: none
  idempotent:
    support: none
    description: Moves a running service; the playbook detects a finished migration before calling it.
options:
  role:
    description: Which half to run.
    type: str
    choices: [source, target]
    required: true
  name:
    description: Container name (the same on both hosts).
    type: str
    required: true
  transfer:
    description: How the volumes travel.
    type: str
    choices: [nc, ssh]
    default: nc
  checkpoint:
    description: Name of the final checkpoint (strategy m3); omit for a stop and a plain start.
    type: str
  peer_address:
    description: The target's address (source role).
    type: str
  port:
    description: TCP port of the target's volume receiver (O(transfer=nc)).
    type: int
    default: 47777
  target_checkpoint_dir:
    description: The target container's checkpoint directory for O(checkpoint) (source role, m3).
    type: str
  workdir:
    description: This run's work directory on this host.
    type: path
    required: true
  remote_workdir:
    description: This run's work directory on the target (source role, O(transfer=ssh)).
    type: str
  stop_timeout:
    description: Seconds C(docker stop) waits for the app to exit on SIGTERM before killing it.
    type: int
    default: 2
  wait_timeout:
    description: Seconds the relocation may take before it fails.
    type: int
    default: 120
  ssh_user:
    description: SSH user on the target.
    type: str
    default: root
  ssh_options:
    description: Options for ssh; default is batch mode with the run's shared master connection.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Relocation, both hosts at once
  mec.migration.migration_relocate:
    role: "{{ 'source' if inventory_hostname in groups['source'] else 'target' }}"
    name: v2x-app
    transfer: nc
    peer_address: "{{ hostvars[groups['target'][0]].ansible_host }}"
    workdir: /var/tmp/mec-migration/run1
"""

RETURN = r"""
stopped_at:
  description: Wall-clock instant (epoch seconds) just before the source stopped serving (source role).
  returned: source role
  type: float
running_at:
  description: Wall-clock instant the target container was confirmed running (target role).
  returned: target role
  type: float
durations:
  description: Seconds per operation (source C(stop) or C(checkpoint), C(checkpoint_transfer), C(volume_archive), C(volume_transfer), C(signal); target C(wait), C(volume_receive) or C(volume_restore), C(start)).
  returned: always
  type: dict
source_duration:
  description: Sum of the source's own operations.
  returned: source role
  type: float
transfer_duration:
  description: Sum of the transfer operations.
  returned: source role
  type: float
target_duration:
  description: Sum of the target's operations without the wait.
  returned: target role
  type: float
sizes:
  description: Bytes of C(volume), C(volume_tarball), C(checkpoint_final) and C(checkpoint_transferred).
  returned: source role
  type: dict
rsync_stats:
  description: The figures of C(rsync --stats) for the checkpoint delta.
  returned: source role with O(checkpoint)
  type: dict
source_stopped:
  description: Whether the source container was stopped (also in a failure's result, for the rollback).
  returned: source role
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_client)
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError, run_guarded
from ansible_collections.mec.migration.plugins.module_utils.relocation import relocate_source, relocate_target


def _check(p):
    if p["role"] == "source":
        if not p["peer_address"]:
            raise MigrationError("role=source needs peer_address (the target's address).")
        if p["checkpoint"] and not p["target_checkpoint_dir"]:
            raise MigrationError("checkpoint needs target_checkpoint_dir on the source.")
        if p["transfer"] == "ssh" and not p["remote_workdir"]:
            raise MigrationError("transfer=ssh needs remote_workdir on the source.")


def main():
    module = AnsibleModule(argument_spec=dict(
        role=dict(type="str", choices=["source", "target"], required=True),
        name=dict(type="str", required=True),
        transfer=dict(type="str", choices=["nc", "ssh"], default="nc"),
        checkpoint=dict(type="str"),
        peer_address=dict(type="str"),
        port=dict(type="int", default=47777),
        target_checkpoint_dir=dict(type="str"),
        workdir=dict(type="path", required=True),
        remote_workdir=dict(type="str"),
        stop_timeout=dict(type="int", default=2),
        wait_timeout=dict(type="int", default=120),
        ssh_user=dict(type="str", default="root"),
        ssh_options=dict(type="list", elements="str"),
        **DOCKER_COMMON_ARGS), supports_check_mode=False)
    p = module.params
    run_guarded(module, _check, p)
    client = get_client(module)
    partial = dict(role=p["role"])
    if p["role"] == "source":
        run_guarded(module, relocate_source, module, client, p["name"], p["transfer"], p["peer_address"],
                    checkpoint=p["checkpoint"], target_checkpoint_dir=p["target_checkpoint_dir"],
                    remote_workdir=p["remote_workdir"], port=p["port"], stop_timeout=p["stop_timeout"],
                    ssh_options=p["ssh_options"], user=p["ssh_user"], timeout=p["wait_timeout"],
                    local_workdir=p["workdir"], result=partial, fail_extra=partial)
    else:
        run_guarded(module, relocate_target, module, client, p["name"], p["transfer"],
                    checkpoint=p["checkpoint"], port=p["port"], workdir=p["workdir"], timeout=p["wait_timeout"],
                    result=partial, fail_extra=partial)
    module.exit_json(changed=True, **partial)

if __name__ == "__main__":
    main()
