# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""m3 on Podman (4.x): the checkpoint and the restore through Podman's own libpod REST API, in the container's
own folder, so that the app stays an ordinary Podman container (``podman ps``, logs, stop, start, a later
migration).

How Podman 4.3 restores (libpod/container_internal_common.go, ``restore``): a container in the state
``configured`` (created, never initialised) or ``exited`` is restored from the CRIU images in its bundle folder
(``<StaticDir>/checkpoint``, the container's ``userdata``) with the OCI spec it finds there (``config.json``); the
restore sets up the container's network and storage (``prepare``), then runc restores, and CRIU's log is
``<StaticDir>/restore.log``. ``--import`` of an archive instead creates a new container from the archive's
configuration (the source's image name, which the target may not have, and the source's volumes) and unpacks the
archive in the downtime. So the migration restores into the container it prepared on the target:

* during the pre-relocation (app still serving on the source) the target container is initialised and cleaned
  up again (``podman container init`` then ``podman container cleanup``): Podman writes the target's own
  ``config.json`` (its root file system, its bind mounts, its cgroup) and the container goes back to ``configured``;
* the pre-relocation checkpoint is moved into ``<StaticDir>/checkpoint`` before the receiver listens, the
  relocation's delta patches it there, and ``POST /libpod/containers/{id}/restore`` starts the app from it: no
  archive, no copy in the downtime.

On the source, the final checkpoint is runc's own dump into the container's ``checkpoint/`` folder, as on Docker,
where Podman would neither restart nor remove the container on the exit it then sees (``runtime_dump_safe``: no
restart policy, no ``--rm``); otherwise it is Podman's own (``POST /libpod/containers/{id}/checkpoint?keep=true``),
after which Podman counts the container as checkpointed (its restart policy does not restart it, as after a stop).
Either way a rollback restores it in place from that folder. runc pauses the container first (its freezer answers
in microseconds; CRIU, left to freeze it, polls every 100 ms).

Measured on the Podman lab (docs/m3.md): restore into the prepared container 0.21-0.37 s (runtime 0.09-0.13 s,
CRIU 0.04-0.06 s); through the CLI the same plus the podman process's start.
"""

from __future__ import annotations

import json
import os
import shutil
import time

from ansible_collections.mec.migration.plugins.module_utils.criu import (
    failure_report, log_errors, log_phases, read_text, restore_timing)
from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C, hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError

LIBPOD = "/v4.0.0/libpod"
# runc's state root for Podman's containers (root Podman: ``runtime_root`` in the OCI runtime's flags)
RUNC_ROOT = "/run/runc"
# what the migration writes beside the CRIU images: which engine made them (a checkpoint of the other engine is
# refused before the app stops)
MARKER = "mec-checkpoint.json"
# Podman's per-stage figures (microseconds) as --print-stats gives them
DUMP_STATS = ("freezing_time", "frozen_time", "memdump_time", "memwrite_time", "pages_scanned", "pages_written")
RESTORE_STATS = ("forking_time", "restore_time", "pages_restored")


def handles(client):
    """Whether the client talks to Podman (whose checkpoints this module makes and restores)."""
    from ansible_collections.mec.migration.plugins.module_utils.engines import engine_of
    return engine_of(client) == "podman"


def _url(client, path, *args):
    return client.api.base_url + LIBPOD + path.format(*args)


def _call(client, method, path, *args, **kw):
    """A libpod REST call through the Docker SDK's session (the same socket); its JSON answer, or APIError."""
    res = getattr(client.api, method)(_url(client, path, *args), **kw)
    client.api._raise_for_status(res)
    try:
        return res.json()
    except ValueError:
        return None


def inspect(client, container):
    """Podman's own inspect data of a container (``StaticDir``, ``State.Checkpointed``)."""
    return _call(client, "get", "/containers/{0}/json", container)


def static_dir(client, container):
    """The container's bundle folder (``userdata``: config.json, the checkpoint, CRIU's logs); root only, removed
    with the container."""
    path = (inspect(client, container) or {}).get("StaticDir")
    if not path or not os.path.isabs(path):
        raise MigrationError("Podman gave no bundle folder (StaticDir) for container %s on host %s." % (
            container, hostname()))
    return path


def checkpoint_path(bundle):
    """Where Podman's restore reads the CRIU images from."""
    return os.path.join(bundle, "checkpoint")


def staging_dir(bundle, name=None):
    """Where the pre-relocation checkpoint arrives on the target (in the container's own folder, beside Podman's
    ``checkpoint/``, which a prepared container must not hold before the relocation)."""
    base = os.path.join(bundle, "mec-checkpoints")
    return os.path.join(base, name) if name else base


def write_marker(image_dir, engine="podman", container_id=None, final=False):
    """Name the engine (and, for a source's final checkpoint, ``final``) in the checkpoint folder."""
    with open(os.path.join(image_dir, MARKER), "w") as fh:
        json.dump(dict(engine=engine, container=container_id, host=hostname(), final=final), fh)


def marker_engine(image_dir):
    """The engine that made the checkpoint in ``image_dir`` (its marker), or None (no marker: made by hand)."""
    try:
        with open(os.path.join(image_dir, MARKER)) as fh:
            return (json.load(fh) or {}).get("engine")
    except (OSError, ValueError):
        return None


def check_marker(image_dir, engine):
    made_by = marker_engine(image_dir)
    if made_by is not None and made_by != engine:
        raise MigrationError("The checkpoint in %s on host %s was made by %s, and this host runs %s: a checkpoint of "
                             "one engine is not restored by the other (strategy m3 runs between two hosts of the same "
                             "engine; use m2 across engines). Nothing was changed." % (
                                 image_dir, hostname(), made_by, engine))


def _micro(stats, keys):
    return dict((k, stats.get(k)) for k in keys if isinstance(stats.get(k), int))


def _stats(answer, runtime_key, keys):
    """Podman's --print-stats answer: the runtime's duration and CRIU's figures (microseconds)."""
    entries = answer.get("container_statistics") if isinstance(answer, dict) else None
    entry = (entries or [answer])[0] if isinstance(answer, dict) else {}
    entry = entry if isinstance(entry, dict) else {}
    out = dict(runtime_us=entry.get(runtime_key) if isinstance(entry.get(runtime_key), int) else None)
    out.update(_micro(entry.get("criu_statistics") or {}, keys))
    return out


def _failure(exc, what, bundle):
    message = getattr(exc, "explanation", None) or str(exc)
    log, errors = failure_report(message)
    if not errors and bundle:
        for name in ("dump.log", "restore.log"):
            path = os.path.join(bundle, name)
            found = log_errors(read_text(path) or "")
            if found:
                log, errors = path, found
                break
    reason = "; ".join(errors) if errors else message.strip()
    return MigrationError("%s failed on host %s: %s" % (what, hostname(), reason), criu_log=log, criu_errors=errors,
                          engine_error=message.strip())


def prepare_source(client, container_id):
    """Before the source's stop: its bundle folder, with any older checkpoint of Podman's removed (the final
    checkpoint must hold only its own images: the delta sends every file of the folder)."""
    bundle = static_dir(client, container_id)
    for path in (checkpoint_path(bundle), checkpoint_path(bundle) + ".work"):
        if os.path.isdir(path):
            shutil.rmtree(path)
    return bundle


def runtime_dump_safe(info):
    """Whether the final checkpoint may be runc's own, without Podman (its inspect data ``info``, Docker-compatible):
    Podman then sees the app's process end as an exit, so only a container that Podman would neither restart (a
    restart policy) nor remove (``--rm``) on an exit. Podman's own checkpoint costs ~0.25 s more in the downtime
    (its network teardown, unmount and state after runc's dump: docs/m3.md)."""
    host = info.get("HostConfig") or {}
    return (host.get("RestartPolicy") or {}).get("Name") in (None, "", "no") and not host.get("AutoRemove")


def final_checkpoint(module, client, container_id, bundle, runc_root=RUNC_ROOT, runtime=False):
    """The source's final checkpoint (the app stops) through Podman, the container paused by runc first; a failure
    resumes it (it keeps serving). Returns the images' folder, size, durations and Podman's figures. With
    ``runtime`` (runtime_dump_safe) runc dumps it into the same folder without Podman (checkpoints.runtime_checkpoint:
    pause, dump, the exit Podman then cleans up after), and a rollback restores it from there as well."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
    if runtime:
        from ansible_collections.mec.migration.plugins.module_utils.checkpoints import runtime_checkpoint
        path = checkpoint_path(bundle)
        ck = runtime_checkpoint(module, container_id, path, leave_running=False, root=runc_root)
        write_marker(path, container_id=container_id, final=True)
        ck.update(engine_stats=None, via="runtime")
        return ck
    runc = module.get_bin_path("runc", required=True)
    t0 = time.monotonic()
    rc, out, err = module.run_command([runc, "--root", runc_root, "pause", container_id], environ_update=LANG_C)
    if rc != 0:
        raise MigrationError("runc could not pause container %s on host %s before the checkpoint: %s" % (
            container_id[:12], hostname(), (err or out).strip()))
    t_paused = time.monotonic()
    try:
        answer = _call(client, "post", "/containers/{0}/checkpoint", container_id,
                       params=dict(keep="true", printStats="true"), timeout=300)
    except APIError as exc:
        module.run_command([runc, "--root", runc_root, "resume", container_id], environ_update=LANG_C)
        raise _failure(exc, "Podman's checkpoint of container %s" % container_id[:12], bundle) from exc
    duration = round(time.monotonic() - t0, 6)
    path = checkpoint_path(bundle)
    phases = log_phases(read_text(os.path.join(bundle, "dump.log")) or "")
    write_marker(path, container_id=container_id, final=True)
    return dict(path=path, size=dir_size(path), duration=duration, pause_duration=round(t_paused - t0, 6),
                criu_duration=phases.get("total"), criu_log=os.path.join(bundle, "dump.log"),
                engine_stats=_stats(answer, "runtime_checkpoint_duration", DUMP_STATS), via="engine")


def prepare_target(module, container_id):
    """During the pre-relocation (the app still serves on the source): Podman writes the target container's own
    OCI spec (``podman container init``) and the container goes back to ``configured`` (``podman container
    cleanup``: network and storage released), ready for a restore."""
    podman = module.get_bin_path("podman", required=True)
    for step in ("init", "cleanup"):
        rc, out, err = module.run_command([podman, "container", step, container_id], environ_update=LANG_C)
        if rc != 0:
            raise MigrationError("podman container %s %s failed on host %s while the target container was prepared "
                                 "for the restore: %s" % (step, container_id[:12], hostname(), (err or out).strip()))


def restore(client, container_id, bundle, timing=None):
    """Podman's restore of the container from ``<bundle>/checkpoint`` (kept there: the caller removes it once the
    figures are read). Returns the duration; ``timing`` (a dict) gets ``called_at``, ``returned_at`` (epoch
    seconds) and Podman's figures (``engine_stats``)."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
    timing = {} if timing is None else timing
    timing["called_at"] = time.time()
    t0 = time.monotonic()
    try:
        answer = _call(client, "post", "/containers/{0}/restore", container_id,
                       params=dict(keep="true", printStats="true"), timeout=300)
    except APIError as exc:
        raise _failure(exc, "Podman's restore of container %s" % container_id[:12], bundle) from exc
    duration = round(time.monotonic() - t0, 6)
    timing["returned_at"] = time.time()
    timing["engine_stats"] = _stats(answer, "runtime_restore_duration", RESTORE_STATS)
    return duration


