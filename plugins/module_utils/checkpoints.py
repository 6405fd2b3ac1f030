# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""CRIU checkpoints through the engine's API (m3): where they live, made, removed, placed, started from.
A failed dump or restore names CRIU's own reason, read from its log on the host."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import time

from ansible_collections.mec.migration.plugins.module_utils.criu import (
    RUNC_CRIU_CONFIG, LogKeeper, candidate_logs, failure_report, log_errors, log_phases, read_text, restore_timing)
from ansible_collections.mec.migration.plugins.module_utils import podman_checkpoint as podman
from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C, hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size, free_bytes
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.run_config import require_container


def docker_root(client):
    return client.info().get("DockerRootDir", "/var/lib/docker")


def container_checkpoint_dir(client, container_id, name=None):
    """Where a checkpoint sent to the container arrives (Docker: the engine's ``checkpoints/``; Podman: a folder
    beside its ``checkpoint/`` in the container's bundle folder, see podman_checkpoint)."""
    if podman.handles(client):
        return podman.staging_dir(podman.static_dir(client, container_id), name)
    base = os.path.join(docker_root(client), "containers", container_id, "checkpoints")
    return os.path.join(base, name) if name else base


def _hint(errors):
    """What to do about CRIU's errors, where we know."""
    if any("Connected TCP socket" in e or "tcp-established" in e for e in errors):
        return (" The container has an established TCP connection and the runtime's CRIU configuration (%s) does "
                "not allow it: set migration_criu_tcp=close (the default) and run the migration again."
                % RUNC_CRIU_CONFIG)
    if any("Operation not permitted" in e and "rlimit" not in e for e in errors):
        return (" On a host without CAP_SYS_RESOURCE CRIU handles only root processes: run the app as root "
                "there, or use hosts that have the capability.")
    return ""


def _criu_failure(client, exc, what, container_id, since, kept=None):
    """A MigrationError for a dump or restore the engine reported failed, with CRIU's own reason from its log
    on this host (``criu_log``, ``criu_errors``; ``kept``: the logs a LogKeeper held while the call ran)."""
    message = getattr(exc, "explanation", None) or str(exc)
    log, errors = failure_report(message, container_id=container_id, since=since, kept=kept)
    reason = "; ".join(errors) if errors else message.strip()
    return MigrationError("%s failed on host %s: CRIU says: %s%s" % (what, hostname(), reason, _hint(errors)),
                          criu_log=log, criu_errors=errors, engine_error=message.strip())


