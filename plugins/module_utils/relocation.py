# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The relocation (the app is down): the source's and the target's halves, the rollback of the source, and
the app's phase notification before it."""

from __future__ import annotations

import functools
import os
import shutil
import tarfile
import time

from ansible_collections.mec.migration.plugins.module_utils import podman_checkpoint as podman
from ansible_collections.mec.migration.plugins.module_utils.checkpoints import (
    LineReader, apply_checkpoint_delta, checkpoint_images_dir, container_checkpoint_dir, create_checkpoint,
    link_checkpoint, place_checkpoint, restore_stages, runtime_checkpoint, runtime_root, stage_checkpoint,
    load_delta_base, start_from_checkpoint, write_checkpoint_delta)
from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname
from ansible_collections.mec.migration.plugins.module_utils.engines import (
    can_update_restart_policy, engine_of, stop_container)
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.run_config import (
    check_settled, require_container, volume_mounts, volume_streams, wait_running)
from ansible_collections.mec.migration.plugins.module_utils.timing import Stopwatch, wall_clock
from ansible_collections.mec.migration.plugins.module_utils.transport import (
    StreamReceiver, StreamSender, ssh_command, transfer, wait_remote_ready)
from ansible_collections.mec.migration.plugins.module_utils.volumes import extract_volumes_tar, write_volumes_tar


def notify_phase(url, timeout=5, method="GET", validate_certs=True):
    """Tell a migration-aware app its phase (e.g. GET /changePhase?inMigration=1)."""
    from ansible.module_utils.urls import open_url
    t0 = time.monotonic()
    resp = open_url(url, method=method, timeout=timeout, validate_certs=validate_certs)
    body = resp.read()
    return dict(status=resp.getcode(), body=body.decode("utf-8", "replace")[:2048],
                duration=round(time.monotonic() - t0, 6))


def _final_checkpoint(module, client, info, name, checkpoint, local_workdir, sw, result, bundle=None):
    """The final checkpoint (the app stops): through the runtime into the work directory where its state is
    known, else through the engine's API; on Podman (``bundle``: the container's folder) always Podman's own, which
    its restart policy and a rollback know (podman_checkpoint.final_checkpoint). Fills ``result``; returns the
    checkpoint's directory."""
    with sw.step("checkpoint"):
        if bundle:
            ck = podman.final_checkpoint(module, client, info["Id"], bundle, runtime=podman.runtime_dump_safe(info))
            result["checkpoint_via"] = ck["via"]
            result["engine_dump_stats"] = ck["engine_stats"]
        elif local_workdir and runtime_root(info["Id"]):
            ck = runtime_checkpoint(module, info["Id"], os.path.join(local_workdir, checkpoint), leave_running=False)
            result["checkpoint_via"] = "runtime"
        else:
            ck = create_checkpoint(client, name, checkpoint, leave_running=False, container_id=info["Id"])
            result["checkpoint_via"] = "engine"
    result["checkpoint_path"] = ck["path"]
    result["sizes"]["checkpoint_final"] = ck["size"]
    if ck.get("criu_duration") is not None:
        result["criu_dump_duration"] = ck["criu_duration"]
        # the checkpoint step split: the pause (the cgroup frozen), CRIU's own dump (its log), and the rest
        # (the runtime around CRIU, and the engine's API for a dump through it)
        pause = ck.get("pause_duration") or 0.0
        result["checkpoint_stages"] = dict(
            pause=ck.get("pause_duration"), criu_dump=ck["criu_duration"],
            runtime=round(max(sw.durations["checkpoint"] - pause - ck["criu_duration"], 0.0), 6))
    if ck.get("attempts"):
        result["criu_dump_attempts"] = ck["attempts"]
        result["criu_dump_retried_after"] = ck.get("retried_after")
    return ck["path"]


