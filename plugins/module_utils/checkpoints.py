# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""CRIU checkpoints through the engine's API (m3): where they live, made, removed, placed, started from.
A failed dump or restore names CRIU's own reason, read from its log on the host."""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.mec.migration.plugins.module_utils.criu import RUNC_CRIU_CONFIG, failure_report
from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def docker_root(client):
    return client.info().get("DockerRootDir", "/var/lib/docker")


def container_checkpoint_dir(client, container_id, name=None):
    base = os.path.join(docker_root(client), "containers", container_id, "checkpoints")
    return os.path.join(base, name) if name else base


def _criu_failure(client, exc, what, container_id, since):
    """A MigrationError for a dump or restore the engine reported failed, with CRIU's own reason from its log
    on this host (``criu_log``, ``criu_errors``)."""
    message = getattr(exc, "explanation", None) or str(exc)
    log, errors = failure_report(message, container_id=container_id, since=since)
    reason = "; ".join(errors) if errors else message.strip()
    hint = ""
    if any("Connected TCP socket" in e or "tcp-established" in e for e in errors):
        hint = (" The container has an established TCP connection and the runtime's CRIU configuration "
                "(%s) does not allow it: set migration_criu_tcp=close (the default) and run the migration again."
                % RUNC_CRIU_CONFIG)
    elif any("CAP_SYS_RESOURCE" in e or "Operation not permitted" in e for e in errors):
        hint = (" On a host without CAP_SYS_RESOURCE CRIU handles only root processes: run the app as root there.")
    return MigrationError("%s failed on host %s: CRIU says: %s%s" % (what, hostname(), reason, hint),
                          criu_log=log, criu_errors=errors, engine_error=message.strip())


def create_checkpoint(client, name, checkpoint, leave_running=True, checkpoint_dir=None, container_id=None):
    """The engine's checkpoint call (``docker checkpoint create``); returns where it is, its size and the
    duration. ``container_id`` saves the look-up when the caller has it (the relocation does)."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
    cid = container_id or require_container(client, name)["Id"]
    body = {"CheckpointID": checkpoint, "Exit": not leave_running}
    if checkpoint_dir:
        body["CheckpointDir"] = checkpoint_dir
    since = time.time()
    t0 = time.monotonic()
    try:
        res = client.api._post_json(client.api._url("/containers/{0}/checkpoints", cid), data=body)
        client.api._raise_for_status(res)
    except APIError as exc:
        raise _criu_failure(client, exc, "The checkpoint %s of container %s" % (checkpoint, name), cid, since)
    duration = round(time.monotonic() - t0, 6)
    path = os.path.join(checkpoint_dir, checkpoint) if checkpoint_dir else \
        container_checkpoint_dir(client, cid, checkpoint)
    return dict(path=path, size=dir_size(path), duration=duration)


def remove_checkpoint(client, container_id, checkpoint, checkpoint_dir=None):
    """The engine's checkpoint removal (``docker checkpoint rm``)."""
    params = {"dir": checkpoint_dir} if checkpoint_dir else None
    res = client.api._delete(client.api._url("/containers/{0}/checkpoints/{1}", container_id, checkpoint),
                             params=params)
    client.api._raise_for_status(res)


def place_checkpoint(client, container, src_dir, checkpoint):
    """Copy checkpoint dir ``src_dir`` into the container's own ``checkpoints/<name>/``."""
    info = require_container(client, container)
    dest = container_checkpoint_dir(client, info["Id"], checkpoint)
    if os.path.realpath(src_dir) != os.path.realpath(dest):
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(src_dir, dest, symlinks=True)
    return dest


def start_from_checkpoint(client, container, checkpoint, checkpoint_dir=None):
    """The engine's start from a checkpoint (``docker start --checkpoint``; the checkpoint in the container's
    own ``checkpoints/`` unless ``checkpoint_dir``). Returns the duration; a failure names CRIU's reason."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
    params = {"checkpoint": checkpoint}
    if checkpoint_dir:
        params["checkpoint-dir"] = checkpoint_dir
    since = time.time()
    t0 = time.monotonic()
    try:
        res = client.api._post(client.api._url("/containers/{0}/start", container), params=params)
        client.api._raise_for_status(res)
    except APIError as exc:
        raise _criu_failure(client, exc, "The start of container %s from checkpoint %s" % (container, checkpoint),
                            container, since)
    return round(time.monotonic() - t0, 6)