def _engine_criu_call(client, call, what, container_id):
    """Run ``call()`` (an engine request that has CRIU dump or restore); returns its duration. A refusal
    becomes a MigrationError with CRIU's own reason, read from its log of this run on the host."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import APIError
    since = time.time()
    t0 = time.monotonic()
    keeper = LogKeeper(container_id)
    try:
        with keeper:
            res = call()
        client.api._raise_for_status(res)
    except APIError as exc:
        raise _criu_failure(client, exc, what, container_id, since, kept=keeper.logs()) from exc
    finally:
        keeper.close()
    return round(time.monotonic() - t0, 6)


def create_checkpoint(client, name, checkpoint, leave_running=True, checkpoint_dir=None, container_id=None):
    """The engine's checkpoint call (``docker checkpoint create``); returns where it is, its size and the
    duration. ``container_id`` saves the look-up when the caller has it (the relocation does)."""
    cid = container_id or require_container(client, name)["Id"]
    body = {"CheckpointID": checkpoint, "Exit": not leave_running}
    if checkpoint_dir:
        body["CheckpointDir"] = checkpoint_dir
    # where it will be, asked before the dump: nothing is asked of the engine while the app is down
    path = os.path.join(checkpoint_dir, checkpoint) if checkpoint_dir else \
        container_checkpoint_dir(client, cid, checkpoint)
    duration = _engine_criu_call(
        client, lambda: client.api._post_json(client.api._url("/containers/{0}/checkpoints", cid), data=body),
        "The checkpoint %s of container %s" % (checkpoint, name), cid)
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
    if podman.handles(client):
        return podman.place(podman.static_dir(client, info["Id"]), src_dir)
    dest = container_checkpoint_dir(client, info["Id"], checkpoint)
    if os.path.realpath(src_dir) != os.path.realpath(dest):
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        shutil.copytree(src_dir, dest, symlinks=True)
    return dest


def start_from_checkpoint(client, container, checkpoint, checkpoint_dir=None, timing=None, attempts=2):
    """The engine's start from a checkpoint (``docker start --checkpoint``; the checkpoint in the container's
    own ``checkpoints/`` unless ``checkpoint_dir``). Returns the duration; a failure names CRIU's reason.
    ``timing`` (a dict) gets the call's wall-clock ``called_at`` and ``returned_at`` (for restore_stages), and on
    Docker ``attempts`` (the tries: a restore CRIU gave up after it had begun is tried once more, see
    transient_restore_failure) and ``retried_after`` (the first failure's message, with CRIU's reason). Podman:
    its restore of the container from its own ``checkpoint/`` (podman_checkpoint.restore)."""
    if podman.handles(client):
        return podman.restore(client, container, podman.static_dir(client, container), timing=timing)
    params = {"checkpoint": checkpoint}
    if checkpoint_dir:
        params["checkpoint-dir"] = checkpoint_dir
    timing = {} if timing is None else timing
    timing["called_at"] = time.time()
    t0 = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            _engine_criu_call(
                client, lambda: client.api._post(client.api._url("/containers/{0}/start", container), params=params),
                "The start of container %s from checkpoint %s" % (container, checkpoint), container)
            break
        except MigrationError as exc:
            # CRIU gave up after the restore had begun (seen twice in CI under load, not reproduced by hand): the
            # engine has removed the task, the images are untouched; once more
            if attempt == attempts or not transient_restore_failure(exc) or _running(client, container):
                if attempt > 1:
                    raise MigrationError("%s (try %d of %d; the first failed too: %s)" % (
                        exc.msg, attempt, attempts, timing["retried_after"]),
                        restore_attempts=attempt, **exc.details) from exc
                raise
            timing["retried_after"] = exc.msg
    timing["attempts"] = attempt
    timing["returned_at"] = time.time()
    return round(time.monotonic() - t0, 6)


def transient_restore_failure(exc):
    """Whether a failed start from a checkpoint may be tried once more: runc reports ``criu failed: type NOTIFY``
    when CRIU's restore failed after runc had answered one of CRIU's notifications (runc names the type of its own
    last message to CRIU), that is after the restore had begun, with the images read; a failure of runc's own
    handling of a notification (its hooks) reads otherwise, and one at the restore's start says ``type RESTORE``.
    The reason is in CRIU's log (kept by LogKeeper)."""
    return "type NOTIFY" in (exc.details.get("engine_error") or exc.msg or "")


def _running(client, container):
    try:
        return bool((client.api.inspect_container(container).get("State") or {}).get("Running"))
    except Exception:
        return True  # unknown: do not start it twice


def restore_stages(container_id, called_at, returned_at):
    """The engine's start from a checkpoint (``called_at`` -> ``returned_at``, epoch seconds on this host) split by
    CRIU's restore log of that start, which the runtime leaves in the task's work folder: ``engine_before_criu`` (the
    engine and the runtime before CRIU runs: network set-up, the checkpoint's way to the runtime, the runtime's
    shim), ``criu_restore`` (CRIU's own work), ``criu_hooks`` (the runtime's OCI hooks that CRIU waited for, on
    Docker its network namespace's set-up), ``engine_after_criu``, and ``criu_log``. The log's end is its mtime
    (the kernel's coarse clock, a few ms): a stage is never below 0. None when no log of this start is found."""
    for path in candidate_logs(container_id, names=("restore.log", "criu-restore.log")):
        try:
            ended_at = os.stat(path).st_mtime
        except OSError:
            continue
        if ended_at < called_at - 0.01 or ended_at > returned_at + 0.01:
            continue  # an older restore's log
        timing = restore_timing(read_text(path), ended_at=min(ended_at, returned_at))
        if not timing:
            continue
        hooks = sum(timing["hooks"].values())
        return dict(engine_before_criu=round(max(timing["started_at"] - called_at, 0.0), 6),
                    criu_restore=timing["own"], criu_hooks=round(hooks, 6), criu_hooks_by_name=timing["hooks"],
                    engine_after_criu=round(max(returned_at - timing["ended_at"], 0.0), 6), criu_log=path)
    return None