def relocate_source(module, client, name, transfer_method, target_host, checkpoint=None, base_checkpoint_dir=None,
                    target_checkpoint_dir=None, remote_workdir=None, port=None, stop_timeout=2, ssh_options=None,
                    user="root", timeout=120, local_workdir=None, secret=None, run_id=None, source_address=None,
                    info=None, result=None):
    """Source half of the relocation: stop (or final checkpoint), send state, get the target's confirmation.

    With ``transfer_method="stream"`` everything (the checkpoint's delta against ``base_checkpoint_dir``, the
    pre-relocation checkpoint the target already holds, then the volumes) goes in ONE authenticated stream
    opened before the app stops. ``result`` (a dict) is filled as the steps go, so a caller still has the
    figures (and ``source_stopped``, ``checkpoint_path`` for the rollback) when a step fails.
    """
    info = info or require_container(client, name)
    if not (info.get("State") or {}).get("Running"):
        raise MigrationError("Container %s is not running on the source host %s." % (name, hostname()))
    volumes = volume_streams(info)
    sw = Stopwatch()
    result = {} if result is None else result
    result.update(volumes=sorted(volume_mounts(info)), sizes={}, source_stopped=False, durations=sw.durations)
    deadline = time.monotonic() + timeout
    # Handshake before the stop: the source stops only once the target is ready to receive, so a target
    # that is down or failed its checks costs no downtime (and the wait is not part of the downtime).
    t0 = time.monotonic()
    sender = None
    if transfer_method == "stream":
        sender = StreamSender(secret, run_id, target_host, port, source_address=source_address).connect(deadline)
    else:
        wait_remote_ready(module, target_host, os.path.join(remote_workdir, "target.ready"), deadline,
                          user=user, ssh_options=ssh_options)
    result["handshake_duration"] = round(time.monotonic() - t0, 6)
    # A restart policy would bring the source back after the stop or the final checkpoint (which the
    # engine does not count as a manual stop): clear it; migration_rollback puts it back.
    policy = (info.get("HostConfig") or {}).get("RestartPolicy") or {}
    # (Podman's API cannot change it, and a podman stop is never undone by its restart policy)
    if policy.get("Name") not in (None, "", "no") and can_update_restart_policy(engine_of(client)):
        client.api.update_container(info["Id"], restart_policy={"Name": "no", "MaximumRetryCount": 0})
        result["restart_policy_cleared"] = policy
    # Podman's final checkpoint goes into the container's own folder: an older one there is removed first
    bundle = podman.prepare_source(client, info["Id"]) if checkpoint and podman.handles(client) else None
    # the checkpoint the target holds is final by now: read and index it while the app still serves, so that
    # only the final checkpoint is read inside the downtime
    # (not one of the steps: it is not part of the downtime)
    delta_base = None
    if checkpoint and transfer_method == "stream":
        t_base = time.monotonic()
        delta_base = load_delta_base(base_checkpoint_dir)
        result["delta_base_duration"] = round(time.monotonic() - t_base, 6)
    stopping = None
    try:
        result["stopped_at"] = wall_clock()
        result["source_stopped"] = True  # from here on a failure needs a rollback (idempotent if it still runs)
        if checkpoint:
            ck_path = _final_checkpoint(module, client, info, name, checkpoint, local_workdir, sw, result,
                                        bundle=bundle)
        else:
            with sw.step("stop"):
                # returns once the app's process exited (Podman's own stop returns ~0.2 s later: engines)
                stopping = stop_container(client, info, stop_timeout)
        if transfer_method == "stream":
            with sw.step("transfer"):
                if checkpoint:
                    delta = write_checkpoint_delta(sender, ck_path, base_checkpoint_dir or "", base=delta_base)
                    result["sizes"]["checkpoint_delta"] = delta["literal_bytes"]
                    result["sizes"]["checkpoint_transferred"] = delta["stream_bytes"]
                    result["checkpoint_delta"] = delta
                write_volumes_tar(sender, volumes, stream=True)
                ack = sender.close(deadline)
                result["sizes"]["stream"] = sender.bytes_sent
            result["target_answer"] = ack
        else:
            if checkpoint:
                with sw.step("checkpoint_transfer"):
                    tr = transfer(module, "rsync", ck_path.rstrip("/") + "/", target_host,
                                  target_checkpoint_dir.rstrip("/") + "/", user=user, ssh_options=ssh_options)
                result["rsync_stats"] = tr["stats"]
                result["sizes"]["checkpoint_transferred"] = tr["transferred_bytes"]
                result["sizes"]["checkpoint_delta"] = tr["stats"].get("literal_data")
            archive = os.path.join(local_workdir, "volumes.tar")
            with sw.step("volume_archive"):
                with open(archive, "wb") as fh:
                    write_volumes_tar(fh, volumes)
            result["sizes"]["volume_tarball"] = os.path.getsize(archive)
            with sw.step("volume_transfer"):
                transfer(module, "scp", archive, target_host, os.path.join(remote_workdir, "volumes.tar"),
                         user=user, ssh_options=ssh_options)
            with sw.step("signal"):
                ssh_command(module, target_host, ["touch", os.path.join(remote_workdir, "relocation.done")],
                            user=user, ssh_options=ssh_options, what="writing the completion marker on the target")
    except BaseException:
        if sender is not None:
            sender.abort()  # the target sees the stream end early and fails at once
        if stopping is not None:
            try:
                stopping.wait(60)  # a rollback must not start the container while its stop still runs
            except Exception:
                pass
        raise
    if stopping is not None:
        stopping.wait(60)  # the engine's stop returned: nothing of it is left running
    # after the target confirmed: figures for the record, outside the downtime
    result["sizes"]["volume"] = sum(dir_size(mp) for mp in volumes.values())
    result["durations"] = sw.durations
    result["transfer_duration"] = round(sum(v for k, v in sw.durations.items()
                                            if k in ("transfer", "checkpoint_transfer", "volume_transfer",
                                                     "signal")), 6)
    result["source_duration"] = round(sum(v for k, v in sw.durations.items()
                                          if k in ("checkpoint", "stop", "volume_archive")), 6)
    return result


