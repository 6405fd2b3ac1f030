# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Images of a migration: `docker export`/`import` (m1), `docker commit`/`save`/`load` (m2, m3).

m2 and m3 move only the layers the target lacks. A layer is present on the target only with the same parents, so
layers are compared by CHAIN ID (``chain_ids``), never by diff ID or image name. The target reports what it holds
(``present_chain_ids``); the source writes an archive in `docker save`'s format that lists every layer of the image
but carries the ``layer.tar`` of the missing ones only (``write_image_archive``); the target checks that it holds
every layer left out, loads it and checks the loaded image (``load_image_archive``). `docker load` takes the layers
it has from its store and checks every diff ID it reads.

``write_image_archive`` rebuilds the layer tars byte for byte from the engine's layer store when it can (method
``layerdb``: overlay2's diff directory and the tar-split metadata the engine keeps for each layer, which is what
`docker save` itself replays, without `docker save`'s full copy of every layer into a temporary folder), and
otherwise streams `docker save` and drops the present layers' tars (method ``save``). Both keep the image's config
bytes, so the loaded image has the source's image ID and diff IDs.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import re
import stat
import tarfile
import time

from ansible_collections.mec.migration.plugins.module_utils import engines
from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound, hostname
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
    try:
        return client.api.inspect_image(ref)
    except NotFound:
        return None


def import_image(client, src, ref, changes=None, source_config=None):
    """`docker import` of tarball ``src`` as ``ref`` with Dockerfile ``changes``; reports lost config."""
    repo, tag = _repo_tag(ref)
    if engines.engine_of(client) == "podman":
        # Podman's compatible API ignores the tag parameter of an import (the image would be <repo>:latest); it
        # takes the tag within the repository, as Docker's API documents too
        repo, tag = "%s:%s" % (repo, tag), None
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


# ---------------------------------------------------------------------------------------------- layer-skipping
CHAIN_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_BLOCK = 512
_CHUNK = 1 << 20


class LayerStoreUnusable(Exception):
    """The engine's layer store cannot give a layer tar here (another driver, a remote engine, a mismatch)."""


def chain_ids(diff_ids):
    """The chain ID of every prefix of ``diff_ids`` (the image's RootFS layers, base first): the first layer's
    chain ID is its diff ID, the next ones sha256("<parent chain ID> <diff ID>")."""
    out = []
    chain = None
    for diff in diff_ids:
        chain = diff if chain is None else "sha256:" + hashlib.sha256(("%s %s" % (chain, diff)).encode()).hexdigest()
        out.append(chain)
    return out


def present_chain_ids(client):
    """Chain IDs of every layer stack this engine holds (every prefix of every image's RootFS layers), sorted."""
    present = set()
    for image_id in client.api.images(all=True, quiet=True):
        try:
            layers = (client.api.inspect_image(image_id).get("RootFS") or {}).get("Layers") or []
        except NotFound:  # removed while we list: it holds nothing any more
            continue
        present.update(chain_ids(layers))
    return sorted(present)


def skippable_chain_ids(client):
    """The chain IDs a source may leave out of an archive for this engine: what it holds (present_chain_ids) on an
    engine whose load takes the layers it has from its store (Docker), none on one whose load needs every layer
    in the archive (Podman: its docker-archive reader opens every layer the manifest lists)."""
    if not engines.loads_partial_archives(engines.engine_of(client)):
        return []
    return present_chain_ids(client)


def check_chain_ids(ids, what="skip_chain_ids"):
    """``ids`` as a list of valid chain IDs; raises MigrationError naming the first bad one."""
    ids = list(ids or [])
    for item in ids:
        if not isinstance(item, str) or not CHAIN_ID_RE.match(item):
            raise MigrationError("%s: %r is not a chain ID (sha256: and 64 lowercase hex digits); pass the "
                                 "chain_ids that mec.migration.image_layers_info (or the target's preflight) "
                                 "returned." % (what, item))
    return ids


def plan_layers(diff_ids, skip_chain_ids):
    """Which layers of an image an archive must carry: a list, base first, of dicts chain_id, diff_id, send
    (False when the target holds the layer with the same parents)."""
    skip = set(skip_chain_ids or ())
    return [dict(chain_id=chain, diff_id=diff, send=chain not in skip)
            for diff, chain in zip(diff_ids, chain_ids(diff_ids))]