# --------------------------------------------------------------------------- the checkpoint's way into the engine
#
# Docker (20.10, with containerd) does not hand its runtime the checkpoint folder it is given: it tars the folder
# into containerd's content store (written and synced to disk), and containerd unpacks it again into a temporary
# folder for runc and CRIU. For A2's 14 MB of page images that round trip costs about 0.15-0.2 s of the downtime.
# The page images (pages-<n>.img, nearly all of a checkpoint) therefore stay in a folder of their own beside the
# checkpoints, and the engine's checkpoint folder holds the small images and, for each page image, a symbolic link:
# the engine's round trip carries the links only, and CRIU, which opens every image relative to the images folder
# it is given, reads the pages where they are. A link is relative: CRIU opens the pages once inside the container's
# mount namespace and root, where an absolute link would name a path in the container, while a relative one climbs
# from the images folder (a host folder outside the container's root) up to the host's root and down to the file;
# enough "../" reach the root from any folder the engine may unpack into (extra ones stop there).

PAGE_IMAGE = re.compile(r"^pages-\d+\.img$")
LINK_DEPTH = 64


def checkpoint_images_dir(client, container_id, name):
    """Where the target keeps a checkpoint's images during a relocation: in the container's own folder (the
    engine's, root only; removed with the container), beside ``checkpoints/``, not inside it (the engine lists
    every folder there as a checkpoint). Podman: the folder its restore reads, ``<bundle>/checkpoint``."""
    if podman.handles(client):
        return podman.checkpoint_path(podman.static_dir(client, container_id))
    return os.path.join(docker_root(client), "containers", container_id, "mec-checkpoint-images", name)


def stage_checkpoint(ck_dir, images_dir):
    """Move the pre-relocation checkpoint that arrived in the engine's folder ``ck_dir`` to ``images_dir`` (the
    same file system: a rename), where the relocation's delta patches it. Returns True when there was one."""
    if os.path.lexists(images_dir):
        shutil.rmtree(images_dir)
    os.makedirs(os.path.dirname(images_dir), mode=0o700, exist_ok=True)
    if os.path.isdir(ck_dir) and not os.path.islink(ck_dir):
        os.rename(ck_dir, images_dir)
        return True
    os.mkdir(images_dir, 0o700)
    return False


def link_checkpoint(images_dir, ck_dir, depth=LINK_DEPTH):
    """Make the engine's checkpoint folder ``ck_dir`` from ``images_dir``: the page images as relative symbolic
    links to their files there, every other image copied. Returns ``dict(linked_bytes, copied_bytes, files)``."""
    if os.path.islink(ck_dir):
        os.unlink(ck_dir)
    elif os.path.exists(ck_dir):
        shutil.rmtree(ck_dir)
    os.mkdir(ck_dir, 0o700)
    up = "../" * depth
    linked = copied = files = 0
    for name in sorted(os.listdir(images_dir)):
        src = os.path.join(images_dir, name)
        st = os.lstat(src)
        if not stat.S_ISREG(st.st_mode):
            raise MigrationError("The checkpoint %s holds %s, which is not a regular file." % (images_dir, name))
        if PAGE_IMAGE.match(name):
            os.symlink(up + os.path.abspath(src).lstrip("/"), os.path.join(ck_dir, name))
            linked += st.st_size
        else:
            shutil.copy2(src, os.path.join(ck_dir, name))
            copied += st.st_size
        files += 1
    return dict(linked_bytes=linked, copied_bytes=copied, files=files)