def relocate_target(module, client, name, transfer_method, checkpoint=None, port=None, workdir=None,
                    timeout=120, listen_address=None, source_address=None, secret=None, run_id=None,
                    info=None, result=None, link_pages=True):
    """Target half: receive the state (authenticated stream, or scp + completion marker), start (from the
    checkpoint for m3). With the stream the receiver binds ``listen_address`` only and takes the stream of
    ``source_address`` only, after the run's challenge-response. ``link_pages`` (m3 with the stream): the
    checkpoint is patched beside the engine's folder and its page images linked into it (link_checkpoint), else
    patched in the engine's folder itself."""
    info = info or require_container(client, name)
    if (info.get("State") or {}).get("Running"):
        raise MigrationError("Container %s already runs on the target host %s." % (name, hostname()))
    volumes = volume_streams(info)
    sw = Stopwatch()
    result = {} if result is None else result
    result.update(volumes=sorted(volume_mounts(info)), durations=sw.durations)
    deadline = time.monotonic() + timeout
    ck_dir = container_checkpoint_dir(client, info["Id"], checkpoint) if checkpoint else None
    images_dir = None
    on_podman = bool(checkpoint) and podman.handles(client)
    if checkpoint:
        # the pre-relocation checkpoint must be this engine's (the app still serves on the source)
        podman.check_marker(ck_dir, engine_of(client))
    if on_podman:
        # Podman restores the container in place (podman_checkpoint): it writes the target's own OCI spec now,
        # and the pre-relocation checkpoint moves into the folder its restore reads, where the stream's delta
        # patches it (transfer=ssh: rsync patches it where it is, and it moves once the source is done)
        t0 = time.monotonic()
        podman.prepare_target(module, info["Id"])
        images_dir = checkpoint_images_dir(client, info["Id"], checkpoint)
        if transfer_method == "stream":
            result["checkpoint_staged"] = stage_checkpoint(ck_dir, images_dir)
        result["checkpoint_staging_duration"] = round(time.monotonic() - t0, 6)
    elif checkpoint and transfer_method == "stream" and link_pages:
        # before the receiver listens (the source stops its app only once it is connected): the pre-relocation
        # checkpoint leaves the engine's folder for one beside it, where the delta patches it and from where
        # its page images are linked (link_checkpoint: they stay out of the engine's round trip)
        images_dir = checkpoint_images_dir(client, info["Id"], checkpoint)
        t0 = time.monotonic()
        result["checkpoint_staged"] = stage_checkpoint(ck_dir, images_dir)
        result["checkpoint_staging_duration"] = round(time.monotonic() - t0, 6)
    if transfer_method == "stream":
        receiver = StreamReceiver(secret, run_id, listen_address, port, source_address)
        try:
            receiver.listen()
            with sw.step("wait"):
                reader = receiver.accept_authenticated(deadline)
                # the source connects before it stops the app; the stream starts after its stop
                reader.wait_for_data()
            try:
                with sw.step("receive"):
                    lines = LineReader(reader)
                    if checkpoint:
                        result["checkpoint_delta"] = apply_checkpoint_delta(lines, images_dir or ck_dir)
                    result["members"] = extract_volumes_tar(lines, volumes, stream=True)
                    if lines.read().strip(b"\0"):
                        raise MigrationError("Unexpected data after the volume stream.")
            except (MigrationError, OSError, tarfile.TarError, EOFError) as exc:
                msg = getattr(exc, "msg", None) or \
                    "The relocation stream was refused on host %s: %s" % (hostname(), exc)
                try:
                    receiver.acknowledge(False, msg)
                except Exception:
                    pass
                raise MigrationError(msg) from exc
            receiver.acknowledge(True, "received")
            result["rejected_peers"] = receiver.rejected
        finally:
            receiver.close()
    else:
        marker = os.path.join(workdir, "relocation.done")
        with open(os.path.join(workdir, "target.ready"), "w") as fh:
            fh.write("%s\n" % wall_clock())
        with sw.step("wait"):
            while not os.path.exists(marker):
                if time.monotonic() > deadline:
                    raise MigrationError("The completion marker %s did not appear on host %s within %ss (did "
                                         "the source fail?)." % (marker, hostname(), timeout))
                time.sleep(0.002)
        with sw.step("volume_restore"):
            with open(os.path.join(workdir, "volumes.tar"), "rb") as fh:
                result["members"] = extract_volumes_tar(fh, volumes)
    if images_dir and not on_podman:
        with sw.step("place"):
            result["checkpoint_placed"] = link_checkpoint(images_dir, ck_dir)
    elif on_podman and transfer_method != "stream":
        with sw.step("place"):
            result["checkpoint_staged"] = stage_checkpoint(ck_dir, images_dir)  # a rename
    call = {}
    with sw.step("start"):
        if checkpoint:
            start_from_checkpoint(client, info["Id"], checkpoint, timing=call)
            result["restore_attempts"] = call.get("attempts")
            result["restore_retried_after"] = call.get("retried_after")
        else:
            client.api.start(info["Id"])
        t_check = time.monotonic()
        running, state = wait_running(client, info["Id"], timeout=10)
        running_since = time.monotonic()
        running_check = round(running_since - t_check, 6)
    result["running_at"] = wall_clock()
    if not running:
        raise MigrationError("Container %s did not stay running on the target host %s (status %s, exit code %s, "
                             "error %r)." % (name, hostname(), state.get("Status"), state.get("ExitCode"),
                                             state.get("Error")), state=state)
    result["durations"] = sw.durations
    result["target_duration"] = round(sum(v for k, v in sw.durations.items() if k != "wait"), 6)
    # after the downtime's end: where the start's time went (CRIU's restore log) and when the app answered
    if call and on_podman:
        bundle = os.path.dirname(images_dir)
        restore = podman.restore_stages(bundle, call["called_at"], call["returned_at"], call.get("engine_stats"))
        result["engine_restore_stats"] = call.get("engine_stats")
    else:
        restore = restore_stages(info["Id"], call["called_at"], call["returned_at"]) if call else None
    if restore is not None:
        restore["running_check"] = running_check
    result["restore_stages"] = restore
    if on_podman and os.path.isdir(images_dir):
        shutil.rmtree(images_dir, ignore_errors=True)  # Podman keeps it (keep=true, for the figures): not needed now
    try:
        result["serving"] = first_connect(client, info)
    except Exception as exc:  # a figure only: the app runs, its migration stands
        result["serving"] = dict(seconds=None, address=None, error="%s: %s" % (type(exc).__name__, exc))
    # after the downtime: an app that exits (or is restarted) right after its start has not migrated
    check_settled(client, info["Id"], state, running_since, restart_count=info.get("RestartCount") or 0, name=name)
    return result


