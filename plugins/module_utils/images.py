# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Images of a migration: `docker export`/`import` (m1), `docker commit`/`save`/`load` (m2, m3)."""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import stream_to_file
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError
from ansible_collections.mec.migration.plugins.module_utils.run_config import (
    IMAGE_CONFIG_KEYS, lost_image_config, require_container)
from ansible_collections.mec.migration.plugins.module_utils.timing import wall_clock


def export_container(client, name, dest):
    """`docker export` of ``name`` into the tarball ``dest``; returns bytes and duration."""
    require_container(client, name)
    t0 = time.monotonic()
    size = stream_to_file(client.api.export(name), dest)
    return dict(path=dest, size=size, duration=round(time.monotonic() - t0, 6))


def _repo_tag(ref):
    if ":" in ref.rsplit("/", 1)[-1]:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def find_image(client, ref):
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    try:
        return client.api.inspect_image(ref)
    except NotFound:
        return None


def import_image(client, src, ref, changes=None, source_config=None):
    """`docker import` of tarball ``src`` as ``ref`` with Dockerfile ``changes``; reports lost config."""
    repo, tag = _repo_tag(ref)
    t0 = time.monotonic()
    out = client.api.import_image_from_file(src, repository=repo, tag=tag, changes=changes or None)
    duration = round(time.monotonic() - t0, 6)
    text = out if isinstance(out, str) else out.decode("utf-8", "replace") if isinstance(out, bytes) else str(out)
    if '"error"' in text or "errorDetail" in text:
        raise MigrationError("docker import of %s failed on host %s: %s" % (src, hostname(), text.strip()))
    image = client.api.inspect_image(ref)
    new_cfg = dict((k, (image.get("Config") or {}).get(k)) for k in IMAGE_CONFIG_KEYS)
    return dict(image=ref, image_id=image["Id"], size=int(image.get("Size") or 0), duration=duration,
                lost_config=lost_image_config(source_config, new_cfg) if source_config is not None else None,
                config=new_cfg)


def commit_container(client, name, ref, changes=None):
    """`docker commit` (the engine pauses the container); measures the pause from the engine's events."""
    info = require_container(client, name)
    repo, tag = _repo_tag(ref)
    since = wall_clock()
    t0 = time.monotonic()
    res = client.api.commit(info["Id"], repository=repo, tag=tag, changes=changes or None)
    duration = round(time.monotonic() - t0, 6)
    until = wall_clock() + 0.001
    freeze = None
    stream = None
    try:
        pause = unpause = None
        # the engine ends the stream only at `until` (whole seconds: up to 1 s after the commit); stop reading at
        # the unpause instead, which the commit has already emitted
        stream = client.api.events(since=int(since) - 1, until=int(until) + 1, decode=True,
                                   filters={"container": info["Id"], "event": ["pause", "unpause"]})
        for ev in stream:
            t = ev.get("timeNano", 0) / 1e9
            if t < since - 0.001:
                continue
            if ev.get("status", ev.get("Action")) == "pause" and pause is None:
                pause = t
            elif ev.get("status", ev.get("Action")) == "unpause" and pause is not None:
                unpause = t
                break
        if pause is not None and unpause is not None:
            freeze = round(unpause - pause, 6)
    except Exception:
        freeze = None
    finally:
        if hasattr(stream, "close"):
            stream.close()
    image = client.api.inspect_image(res["Id"])
    return dict(image=ref, image_id=image["Id"], size=int(image.get("Size") or 0), duration=duration,
                freeze_duration=freeze if freeze is not None else duration,
                freeze_source="engine events" if freeze is not None else "commit duration (upper bound)")


def save_image(client, ref, dest):
    """`docker save` of ``ref`` into ``dest``."""
    t0 = time.monotonic()
    size = stream_to_file(client.api.get_image(ref), dest)
    return dict(path=dest, size=size, duration=round(time.monotonic() - t0, 6))


def load_image(client, src):
    """`docker load` of tarball ``src``; returns the loaded references."""
    t0 = time.monotonic()
    loaded = []
    with open(src, "rb") as fh:
        res = client.api.load_image(fh)
        for item in (res if not isinstance(res, (bytes, str)) else [json.loads(res)]):
            if isinstance(item, (bytes, str)):
                item = json.loads(item)
            if item.get("error"):
                raise MigrationError("docker load of %s failed on host %s: %s" % (src, hostname(), item["error"]))
            m = re.match(r"Loaded image(?: ID)?: (\S+)", item.get("stream", "").strip())
            if m:
                loaded.append(m.group(1))
    return dict(images=loaded, size=os.path.getsize(src), duration=round(time.monotonic() - t0, 6))