# --------------------------------------------------------------------------- through the runtime (runc)
#
# The engine's checkpoint call pauses the container, has runc dump it into a temporary directory, copies
# the images into containerd's content store as a tar and extracts them again into the checkpoint
# directory: about 0.43 s for a 14 MB Python app whose CRIU dump takes 0.07 s. runc, the runtime below the
# engine, dumps the same container straight into a directory of our choice (0.19 s); the engine sees the
# container exit as after its own checkpoint with exit, and starts it from these images as from its own.

# Docker's (moby namespace), then root Podman's (its runc's default root)
RUNC_ROOTS = ("/run/docker/runtime-runc/moby", "/var/run/docker/runtime-runc/moby", podman.RUNC_ROOT)


def runtime_root(container_id, roots=RUNC_ROOTS):
    """runc's state directory that holds the (running) container, or None (another runtime or exec root)."""
    for root in roots:
        if os.path.isfile(os.path.join(root, container_id, "state.json")):
            return root
    return None


# CRIU's errors of a race with the container's own processes, not of the container: a task caught in the middle of
# exiting or forking when the cgroup froze cannot be seized (its state D), and CRIU gives up when its freeze
# timeout passes. The failed dump changed nothing (the container was resumed as it was), and the task is gone a
# moment later: one more dump is tried before the migration fails.
TRANSIENT_DUMP_ERRORS = ("Unseizable non-zombie", "Timeout reached")


def transient_dump_failure(errors):
    """True when CRIU's ``errors`` (its log's error lines) are those of a race that a second dump outlives."""
    return any(marker in e for e in errors or () for marker in TRANSIENT_DUMP_ERRORS)


def runtime_checkpoint(module, container_id, image_path, leave_running=True, root=None, attempts=2):
    """Dump a running container with runc into ``image_path`` (made empty first). Returns its size, the
    durations, the dumps tried (``attempts``) and, after a retry, CRIU's reason for the first failure
    (``retried_after``); a failure (the container keeps running: CRIU unfreezes it, and so do we) names CRIU's
    reason from its log.

    The container is paused first (runc freezes its cgroup and polls for FROZEN in microseconds; CRIU, left
    to freeze it, polls every 100 ms: 0.1 s of the downtime here), and resumed after a dump that left it
    running or failed. A dump that failed on a race with the container's processes (TRANSIENT_DUMP_ERRORS) is
    tried again, up to ``attempts`` dumps in all; ``duration`` counts every one of them."""
    root = root or runtime_root(container_id)
    if root is None:
        raise MigrationError("runc has no state for container %s on host %s." % (container_id[:12], hostname()))
    runc = module.get_bin_path("runc", required=True)
    t0 = time.monotonic()
    first = None
    for attempt in range(1, attempts + 1):
        try:
            ck = _runtime_dump(module, runc, root, container_id, image_path, leave_running)
        except MigrationError as exc:
            errors = exc.details.get("criu_errors")
            if attempt >= attempts or not transient_dump_failure(errors):
                if first is not None:
                    exc.details["retried_after"] = first
                raise
            first = "; ".join(errors)
            module.warn("The checkpoint of container %s on host %s failed on a race with its processes (CRIU "
                        "says: %s); it was resumed as it was, and the dump is tried again." % (
                            container_id[:12], hostname(), first))
            continue
        ck.update(duration=round(time.monotonic() - t0, 6), attempts=attempt, retried_after=first)
        return ck