def first_connect(client, info, limit=2.0):
    """After the start: the seconds until the container (``info``: its inspect data from before the start) accepts a
    TCP connection on its first exposed TCP port from this host (at its address on its first network, asked now),
    measured from now, and that address. None when it exposes no TCP port or has no address; ``seconds`` None when
    nothing answered within ``limit`` seconds."""
    import socket
    ports = sorted(int(p.split("/")[0]) for p in ((info.get("Config") or {}).get("ExposedPorts") or {})
                   if p.endswith("/tcp") and p.split("/")[0].isdigit())
    if not ports:
        return None
    info = client.api.inspect_container(info["Id"])
    networks = ((info.get("NetworkSettings") or {}).get("Networks") or {})
    address = next((n.get("IPAddress") for _k, n in sorted(networks.items()) if n.get("IPAddress")), None)
    if not address:
        return None
    t0 = time.monotonic()
    while True:
        try:
            socket.create_connection((address, ports[0]), timeout=0.5).close()
            return dict(seconds=round(time.monotonic() - t0, 6), address="%s:%d" % (address, ports[0]))
        except OSError:
            if time.monotonic() - t0 > limit:
                return dict(seconds=None, address="%s:%d" % (address, ports[0]))
            time.sleep(0.005)


def _restore_policy(client, info, restart_policy):
    if restart_policy and restart_policy.get("Name") not in (None, "", "no") and \
            (info.get("HostConfig") or {}).get("RestartPolicy") != restart_policy and \
            can_update_restart_policy(engine_of(client)):
        client.api.update_container(info["Id"], restart_policy=dict(
            Name=restart_policy["Name"], MaximumRetryCount=restart_policy.get("MaximumRetryCount") or 0))
        return True
    return False