def _tar_header(name, size, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = mode
    info.mtime = 0
    info.type = tarfile.REGTYPE
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pad(size):
    return b"\0" * ((_BLOCK - size % _BLOCK) % _BLOCK)


class _ArchiveWriter(object):
    """A tar written member by member, each layer's data streamed and hashed (the outer tar of `docker save`)."""

    def __init__(self, fh):
        self.fh = fh

    def add_bytes(self, name, data):
        self.fh.write(_tar_header(name, len(data)))
        self.fh.write(data)
        self.fh.write(_pad(len(data)))

    def add_stream(self, name, size, chunks):
        """Write member ``name`` of ``size`` bytes from ``chunks``; returns its sha256 hex digest."""
        self.fh.write(_tar_header(name, size))
        digest = hashlib.sha256()
        written = 0
        for chunk in chunks:
            digest.update(chunk)
            self.fh.write(chunk)
            written += len(chunk)
        if written != size:
            raise LayerStoreUnusable("%s: %d bytes written, %d announced" % (name, written, size))
        self.fh.write(_pad(size))
        return digest.hexdigest()

    def close(self):
        self.fh.write(b"\0" * (2 * _BLOCK))


def _manifest(image, config_name, layer_names):
    tags = []
    if image and not image.startswith("sha256:") and "@" not in image:
        tags = ["%s:%s" % _repo_tag(image)]
    return json.dumps([dict(Config=config_name, RepoTags=tags, Layers=layer_names)]).encode()


def _local_engine(client):
    """Whether the client talks to an engine through a unix socket (so its store may be on this host; the
    store's own checks tell whether it is)."""
    try:
        from docker.transport import UnixHTTPAdapter
        return isinstance(client.api.get_adapter(client.api.base_url), UnixHTTPAdapter)
    except Exception:  # an SDK without these names, a client without adapters: not provably local
        return False


class _LayerStore(object):
    """The engine's own store of overlay2 layers: ``<root>/image/overlay2/{imagedb,layerdb}`` and
    ``<root>/overlay2/<cache-id>/diff``. Every figure read is checked against what the API said."""

    def __init__(self, client):
        if not _local_engine(client):
            raise LayerStoreUnusable("the engine is not on this host (%s)" % getattr(client.api, "base_url", "?"))
        info = client.info()
        driver = info.get("Driver")
        if driver != "overlay2":
            raise LayerStoreUnusable("storage driver %s (the layer store is read for overlay2 only)" % driver)
        if any("userns" in str(opt) for opt in info.get("SecurityOptions") or []):
            raise LayerStoreUnusable("the engine remaps user namespaces")
        self.root = info.get("DockerRootDir") or "/var/lib/docker"
        self.imagedb = os.path.join(self.root, "image", "overlay2", "imagedb", "content", "sha256")
        self.layerdb = os.path.join(self.root, "image", "overlay2", "layerdb", "sha256")
        for path in (self.imagedb, self.layerdb):
            if not os.path.isdir(path):
                raise LayerStoreUnusable("%s is not a directory on this host" % path)

    def config(self, image_id):
        """The image's config, byte for byte (its sha256 is the image ID)."""
        algo, _, hexid = image_id.partition(":")
        if algo != "sha256" or not re.match(r"^[0-9a-f]{64}$", hexid):
            raise LayerStoreUnusable("image ID %s" % image_id)
        with open(os.path.join(self.imagedb, hexid), "rb") as fh:
            data = fh.read()
        if hashlib.sha256(data).hexdigest() != hexid:
            raise LayerStoreUnusable("the stored config of %s does not hash to its ID" % image_id)
        return data

    def _read(self, chain_id, name):
        with open(os.path.join(self.layerdb, chain_id.split(":", 1)[1], name), "rb") as fh:
            return fh.read()

    def diff_dir(self, chain_id, diff_id):
        stored = self._read(chain_id, "diff").decode().strip()
        if stored != diff_id:
            raise LayerStoreUnusable("layer %s: the store says diff ID %s, the image %s" % (chain_id, stored, diff_id))
        cache_id = self._read(chain_id, "cache-id").decode().strip()
        if not re.match(r"^[0-9a-f]{64}$", cache_id):
            raise LayerStoreUnusable("layer %s: cache-id %r" % (chain_id, cache_id))
        path = os.path.join(self.root, "overlay2", cache_id, "diff")
        if not os.path.isdir(path):
            raise LayerStoreUnusable("layer %s: %s is not a directory" % (chain_id, path))
        return path

    def content_size(self, chain_id):
        """The bytes of the layer's files as the store recorded them, or None."""
        try:
            return int(self._read(chain_id, "size").decode().strip())
        except (OSError, ValueError):
            return None

    def tar_split(self, chain_id):
        """The layer tar's entries as the engine recorded them when it stored the layer: ``(kind, value)`` with
        kind "segment" (header and padding bytes, verbatim) or "file" (a path inside the layer and its size)."""
        entries = []
        with gzip.open(os.path.join(self.layerdb, chain_id.split(":", 1)[1], "tar-split.json.gz"), "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                entry = json.loads(line)
                if entry.get("type") == 2:
                    entries.append(("segment", base64.b64decode(entry.get("payload") or "")))
                elif entry.get("type") == 1:
                    if entry.get("name_raw"):
                        name = base64.b64decode(entry["name_raw"])
                    else:
                        name = entry.get("name", "").encode("utf-8", "surrogateescape")
                    entries.append(("file", (name, int(entry.get("size") or 0))))
                else:
                    raise LayerStoreUnusable("layer %s: tar-split entry of type %r" % (chain_id, entry.get("type")))
        return entries


def _open_beneath(root_fd, relpath):
    """Open the regular file ``relpath`` (bytes) below the directory ``root_fd`` without following any symlink
    (a layer's path never leaves its diff directory)."""
    parts = [p for p in relpath.split(b"/") if p not in (b"", b".")]
    if not parts or b".." in parts:
        raise LayerStoreUnusable("path %r in a layer" % relpath)
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        raise LayerStoreUnusable("%r in a layer is not a regular file" % relpath)
    return leaf


def _replay(entries, diff_dir):
    """The layer tar's bytes, in chunks: recorded headers verbatim, file data from the diff directory."""
    root_fd = os.open(diff_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for kind, value in entries:
            if kind == "segment":
                if value:
                    yield value
                continue
            name, size = value
            if size == 0:
                continue
            fd = _open_beneath(root_fd, name)
            try:
                left = size
                while left:
                    chunk = os.read(fd, min(_CHUNK, left))
                    if not chunk:
                        raise LayerStoreUnusable("%r in %s is shorter than recorded" % (name, diff_dir))
                    left -= len(chunk)
                    yield chunk
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)


def _tar_size(entries):
    return sum(len(v) if k == "segment" else v[1] for k, v in entries)


def _write_from_layerdb(store, info, image, plan, fh):
    """Method ``layerdb``: config from imagedb, each missing layer's tar replayed from its tar-split and diff dir
    (its sha256 must be its diff ID). Returns per-layer sizes."""
    image_id = info["Id"]
    config = store.config(image_id)
    writer = _ArchiveWriter(fh)
    names = ["%s/layer.tar" % layer["chain_id"].split(":", 1)[1] for layer in plan]
    writer.add_bytes("manifest.json", _manifest(image, "%s.json" % image_id.split(":", 1)[1], names))
    writer.add_bytes("%s.json" % image_id.split(":", 1)[1], config)
    for layer, name in zip(plan, names):
        if not layer["send"]:
            continue
        diff_dir = store.diff_dir(layer["chain_id"], layer["diff_id"])
        entries = store.tar_split(layer["chain_id"])
        layer["size"] = _tar_size(entries)
        digest = writer.add_stream(name, layer["size"], _replay(entries, diff_dir))
        if "sha256:" + digest != layer["diff_id"]:
            raise LayerStoreUnusable("layer %s rebuilt from the store hashes to sha256:%s, not its diff ID %s"
                                     % (layer["chain_id"], digest, layer["diff_id"]))
    writer.close()
    for layer in plan:  # the layers left out: their files' bytes as the store records them (their tars are a few
        if not layer["send"]:  # per cent larger; reading their tar-split for that would cost ~0.1 s per 180 MB)
            layer["size"] = store.content_size(layer["chain_id"])


class _ChunkReader(object):
    """A file object over an iterator of byte chunks (the API's `docker save` stream), for tarfile's "r|"."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buf = b""

    def read(self, size=-1):
        while size < 0 or len(self.buf) < size:
            try:
                chunk = next(self.chunks)
            except StopIteration:
                break
            self.buf += chunk
        if size < 0:
            data, self.buf = self.buf, b""
        else:
            data, self.buf = self.buf[:size], self.buf[size:]
        return data


def _member_chunks(reader, size):
    left = size
    while left:
        chunk = reader.read(min(_CHUNK, left))
        if not chunk:
            raise MigrationError("docker save ended inside a layer on host %s" % hostname())
        left -= len(chunk)
        yield chunk


# a layer's file in a `docker save` archive: Docker's <id>/layer.tar, or Podman's <diff ID hex>.tar at the top (with
# <id>/layer.tar as a link to it)
_PODMAN_LAYER_RE = re.compile(r"^[0-9a-f]{64}\.tar$")


def _is_layer_file(name):
    return name.endswith("/layer.tar") or bool(_PODMAN_LAYER_RE.match(name))


def _write_from_save(client, image, info, plan, fh):
    """Method ``save``: `docker save` (or Podman's) streamed through the API; a layer file whose diff ID only the
    present layers have is dropped after it was hashed (the file is cut back to before its header). Podman's links
    to a dropped layer stay: a Docker target opens only the layers it lacks, through the manifest."""
    diff_ids = [layer["diff_id"] for layer in plan]
    needed = set(layer["diff_id"] for layer in plan if layer["send"])
    droppable = set(diff_ids) - needed
    writer = _ArchiveWriter(fh)
    manifest = None
    member_digest = {}  # name in the archive -> (sha256:..., size, kept)
    with tarfile.open(fileobj=_ChunkReader(client.api.get_image(image)), mode="r|") as tar:
        for member in tar:
            if member.name == "manifest.json":
                manifest = json.loads(tar.extractfile(member).read())
                continue
            if member.isdir():
                continue
            if member.issym() or member.islnk():
                # docker save links a layer seen twice to its first copy; kept as a link
                target = member.linkname
                info_ = tarfile.TarInfo(member.name)
                info_.type, info_.linkname, info_.mode, info_.mtime = member.type, target, 0o777, 0
                fh.write(info_.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
                member_digest[member.name] = ("link", os.path.normpath(
                    os.path.join(os.path.dirname(member.name), target)) if member.issym() else target, True)
                continue
            if not member.isfile():
                continue
            src = tar.extractfile(member)
            start = fh.tell()
            digest = "sha256:" + writer.add_stream(member.name, member.size, _member_chunks(src, member.size))
            kept = True
            if _is_layer_file(member.name) and digest in droppable:
                fh.seek(start)
                fh.truncate()
                kept = False
            member_digest[member.name] = (digest, member.size, kept)
    if not manifest or len(manifest) != 1 or len(manifest[0].get("Layers") or []) != len(plan):
        raise MigrationError("docker save of %s on host %s gave an unexpected manifest: %s" % (image, hostname(),
                                                                                               manifest))
    for layer, name in zip(plan, manifest[0]["Layers"]):
        entry = member_digest.get(name)
        while entry and entry[0] == "link":
            entry = member_digest.get(entry[1])
        if entry is None or entry[0] != layer["diff_id"]:
            raise MigrationError("docker save of %s on host %s: layer %s is not the image's layer %s"
                                 % (image, hostname(), name, layer["diff_id"]))
        if layer["send"] and not entry[2]:
            raise MigrationError("docker save of %s on host %s: layer %s was dropped but is needed"
                                 % (image, hostname(), name))
        layer["size"] = entry[1]
        if not layer["send"] and entry[2]:  # kept because a needed position shares its diff ID
            layer["send"] = True
    writer.add_bytes("manifest.json", json.dumps(manifest).encode())
    writer.close()


def write_image_archive(client, image, dest, skip_chain_ids=None, method="auto"):
    """Write ``image`` into the `docker load` archive ``dest`` with the tars of the layers whose chain ID is not in
    ``skip_chain_ids`` (None or empty: every layer). ``method``: "auto" (layerdb, else save), "layerdb", "save".
    Returns the figures of the archive (see the module image_save's RETURN)."""
    t0 = time.monotonic()
    skip = check_chain_ids(skip_chain_ids)
    if method not in ("auto", "layerdb", "save"):
        raise MigrationError("method must be auto, layerdb or save, not %r" % (method,))
    info = find_image(client, image)
    if info is None:
        raise MigrationError("Image %s does not exist on host %s." % (image, hostname()))
    plan = plan_layers((info.get("RootFS") or {}).get("Layers") or [], skip)
    if not plan:
        raise MigrationError("Image %s on host %s has no layers to save." % (image, hostname()))
    tmp = "%s.part" % dest
    reason = None
    used = None
    for candidate in (["layerdb", "save"] if method == "auto" else [method]):
        for layer in plan:
            layer.pop("size", None)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as fh:
                if candidate == "layerdb":
                    _write_from_layerdb(_LayerStore(client), info, image, plan, fh)
                elif all(layer["send"] for layer in plan):  # nothing to drop: docker save's stream as it is
                    for chunk in client.api.get_image(image):
                        fh.write(chunk)
                else:
                    _write_from_save(client, image, info, plan, fh)
            used = candidate
            break
        except (LayerStoreUnusable, OSError, ValueError) as exc:
            os.unlink(tmp)
            if candidate == "layerdb" and method == "auto":
                reason = "%s: %s" % (type(exc).__name__, exc)
                continue
            raise MigrationError("Writing the archive of %s with method %s failed on host %s: %s"
                                 % (image, candidate, hostname(), exc)) from exc
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    os.replace(tmp, dest)
    sent = [layer for layer in plan if layer["send"]]
    skipped = [layer for layer in plan if not layer["send"]]
    size = os.path.getsize(dest)
    return dict(path=dest, size=size, bytes_written=size,
                bytes_skipped=sum(layer.get("size") or 0 for layer in skipped),
                layers_sent=len(sent), layers_skipped=len(skipped), layers=plan, method=used,
                fallback_reason=reason, image_id=info["Id"], duration=round(time.monotonic() - t0, 6))


def read_archive_plan(path):
    """The image(s) an archive holds: a list of dicts config_id, repo_tags, config (parsed), layers (chain_id,
    diff_id, present_in_archive), read from manifest.json and the configs without extracting anything."""
    with tarfile.open(path, "r:") as tar:
        members = dict((m.name, m) for m in tar.getmembers())

        def resolve(name, depth=0):
            m = members.get(name)
            if m is not None and m.issym() and depth < 8:
                return resolve(os.path.normpath(os.path.join(os.path.dirname(name), m.linkname)), depth + 1)
            return m if m is not None and m.isfile() else None

        def read(name):
            m = resolve(name)
            if m is None:
                raise MigrationError("The image archive %s on host %s has no %s: it is not an archive made by "
                                     "docker save or mec.migration.image_save." % (path, hostname(), name))
            return tar.extractfile(m).read()

        manifest = json.loads(read("manifest.json"))
        images = []
        for entry in manifest:
            raw = read(entry["Config"])
            config = json.loads(raw)
            diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
            layer_names = entry.get("Layers") or []
            if len(diff_ids) != len(layer_names):
                raise MigrationError("The image archive %s on host %s lists %d layers for %d diff IDs."
                                     % (path, hostname(), len(layer_names), len(diff_ids)))
            layers = [dict(chain_id=c, diff_id=d, in_archive=resolve(n) is not None)
                      for d, c, n in zip(diff_ids, chain_ids(diff_ids), layer_names)]
            images.append(dict(config_id="sha256:" + hashlib.sha256(raw).hexdigest(),
                               repo_tags=entry.get("RepoTags") or [], config=config, layers=layers))
    return images


def load_image_archive(client, path, image=None):
    """Load an archive of ``write_image_archive`` (or docker save): first check that this engine holds every
    layer the archive leaves out (else MigrationError with missing_chain_ids, nothing loaded), then load and
    check the loaded image (its ID and every diff ID). Returns the figures of the load."""
    t0 = time.monotonic()
    plans = read_archive_plan(path)
    left_out = [layer["chain_id"] for plan in plans for layer in plan["layers"] if not layer["in_archive"]]
    if left_out:
        present = set(present_chain_ids(client))
        missing = [c for c in left_out if c not in present]
        if missing:
            raise MigrationError(
                "The image archive %s leaves out %d layer(s) that the engine on host %s does not hold (chain IDs "
                "%s): it was written for a target that had them. Nothing was loaded. Write a full archive "
                "(mec.migration.image_save with skip_chain_ids: [] and force: true) and load that."
                % (path, len(missing), hostname(), ", ".join(missing)), missing_chain_ids=missing)
    try:
        loaded = load_image(client, path)
    except MigrationError as exc:
        if left_out and "layer.tar" in exc.msg:
            raise MigrationError("%s (the archive leaves out layers %s; one of them left this engine during the "
                                 "load: write a full archive and load that)" % (exc.msg, ", ".join(left_out)),
                                 missing_chain_ids=left_out) from exc
        raise
    for plan in plans:
        got = find_image(client, plan["config_id"])
        want = [layer["diff_id"] for layer in plan["layers"]]
        if got is None or ((got.get("RootFS") or {}).get("Layers") or []) != want:
            raise MigrationError("docker load of %s on host %s did not give image %s with the archive's layers %s."
                                 % (path, hostname(), plan["config_id"], want))
    if image:
        got = find_image(client, image)
        ids = [plan["config_id"] for plan in plans]
        if got is None or got["Id"] not in ids:
            raise MigrationError("After loading %s on host %s, %s is %s, not the archive's image %s."
                                 % (path, hostname(), image, got and got["Id"], ", ".join(ids)))
    return dict(images=loaded["images"], image_id=plans[0]["config_id"] if plans else None,
                size=os.path.getsize(path),
                layers_loaded=sum(1 for p in plans for layer in p["layers"] if layer["in_archive"]),
                layers_present=len(left_out), duration=round(time.monotonic() - t0, 6))