def _runtime_dump(module, runc, root, container_id, image_path, leave_running):
    """One pause, dump and resume of runtime_checkpoint."""
    work = image_path.rstrip("/") + ".work"
    for d in (image_path, work):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d, mode=0o700)
    base = [runc, "--root", root]
    argv = base + ["checkpoint", "--image-path", image_path, "--work-path", work]
    if leave_running:
        argv.append("--leave-running")
    t0 = time.monotonic()
    rc, out, err = module.run_command(base + ["pause", container_id], environ_update=LANG_C)
    if rc != 0:
        raise MigrationError("runc could not pause container %s on host %s before the checkpoint: %s" % (
            container_id[:12], hostname(), (err or out).strip()))
    t_paused = time.monotonic()
    rc, out, err = module.run_command(argv + [container_id], environ_update=LANG_C)
    duration = round(time.monotonic() - t0, 6)
    if leave_running or rc != 0:
        rrc, rout, rerr = module.run_command(base + ["resume", container_id], environ_update=LANG_C)
        if rrc != 0 and (leave_running or rc != 0):
            raise MigrationError("runc could not resume container %s on host %s after the checkpoint (%s): %s. "
                                 "It stays frozen: run `runc --root %s resume %s` there." % (
                                     container_id[:12], hostname(), "failed" if rc else "done",
                                     (rerr or rout).strip(), root, container_id),
                                 criu_log=os.path.join(work, "dump.log"))
    log = os.path.join(work, "dump.log")
    if rc != 0:
        errors = log_errors(read_text(log) or "")
        reason = "; ".join(errors) if errors else (err or out).strip()
        raise MigrationError("The checkpoint of container %s failed on host %s: CRIU says: %s%s" % (
            container_id[:12], hostname(), reason, _hint(errors)), criu_log=log, criu_errors=errors,
            runtime_error=(err or out).strip())
    phases = log_phases(read_text(log) or "")
    return dict(path=image_path, size=dir_size(image_path), duration=duration, criu_log=log,
                criu_duration=phases.get("total"), pause_duration=round(t_paused - t0, 6))


# --------------------------------------------------------------------------- the final checkpoint's delta
#
# At the relocation the target already holds the pre-relocation checkpoint (sent while the app served) in
# the directory the final one must fill; the source holds both. The source compares them page by page
# (CRIU's images are page-aligned) and sends only what differs, in the relocation's authenticated stream:
#   b"MECCK1\n", then per file one JSON line {"name", "size", "mode", "sha256", "runs": [[offset, length]...],
#   "copies": [[offset, old_offset, length]...]} followed by the runs' bytes, or {"name", "delete": true};
#   last {"end": true, "files": N}. Copies are pages the target's file holds at another offset.
# The target patches its copy in place and checks every file's SHA-256 against the source's.

DELTA_MAGIC = b"MECCK1\n"
DELTA_BLOCK = 4096
_SAFE_NAME = re.compile(r"^[A-Za-z0-9._+-]{1,200}$")


def _safe_image_name(name):
    if not _SAFE_NAME.match(name or "") or name in (".", ".."):
        raise MigrationError("Unsafe file name %r in a checkpoint delta." % (name,))
    return name


def _merge(runs, item):
    """Append ``(dst, length)`` or ``(dst, src, length)`` to ``runs``, merged with the last one when contiguous."""
    if runs:
        last = runs[-1]
        if len(item) == 2 and len(last) == 2 and last[0] + last[1] == item[0]:
            runs[-1] = (last[0], last[1] + item[1])
            return
        if len(item) == 3 and len(last) == 3 and last[0] + last[2] == item[0] and last[1] + last[2] == item[1]:
            runs[-1] = (last[0], last[1], last[2] + item[2])
            return
    runs.append(item)


def _page_key(page):
    """The index key of one page: a 16-byte digest, so that an index of a large checkpoint costs 16 bytes a page,
    not a copy of the page (a match found by it is then compared byte for byte)."""
    return hashlib.blake2b(page, digest_size=16).digest()


class DeltaBase(object):
    """One file of the checkpoint the target holds, as the delta compares against it: its bytes and, built on the
    first ask, the offsets of its pages by content (the first offset of equal pages wins)."""

    def __init__(self, data, block=DELTA_BLOCK):
        self.data, self.block, self._index = data, block, None

    def index(self):
        if self._index is None:
            data, block, index = self.data, self.block, {}
            for o in range(len(data) - block, -1, -block):
                index[_page_key(data[o:o + block])] = o
            self._index = index
        return self._index


