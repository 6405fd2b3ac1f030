# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""CRIU checkpoints through the engine (m3): where they live, made, placed, started from."""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def docker_root(client):
    return client.info().get("DockerRootDir", "/var/lib/docker")


def container_checkpoint_dir(client, container_id, name=None):
    base = os.path.join(docker_root(client), "containers", container_id, "checkpoints")
    return os.path.join(base, name) if name else base


def create_checkpoint(client, cli, name, checkpoint, leave_running=True, checkpoint_dir=None):
    """`docker checkpoint create`; returns where it is, its size and the duration."""
    info = require_container(client, name)
    args = ["checkpoint", "create"]
    if leave_running:
        args.append("--leave-running")
    if checkpoint_dir:
        args += ["--checkpoint-dir", checkpoint_dir]
    t0 = time.monotonic()
    cli.run(args + [name, checkpoint], what="docker checkpoint create %s %s" % (name, checkpoint))
    duration = round(time.monotonic() - t0, 6)
    path = os.path.join(checkpoint_dir, checkpoint) if checkpoint_dir else \
        container_checkpoint_dir(client, info["Id"], checkpoint)
    return dict(path=path, size=dir_size(path), duration=duration)


def place_checkpoint(client, container, src_dir, checkpoint):
    """Copy checkpoint dir ``src_dir`` into the container's own ``checkpoints/<name>/``."""
    info = require_container(client, container)
    dest = container_checkpoint_dir(client, info["Id"], checkpoint)
    if os.path.realpath(src_dir) != os.path.realpath(dest):
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(src_dir, dest, symlinks=True)
    return dest


def start_from_checkpoint(client, cli, container, checkpoint):
    """`docker start --checkpoint` (the checkpoint must be in the container's own dir)."""
    t0 = time.monotonic()
    cli.run(["start", "--checkpoint", checkpoint, container],
            what="docker start --checkpoint %s %s" % (checkpoint, container))
    return round(time.monotonic() - t0, 6)