def restore_stages(bundle, called_at, returned_at, engine_stats=None):
    """The restore call split by CRIU's restore log in the bundle folder, as checkpoints.restore_stages does for
    Docker (Podman's runc leaves no hooks for CRIU to wait for: criu_hooks is what the log shows), with Podman's
    own figures (``engine_stats``, microseconds). None when the log of this restore is not found."""
    path = os.path.join(bundle, "restore.log")
    try:
        ended_at = os.stat(path).st_mtime
    except OSError:
        return None
    if ended_at < called_at - 0.01 or ended_at > returned_at + 0.01:
        return None
    timing = restore_timing(read_text(path), ended_at=min(ended_at, returned_at))
    if not timing:
        return None
    hooks = sum(timing["hooks"].values())
    return dict(engine_before_criu=round(max(timing["started_at"] - called_at, 0.0), 6),
                criu_restore=timing["own"], criu_hooks=round(hooks, 6), criu_hooks_by_name=timing["hooks"],
                engine_after_criu=round(max(returned_at - timing["ended_at"], 0.0), 6), criu_log=path,
                engine_stats=engine_stats)


def checkpointed(client, container_id, wait=10.0):
    """Whether the (stopped) container has a final checkpoint to restore it from: the images in its folder, and
    Podman's state says checkpointed, or the folder is a final checkpoint of runc's (its marker) and Podman has seen
    the exit (waited for up to ``wait`` seconds: conmon's clean-up after runc's dump). ``(bool, bundle)``."""
    deadline = time.monotonic() + wait
    while True:
        data = inspect(client, container_id) or {}
        bundle, state = data.get("StaticDir"), data.get("State") or {}
        if not bundle or not os.path.isfile(os.path.join(checkpoint_path(bundle), "inventory.img")):
            return False, bundle
        if state.get("Checkpointed"):
            return True, bundle
        try:
            with open(os.path.join(checkpoint_path(bundle), MARKER)) as fh:
                final = bool((json.load(fh) or {}).get("final"))
        except (OSError, ValueError):
            final = False
        if not final:
            return False, bundle
        if not state.get("Running") or time.monotonic() > deadline:
            return not state.get("Running"), bundle
        time.sleep(0.05)


def place(bundle, src_dir):
    """Copy a checkpoint folder into the container's ``checkpoint/`` (a manual restore, a rollback's runtime
    checkpoint)."""
    dest = checkpoint_path(bundle)
    if os.path.realpath(src_dir) != os.path.realpath(dest):
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(src_dir, dest, symlinks=False)
    return dest