def load_delta_base(base_dir, block=DELTA_BLOCK):
    """Read and index the checkpoint the target holds (``base_dir``, the pre-relocation one), for
    write_checkpoint_delta: the relocation does it before the app stops, so that only the final checkpoint is read
    inside the downtime. ``{name: DeltaBase}`` of its regular files; {} when there is none."""
    base = {}
    if not base_dir or not os.path.isdir(base_dir):
        return base
    for name in os.listdir(base_dir):
        path = os.path.join(base_dir, name)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path, "rb") as fh:
                base[name] = DeltaBase(fh.read(), block)
            base[name].index()
    return base


def delta_of(new, base):
    """How to make ``new`` (a file's bytes) from ``base`` (a DeltaBase of what the target holds; None: all of it
    literal), page by page: ``(literals, copies)``, ``literals`` as ``[(offset, length)]`` to send, ``copies`` as
    ``[(offset, old_offset, length)]`` of pages the old file has elsewhere (CRIU's page images shift by whole pages
    when a mapping grows or shrinks). Pages at the same offset and the same content need nothing. Every match is
    compared byte for byte (the source holds both files)."""
    if base is None:
        return ([(0, len(new))] if new else []), []
    old, block = base.data, base.block
    literals, copies = [], []
    for off in range(0, len(new), block):
        page = new[off:off + block]
        if old[off:off + block] == page:
            continue
        src = base.index().get(_page_key(page)) if len(page) == block else None
        if src is not None and old[src:src + block] == page:
            _merge(copies, (off, src, block))
        else:
            _merge(literals, (off, len(page)))
    return literals, copies


def write_checkpoint_delta(out, new_dir, base_dir, base=None):
    """Write the delta of checkpoint ``new_dir`` against ``base_dir`` (what the target holds) into ``out``;
    ``base``: load_delta_base(base_dir) read beforehand (else it is read here). Returns ``dict(files,
    literal_bytes, total_bytes, stream_bytes)``."""
    if base is None:
        base = load_delta_base(base_dir)
    written = [0]
    raw_write = out.write

    def write(data):
        written[0] += len(data)
        return raw_write(data)
    write(DELTA_MAGIC)
    names = sorted(os.listdir(new_dir))
    literal = total = 0
    for name in names:
        path = os.path.join(new_dir, name)
        if not os.path.isfile(path) or os.path.islink(path):
            raise MigrationError("The checkpoint %s holds %s, which is not a regular file." % (new_dir, name))
        _safe_image_name(name)
        with open(path, "rb") as fh:
            mode = stat.S_IMODE(os.fstat(fh.fileno()).st_mode)
            new = fh.read()
        runs, copies = delta_of(new, base.get(name))
        head = dict(name=name, size=len(new), mode=mode, sha256=hashlib.sha256(new).hexdigest(), runs=runs,
                    copies=copies)
        write(json.dumps(head, separators=(",", ":")).encode("utf-8") + b"\n")
        for offset, length in runs:
            write(new[offset:offset + length])
            literal += length
        total += len(new)
    for name in sorted(set(os.listdir(base_dir)) - set(names)) if base_dir and os.path.isdir(base_dir) else []:
        write(json.dumps(dict(name=_safe_image_name(name), delete=True)).encode("utf-8") + b"\n")
    write(json.dumps(dict(end=True, files=len(names))).encode("utf-8") + b"\n")
    return dict(files=len(names), literal_bytes=literal, total_bytes=total, stream_bytes=written[0])