def _rollback_podman(client, info, checkpoint):
    """A Podman source: restored in place from Podman's own final checkpoint when Podman holds one (m3), else
    started."""
    held, bundle = podman.checkpointed(client, info["Id"]) if checkpoint else (False, None)
    restore = functools.partial(podman.restore, client, info["Id"], bundle) if held else None
    return _restore_or_start(client, info["Id"], restore)


def _restore_or_start(client, container_id, restore):
    """Bring a stopped source back through ``restore`` (a call, or None when there is no checkpoint to restore
    from), else, or when the restore fails, with a plain start; then wait until it runs."""
    method, errors = "start", []
    if restore is not None:
        try:
            restore()
            method = "checkpoint"
        except MigrationError as exc:
            errors.append(exc.msg)
    if method == "start":
        client.api.start(container_id)
    running, state = wait_running(client, container_id, timeout=10)
    return dict(changed=True, method=method, running=running, state=state, errors=errors)


def rollback_source(client, name, checkpoint=None, restart_policy=None, checkpoint_dir=None):
    """Bring the source container back: from its final checkpoint (m3) or a plain start with its volumes.

    The final checkpoint is looked for in the container's own ``checkpoints/<checkpoint>`` (made through the
    engine), else in ``checkpoint_dir/<checkpoint>`` (made through the runtime), which is placed there first.
    ``restart_policy`` (the source's own, which the relocation cleared) is put back.
    """
    info = require_container(client, name)
    if (info.get("State") or {}).get("Running"):
        policy_changed = _restore_policy(client, info, restart_policy)
        return dict(changed=policy_changed, method="already running", running=True)
    if podman.handles(client):
        return _rollback_podman(client, info, checkpoint)
    if checkpoint and checkpoint_dir and not os.path.isdir(container_checkpoint_dir(client, info["Id"], checkpoint)) \
            and os.path.isdir(os.path.join(checkpoint_dir, checkpoint)):
        place_checkpoint(client, info["Id"], os.path.join(checkpoint_dir, checkpoint), checkpoint)
    restore = None
    if checkpoint and os.path.isdir(container_checkpoint_dir(client, info["Id"], checkpoint)):
        restore = functools.partial(start_from_checkpoint, client, info["Id"], checkpoint)
    result = _restore_or_start(client, info["Id"], restore)
    _restore_policy(client, info, restart_policy)
    return result
