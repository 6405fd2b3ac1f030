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
    stops it; through the runtime, runc, into O(workdir) when runc holds the container's state, else through
    the engine's API), sends the state and waits for the target's confirmation.
  - With O(transfer=stream) (the default) one authenticated and encrypted TCP stream carries everything;
    the source opens it before it stops the app (mutual challenge-response with the run's O(secret), bound to
    O(run_id)); after the stop it sends the final checkpoint's delta against O(base_checkpoint_dir) (the
    pre-relocation checkpoint that the target already holds in its container's C(checkpoints/<checkpoint>/),
    compared page by page on the source, every file's SHA-256 checked on the target) and then the named
    volumes as a tar, every frame encrypted and authenticated with AES-256-GCM (keys derived per connection
    from the run's secret), with an authenticated end; it needs python3-cryptography on both hosts. The
    target's receiver binds O(listen_address) only and drops every peer but O(peer_address) and every peer
    that fails the challenge; it extracts nothing unauthenticated and extracts safely (no path or link out of
    a volume, no devices). V(nc) is the deprecated old name of V(stream).
  - With O(transfer=ssh) the checkpoint goes with rsync over ssh into the target container's checkpoint
    directory, the volumes as a tarball with scp, and a marker file written over ssh is the signal.
  - O(role=target) receives the state into the container created during pre-relocation, waits (at most
    O(wait_timeout) seconds), starts the container (from O(checkpoint) when given) and confirms it runs. With
    O(checkpoint) and O(transfer=stream) the pre-relocation checkpoint is moved, before the receiver listens, from the
    engine's C(checkpoints/<checkpoint>/) to C(mec-checkpoint-images/<checkpoint>/) in the container's folder and
    patched there; at the start the engine's folder gets the small images copied and a relative symbolic link per
    page image, so that the engine's round trip of the checkpoint through containerd's content store carries no
    page images (docs/m3.md).
  - On Podman (O(engine=podman), both hosts; m3 across engines is refused by M(mec.migration.migration_preflight)) the
    source's final checkpoint is Podman's own (libpod REST API, kept in the container's bundle folder, after a runc
    pause), so that Podman's restart policy leaves the container stopped and a rollback restores it in place; the
    target container is initialised and cleaned up again before the receiver listens (Podman writes its own OCI spec
    for it), the pre-relocation checkpoint is moved into its bundle's C(checkpoint/) and patched there, and Podman's
    restore (libpod REST API) starts it in place; Podman's C(--print-stats) figures are returned
    (C(engine_dump_stats), C(engine_restore_stats), microseconds). A checkpoint folder made for the other engine
    (its C(mec-checkpoint.json)) is refused before the source stops.
  - Both report wall-clock instants (C(stopped_at) on the source, C(running_at) on the target; the hosts'
    clocks must agree, for example with NTP) and per-operation durations.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
extends_documentation_fragment: [mec.migration.docker]
attributes:
  check_mode:
    support: none
    description: Not supported; the relocation cannot be rehearsed without stopping the service; Ansible skips the
      task in check mode.
  diff_mode:
    support: none
    description: No diff; the result holds the relocation's steps and their durations.
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
    description: How the state travels; V(nc) is a deprecated alias of V(stream).
    type: str
    choices: [stream, ssh, nc]
    default: stream
  checkpoint:
    description: Name of the final checkpoint (strategy m3); omit for a stop and a plain start.
    type: str
  peer_address:
    description: The other host's address (source role, the target's; target role, the source's, the only
      peer the stream receiver accepts).
    type: str
  listen_address:
    description: The address the stream receiver binds (target role, O(transfer=stream)); the target's address
      facing the source.
    type: str
  source_address:
    description: The address the source connects from (source role, O(transfer=stream)); default is the
      system's choice.
    type: str
  port:
    description: TCP port of the target's stream receiver (O(transfer=stream)).
    type: int
    default: 47777
  secret:
    description: The run's secret for the stream, 64 hex digits (32 random bytes), the same on both hosts.
    type: str
  run_id:
    description: The run's id, bound into the stream's authentication.
    type: str
  base_checkpoint_dir:
    description: The pre-relocation checkpoint on the source, which the target holds already (source role, m3,
      O(transfer=stream)); the final checkpoint travels as its delta against it.
    type: str
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
  journal_root:
    description:
      - The state root of the run's journal on this host (C(mec.migration.migration_journal)). When given, the
        relocation journals itself in the same call - phase C(relocation) (with O(journal_changes)) before it
        touches the app, and on the target C(target_running) once the app runs there.
    type: path
  journal_changes:
    description: What the relocation may change on this host, merged into the journal's C(changes) with the phase
      C(relocation) (for example the target container's C(container_id)).
    type: dict
"""

EXAMPLES = r"""
- name: Relocation, both hosts at once
  mec.migration.migration_relocate:
    role: "{{ 'source' if inventory_hostname in groups['source'] else 'target' }}"
    name: v2x-app
    transfer: stream
    secret: "{{ migration_stream_secret }}"
    run_id: run1
    peer_address: >-
      {{ hostvars[groups['target' if inventory_hostname in groups['source'] else 'source'][0]].ansible_host }}
    listen_address: "{{ hostvars[groups['target'][0]].ansible_host }}"
    workdir: /var/lib/mec-migration/work/run1
"""

RETURN = r"""
checkpoint_path:
  description: Where the final checkpoint is on the source (source role, m3; also in a failure's result, for the
    rollback).
  returned: source role with O(checkpoint)
  type: str
checkpoint_via:
  description: V(runtime) (runc, into O(workdir)) or V(engine) (the engine's checkpoint API).
  returned: source role with O(checkpoint)
  type: str
rejected_peers:
  description: >-
    Peers the stream receiver dropped, as C([address, reason]) (target role, O(transfer=stream)): those refused
    (another address, a failed handshake) and those whose handshake had not ended when the source's stream was
    accepted.
  returned: target role
  type: list
stopped_at:
  description: Wall-clock instant (epoch seconds) just before the source stopped serving (source role).
  returned: source role
  type: float
running_at:
  description: Wall-clock instant the target container was confirmed running (target role).
  returned: target role
  type: float
durations:
  description: Seconds per operation (source C(stop) or C(checkpoint), then C(transfer) with O(transfer=stream),
    or C(checkpoint_transfer), C(volume_archive), C(volume_transfer), C(signal) with O(transfer=ssh); target C(wait),
    C(receive) or C(volume_restore), C(start)).
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
  description: Bytes of C(volume), C(stream) (all the stream carried), C(volume_tarball), C(checkpoint_final),
    C(checkpoint_delta) (literal bytes of the final checkpoint sent) and C(checkpoint_transferred).
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
checkpoint_stages:
  description: The final checkpoint's step split (seconds) into C(pause) (the container's cgroup frozen),
    C(criu_dump) (CRIU's own dump, from its log) and C(runtime) (the rest of the step, the runtime around CRIU).
  returned: source role with O(checkpoint), when CRIU's log was read
  type: dict
restore_stages:
  description: The target's start from the checkpoint split (seconds) by CRIU's restore log, which the runtime
    leaves in the task's work folder; C(engine_before_criu) (the engine and the runtime until CRIU starts, e.g. the
    container's network, the checkpoint's way to the runtime, the runtime's shim), C(criu_restore) (CRIU's own
    work), C(criu_hooks) (the runtime's OCI hooks CRIU waited for; Docker's network set-up) and C(criu_hooks_by_name),
    C(engine_after_criu), C(running_check) (the engine's confirmation that it runs) and C(criu_log). Null when no log
    of this start was found (or without O(checkpoint)).
  returned: target role
  type: dict
serving:
  description: After the confirmation that it runs, C(seconds) until the container accepted a TCP connection on its
    first exposed TCP port from the target host, at C(address) (null when it exposes no TCP port).
  returned: target role
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils import journal as jr
from ansible_collections.mec.migration.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, get_client, hostname)
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError, run_guarded
from ansible_collections.mec.migration.plugins.module_utils.relocation import relocate_source, relocate_target
from ansible_collections.mec.migration.plugins.module_utils.transport import (
    decode_stream_secret, normalize_transfer, require_stream_crypto)


def _fail(msg):
    raise MigrationError(msg)


def _journal(root, run_id, phase, changes=None):
    """The relocation's own journal entry (phase, changes) on this host."""
    try:
        return jr.update(root, run_id, phase=phase, changes=changes)
    except jr.JournalError as exc:
        raise MigrationError("%s (host %s)" % (exc, hostname())) from exc


def _check(p):
    if p["role"] == "source" and not p["peer_address"]:
        raise MigrationError("role=source needs peer_address (the target's address).")
    if p["transfer"] == "stream":
        require_stream_crypto()
        decode_stream_secret(p["secret"])
        if not p["run_id"]:
            raise MigrationError("transfer=stream needs run_id (the run's id, bound into the stream's authentication).")
        if p["role"] == "target" and not (p["listen_address"] and p["peer_address"]):
            raise MigrationError("role=target with transfer=stream needs listen_address (the target's address facing "
                                 "the source) and peer_address (the source's address).")
        if p["role"] == "source" and p["checkpoint"] and not p["base_checkpoint_dir"]:
            raise MigrationError("checkpoint with transfer=stream needs base_checkpoint_dir on the source.")
    elif p["role"] == "source":
        if p["checkpoint"] and not p["target_checkpoint_dir"]:
            raise MigrationError("checkpoint needs target_checkpoint_dir on the source.")
        if not p["remote_workdir"]:
            raise MigrationError("transfer=ssh needs remote_workdir on the source.")


def main():
    module = AnsibleModule(argument_spec=dict(
        role=dict(type="str", choices=["source", "target"], required=True),
        name=dict(type="str", required=True),
        transfer=dict(type="str", choices=["stream", "ssh", "nc"], default="stream"),
        checkpoint=dict(type="str"),
        peer_address=dict(type="str"),
        listen_address=dict(type="str"),
        source_address=dict(type="str"),
        port=dict(type="int", default=47777),
        secret=dict(type="str", no_log=True),
        run_id=dict(type="str"),
        base_checkpoint_dir=dict(type="str"),
        target_checkpoint_dir=dict(type="str"),
        workdir=dict(type="path", required=True),
        remote_workdir=dict(type="str"),
        stop_timeout=dict(type="int", default=2),
        wait_timeout=dict(type="int", default=120),
        ssh_user=dict(type="str", default="root"),
        ssh_options=dict(type="list", elements="str"),
        journal_root=dict(type="path"),
        journal_changes=dict(type="dict"),
        **DOCKER_COMMON_ARGS), supports_check_mode=False)
    p = module.params
    p["transfer"], deprecation = run_guarded(module, normalize_transfer, p["transfer"])
    if deprecation:
        module.deprecate(deprecation, version="1.0.0", collection_name="mec.migration")
    run_guarded(module, _check, p)
    if p["journal_root"]:
        if not p["run_id"]:
            run_guarded(module, _fail, "journal_root needs run_id (the run whose journal this is).")
        run_guarded(module, _journal, p["journal_root"], p["run_id"], "relocation", p["journal_changes"])
    client = get_client(module)
    partial = dict(role=p["role"], transfer=p["transfer"])
    if p["role"] == "source":
        run_guarded(module, relocate_source, module, client, p["name"], p["transfer"], p["peer_address"],
                    checkpoint=p["checkpoint"], base_checkpoint_dir=p["base_checkpoint_dir"],
                    target_checkpoint_dir=p["target_checkpoint_dir"], remote_workdir=p["remote_workdir"],
                    port=p["port"], stop_timeout=p["stop_timeout"], ssh_options=p["ssh_options"],
                    user=p["ssh_user"], timeout=p["wait_timeout"], local_workdir=p["workdir"], secret=p["secret"],
                    run_id=p["run_id"], source_address=p["source_address"], result=partial, fail_extra=partial)
    else:
        run_guarded(module, relocate_target, module, client, p["name"], p["transfer"],
                    checkpoint=p["checkpoint"], port=p["port"], workdir=p["workdir"], timeout=p["wait_timeout"],
                    listen_address=p["listen_address"], source_address=p["peer_address"], secret=p["secret"],
                    run_id=p["run_id"], result=partial, fail_extra=partial)
        if p["journal_root"]:
            partial["journal"] = run_guarded(module, _journal, p["journal_root"], p["run_id"], "target_running",
                                             fail_extra=partial)
    module.exit_json(changed=True, **partial)


if __name__ == "__main__":
    main()