class LineReader(object):
    """``readline()`` and exact ``read(n)`` over a stream's ``read(n)``, keeping what it read ahead for the
    next reader (the volumes' tar follows the delta in the same stream)."""

    def __init__(self, raw):
        self.raw = raw
        self.buf = b""

    def readline(self, limit=65536):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise MigrationError("A line of the checkpoint delta is longer than %d bytes." % limit)
            data = self.raw.read(65536)
            if not data:
                raise MigrationError("The checkpoint delta ended early.")
            self.buf += data
        line, _sep, self.buf = self.buf.partition(b"\n")
        return line

    def read(self, n=-1):
        if n is None or n < 0:
            data, self.buf = self.buf + self.raw.read(), b""
            return data
        while len(self.buf) < n:
            data = self.raw.read(max(65536, n - len(self.buf)))
            if not data:
                break
            self.buf += data
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_exact(self, n):
        data = self.read(n)
        if len(data) != n:
            raise MigrationError("The checkpoint delta ended early (%d of %d bytes)." % (len(data), n))
        return data


# What a patched checkpoint leaves free on its file system, at least.
DELTA_FREE_RESERVE_BYTES = 64 * 1024 * 1024
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _delta_refuse(name, why):
    raise MigrationError("Refused the checkpoint file %s of the delta on host %s: %s. Nothing more was written; the "
                         "relocation stops and the source comes back." % (name, hostname(), why))


def _ints(value, n, name, what):
    """``value`` as a list of ``n``-tuples of non-negative integers (the delta's runs or copies)."""
    if value is None:
        return []
    if not isinstance(value, list):
        _delta_refuse(name, "%s is not a list" % what)
    out = []
    for item in value:
        if (not isinstance(item, list) or len(item) != n
                or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in item)):
            _delta_refuse(name, "bad %s entry %r" % (what, item))
        out.append(tuple(item))
    return out


def _open_for_patch(dir_fd, name):
    """A descriptor to patch ``name`` in the checkpoint directory and the size it had: a new file is made with
    O_CREAT | O_EXCL | O_NOFOLLOW; an existing one must be a regular file of ours with one link (never a symlink,
    a hard link to something else, a device node or a FIFO), checked again on the opened descriptor."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC, 0o600,
                       dir_fd=dir_fd), 0

    def check(st, when):
        if not stat.S_ISREG(st.st_mode):
            kind = ("a symlink" if stat.S_ISLNK(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a device node" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                    "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file")
            _delta_refuse(name, "the checkpoint folder holds %s there%s" % (kind, when))
        if st.st_nlink != 1:
            _delta_refuse(name, "the file there has %d hard links%s (it may be another file's content)"
                                % (st.st_nlink, when))
        if st.st_uid != os.geteuid():
            _delta_refuse(name, "the file there belongs to uid %d, not to the receiver (uid %d)%s"
                                % (st.st_uid, os.geteuid(), when))
    check(st, "")
    fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC, dir_fd=dir_fd)
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            _delta_refuse(name, "the file there was replaced while it was opened")
        check(fst, " once opened")
    except BaseException:
        os.close(fd)
        raise
    return fd, fst.st_size


def _sha256_fd(fd):
    import hashlib
    digest = hashlib.sha256()
    offset = 0
    while True:
        chunk = os.pread(fd, 1 << 20, offset)
        if not chunk:
            return digest.hexdigest()
        digest.update(chunk)
        offset += len(chunk)


def apply_checkpoint_delta(reader, dest_dir, max_bytes=None):
    """Patch the checkpoint in ``dest_dir`` (the pre-relocation one) with a delta from ``reader`` (a
    LineReader); every file's SHA-256 must then match the source's. Returns ``dict(files, literal_bytes)``.

    Files are reached through the directory's descriptor (``dest_dir`` itself must be a real directory of ours):
    new ones are made with O_EXCL | O_NOFOLLOW, existing ones must be regular files of ours with one link
    (see _open_for_patch). Every run and copy must lie inside its file; the files' sizes may sum to
    ``max_bytes`` at most (None: no cap of its own), and what they grow by may never take the file system below
    DELTA_FREE_RESERVE_BYTES free."""
    if reader.readline() + b"\n" != DELTA_MAGIC:
        raise MigrationError("The relocation stream does not start with a checkpoint delta.")
    os.makedirs(dest_dir, mode=0o700, exist_ok=True)
    try:
        dir_fd = os.open(dest_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC)
    except OSError as exc:
        raise MigrationError("The checkpoint folder %s on host %s is not a real directory (%s): remove it and "
                             "migrate again." % (dest_dir, hostname(), exc.strerror)) from exc
    try:
        st = os.fstat(dir_fd)
        if st.st_uid != os.geteuid():
            raise MigrationError("The checkpoint folder %s on host %s belongs to uid %d, not to the receiver (uid %d):"
                                 " remove it and migrate again." % (dest_dir, hostname(), st.st_uid, os.geteuid()))
        return _apply_delta(reader, dir_fd, dest_dir, max_bytes)
    finally:
        os.close(dir_fd)


def _apply_delta(reader, dir_fd, dest_dir, max_bytes):
    room = max(free_bytes(dest_dir) - DELTA_FREE_RESERVE_BYTES, 0)
    literal = files = total = grown = 0
    while True:
        try:
            head = json.loads(reader.readline().decode("utf-8"))
        except ValueError as exc:
            raise MigrationError("A malformed entry in the checkpoint delta: %s" % exc) from exc
        if not isinstance(head, dict):
            raise MigrationError("A malformed entry in the checkpoint delta: %r" % (head,))
        if head.get("end"):
            if head.get("files") != files:
                raise MigrationError("The checkpoint delta announced %s files, %d arrived."
                                     % (head.get("files"), files))
            return dict(files=files, literal_bytes=literal)
        name = _safe_image_name(head.get("name"))
        if head.get("delete"):
            try:
                os.unlink(name, dir_fd=dir_fd)  # removes the entry itself, never what a link points to
            except FileNotFoundError:
                pass
            continue
        size, want = head.get("size"), head.get("sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or not isinstance(want, str):
            _delta_refuse(name, "bad size or checksum in its header")
        runs = _ints(head.get("runs"), 2, name, "runs")
        copies = _ints(head.get("copies"), 3, name, "copies")
        total += size
        if max_bytes is not None and total > max_bytes:
            _delta_refuse(name, "its %d bytes bring the checkpoint to %d bytes, over the cap of %d bytes"
                                % (size, total, max_bytes))
        fd, old_size = _open_for_patch(dir_fd, name)
        try:
            grown += max(size - old_size, 0)
            if grown > room:
                _delta_refuse(name, "the checkpoint would grow by %d bytes, more than its file system can take while "
                                    "keeping %d MiB free" % (grown, DELTA_FREE_RESERVE_BYTES >> 20))
            for offset, length in runs:
                if offset + length > size:
                    _delta_refuse(name, "a run [%d, %d) past its size %d" % (offset, offset + length, size))
            # pages the file holds elsewhere: read them all before anything is written over them
            moved = []
            for offset, old_offset, length in copies:
                if offset + length > size or old_offset + length > old_size:
                    _delta_refuse(name, "a copy of [%d, %d) to [%d, %d) outside the file (%d bytes there, %d after)"
                                        % (old_offset, old_offset + length, offset, offset + length, old_size, size))
                moved.append((offset, os.pread(fd, length, old_offset)))
            for offset, data in moved:
                os.pwrite(fd, data, offset)
            for offset, length in runs:
                data = reader.read_exact(length)
                view, at = memoryview(data), offset
                while view:
                    n = os.pwrite(fd, view, at)
                    view, at = view[n:], at + n
                literal += length
            os.ftruncate(fd, size)
            mode = head.get("mode", 0o600)
            os.fchmod(fd, (mode if isinstance(mode, int) and not isinstance(mode, bool) else 0o600) & 0o777)
            if _sha256_fd(fd) != want:
                raise MigrationError("The checkpoint file %s on host %s does not match the source's after the delta "
                                     "(the pre-relocation copy on the target was changed or incomplete)." % (
                                         name, hostname()))
        finally:
            os.close(fd)
        files += 1
