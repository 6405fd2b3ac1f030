# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The app's named volumes as one tar stream: written on the source, extracted safely on the target."""

from __future__ import annotations

import os
import stat
import tarfile
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import clear_dir, dir_size, free_bytes
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


STREAM_CHUNK = 1024 * 1024


# Safe extraction, the same on every Python (Debian 12's 3.11.2 has no tarfile.data_filter, and the filter's
# checks are made at extraction time against a tree the same stream may change). The rules:
#   - member paths are relative, without "..", and never pass through a symlink (each directory is opened
#     with O_NOFOLLOW from the volume root's descriptor, so nothing planted earlier in the stream is followed;
#     a file is created with O_CREAT | O_EXCL | O_NOFOLLOW after whatever was there is unlinked);
#   - regular files, directories, symlinks and hard links only: device nodes, FIFOs and any other type are refused;
#   - a symlink's target is relative, made of leading ".." (no more than the link's depth) then names only, so it
#     resolves inside the volume whatever the other links of the volume are; absolute targets are refused;
#   - a hard link points to a regular file of the same volume extracted before it;
#   - numeric uid/gid (when run as root) and the full mode are kept, setuid/setgid/sticky included: the volume is
#     the app's data and the copy must equal the source; the stream it comes from is authenticated (or the
#     tarball was copied over checked SSH), and /var/lib/docker (0710 root) keeps host users away from it;
#   - directories get their owner, mode and time after their content;
#   - the sum of the regular members' sizes is capped (sparse members count at their full, expanded size, which
#     is what extraction writes): at ``max_bytes`` when the caller gives it, and always at the free space of each
#     volume's file system less FREE_RESERVE_BYTES, checked before a member is written, so that a small archive
#     cannot fill the host's disk.
# A refused member stops the extraction with a MigrationError naming the member.

# What an extraction leaves free on the file system of a volume, at least.
FREE_RESERVE_BYTES = 64 * 1024 * 1024

_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_O_NEWFILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _refuse(member_name, why):
    raise MigrationError("Refused member %s of the volume stream on host %s: %s. Nothing was written for it; "
                         "the volume is incomplete." % (member_name, hostname(), why))


def _path_parts(path, member_name, what="path"):
    """The components of a member path relative to its volume ("" and "." dropped); refuses "..", absolute."""
    if path.startswith("/"):
        _refuse(member_name, "absolute %s %s" % (what, path))
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        _refuse(member_name, "%s %s contains '..'" % (what, path))
    return parts


def _check_symlink_target(member_name, parts, target):
    if not target:
        _refuse(member_name, "symlink with an empty target")
    if target.startswith("/"):
        _refuse(member_name, "symlink to the absolute path %s (it would resolve outside the volume)" % target)
    ups, named = 0, False
    for comp in target.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if named:
                _refuse(member_name, "symlink target %s goes up after a name (only leading '..' are accepted, so "
                                     "that it cannot leave the volume through another link)" % target)
            ups += 1
        else:
            named = True
    if ups > len(parts) - 1:
        _refuse(member_name, "symlink to %s resolves outside the volume" % target)


class _VolumeExtractor:
    """Extracts members below one volume root through directory descriptors, never following a link."""

    def __init__(self, root):
        self.root = root
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
        self.as_root = os.geteuid() == 0
        self._cached = (None, None)  # (parts, fd) of the last parent directory
        self.dirs = []

    def close(self):
        if self._cached[1] is not None:
            os.close(self._cached[1])
        self._cached = (None, None)
        os.close(self.root_fd)

    def _open_dir(self, parts, member_name, create=True):
        """A new descriptor (the caller closes it) of the directory ``parts`` below the root, each component
        opened with O_NOFOLLOW from its parent's descriptor."""
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _O_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        _refuse(member_name, "%s does not exist" % "/".join(parts[:i + 1]))
                    os.mkdir(comp, 0o755, dir_fd=fd)  # a parent the stream did not list
                    nfd = os.open(comp, _O_DIR, dir_fd=fd)
                except OSError:
                    st = os.stat(comp, dir_fd=fd, follow_symlinks=False)
                    where = "/".join(parts[:i + 1])
                    if stat.S_ISLNK(st.st_mode):
                        _refuse(member_name, "its path passes through the symlink %s" % where)
                    _refuse(member_name, "its path passes through %s, which is not a directory" % where)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _dir_fd(self, parts, member_name):
        """Like _open_dir, but the descriptor of the last parent is kept (members of one directory come in a
        row) and must not be closed by the caller. Directories are never replaced, so it stays valid."""
        parts = tuple(parts)
        if not parts:
            return self.root_fd
        if self._cached[0] != parts:
            fd = self._open_dir(parts, member_name)
            if self._cached[1] is not None:
                os.close(self._cached[1])
            self._cached = (parts, fd)
        return self._cached[1]

    def _attrs(self, fd_or_name, member, dir_fd=None, follow=True, mode=True):
        kw = {} if dir_fd is None else dict(dir_fd=dir_fd, follow_symlinks=follow)
        if self.as_root:
            os.chown(fd_or_name, member.uid, member.gid, **kw)
        if mode:  # after chown, which clears setuid/setgid
            os.chmod(fd_or_name, member.mode & 0o7777, **kw)
        mtime_ns = int(member.mtime * 1e9)
        os.utime(fd_or_name, ns=(mtime_ns, mtime_ns), **kw)

    def extract(self, tf, member, rest):
        name = member.name
        parts = _path_parts(rest, name)
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            kind = ("character device" if member.ischr() else "block device" if member.isblk() else
                    "FIFO" if member.isfifo() else "member of tar type %r" % member.type)
            _refuse(name, "%s (only files, directories and links are restored)" % kind)
        if member.issym():
            _check_symlink_target(name, parts, member.linkname)
        pfd = self._dir_fd(parts[:-1], name)
        leaf = parts[-1]
        try:
            existing = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if member.isdir():
            if existing is None or not stat.S_ISDIR(existing.st_mode):
                if existing is not None:
                    os.unlink(leaf, dir_fd=pfd)
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            self.dirs.append((parts, member))
            return
        if existing is not None:
            if stat.S_ISDIR(existing.st_mode):
                _refuse(name, "it would replace the directory %s" % rest)
            os.unlink(leaf, dir_fd=pfd)
        if member.isreg():
            fd = os.open(leaf, _O_NEWFILE, 0o600, dir_fd=pfd)
            try:
                src = tf.extractfile(member)
                while True:
                    chunk = src.read(STREAM_CHUNK)
                    if not chunk:
                        break
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                self._attrs(fd, member)
            finally:
                os.close(fd)
        elif member.issym():
            os.symlink(member.linkname, leaf, dir_fd=pfd)
            self._attrs(leaf, member, dir_fd=pfd, follow=False, mode=False)
        else:  # hard link: to a regular file of this volume, found without following links
            lparts = _path_parts(member.linkname, name, "hard link target")[1:]  # [0] is this volume
            if not lparts:
                _refuse(name, "hard link to the volume's root")
            tfd = self._open_dir(lparts[:-1], name, create=False)
            try:
                try:
                    target = os.stat(lparts[-1], dir_fd=tfd, follow_symlinks=False)
                except FileNotFoundError:
                    target = None
                if target is None or not stat.S_ISREG(target.st_mode):
                    _refuse(name, "hard link to %s, which is not a regular file extracted before it" % member.linkname)
                os.link(lparts[-1], leaf, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(tfd)

    def finish(self):
        """Owner, mode and time of the directories, deepest first (their content is in place)."""
        for parts, member in sorted(self.dirs, key=lambda d: len(d[0]), reverse=True):
            fd = self._open_dir(parts, member.name, create=False)
            try:
                self._attrs(fd, member)
            finally:
                os.close(fd)


def write_volumes_tar(fileobj, volumes, stream=False):
    """Write ``{key: mountpoint}`` as one tar (members ``<key>/...``) into ``fileobj``."""
    with tarfile.open(fileobj=fileobj, mode="w|" if stream else "w", bufsize=STREAM_CHUNK if stream else 10240,
                      format=tarfile.PAX_FORMAT) as tf:
        for vol, mp in sorted(volumes.items()):
            tf.add(mp, arcname=vol, recursive=True)


class _SizeCap:
    """Counts what an extraction writes, per file system, against the free space and an optional overall cap."""

    def __init__(self, volumes, max_bytes=None):
        self.max_bytes = max_bytes
        self.total = 0
        self.dev_of = {}
        self.room = {}  # st_dev -> bytes the file system may still take
        for vol, mp in volumes.items():
            dev = os.stat(mp).st_dev
            self.dev_of[vol] = dev
            if dev not in self.room:
                self.room[dev] = max(free_bytes(mp) - FREE_RESERVE_BYTES, 0)
        self.used = dict((dev, 0) for dev in self.room)

    def take(self, vol, member):
        size = member.size
        if size < 0:
            _refuse(member.name, "negative size %d" % size)
        sparse = " (a sparse member, counted at its full size)" if member.issparse() else ""
        if self.max_bytes is not None and self.total + size > self.max_bytes:
            _refuse(member.name, "its %d bytes%s would bring the volumes to %d bytes, over the cap of %d bytes for "
                                 "this extraction" % (size, sparse, self.total + size, self.max_bytes))
        dev = self.dev_of[vol]
        if self.used[dev] + size > self.room[dev]:
            _refuse(member.name, "its %d bytes%s would bring the volumes to %d bytes, more than the file system of "
                                 "volume %s can take while keeping %d MiB free (%d bytes); free space on the host "
                                 "or look at where the archive came from" % (
                                     size, sparse, self.used[dev] + size, vol, FREE_RESERVE_BYTES >> 20,
                                     self.room[dev]))
        self.total += size
        self.used[dev] += size


def extract_volumes_tar(fileobj, volumes, stream=False, max_bytes=None):
    """Extract a tar made by ``write_volumes_tar`` into the mountpoints of ``{key: mountpoint}``.

    The regular members' sizes (sparse ones at their full size) may sum to ``max_bytes`` at most (None: no cap
    of its own) and never to more than each volume's file system can take while keeping FREE_RESERVE_BYTES free;
    a member over the cap is refused before anything of it is written."""
    for mp in volumes.values():
        clear_dir(mp)
    cap = _SizeCap(volumes, max_bytes)
    count = 0
    extractors = {}
    try:
        with tarfile.open(fileobj=fileobj, mode="r|" if stream else "r",
                          bufsize=STREAM_CHUNK if stream else 10240) as tf:
            for member in tf:
                if member.name.startswith("/"):
                    _refuse(member.name, "absolute path")
                vol, _sep, rest = member.name.partition("/")
                if vol not in volumes:
                    raise MigrationError("The volume stream holds %s, which is not a volume mount of the container "
                                         "(expected one of %s)." % (vol, ", ".join(sorted(volumes)) or "none"))
                if member.islnk() and member.linkname.partition("/")[0] != vol:
                    _refuse(member.name, "hard link to %s, outside its volume %s" % (member.linkname, vol))
                if not _path_parts(rest, member.name):
                    continue  # the volume's root directory itself
                if member.isreg():
                    cap.take(vol, member)
                if vol not in extractors:
                    extractors[vol] = _VolumeExtractor(volumes[vol])
                extractors[vol].extract(tf, member, rest)
                count += 1
        for extractor in extractors.values():
            extractor.finish()
    finally:
        for extractor in extractors.values():
            extractor.close()
    return count


def archive_volume(client, volume, dest):
    """Tar of the volume's Mountpoint into ``dest``."""
    mp = client.api.inspect_volume(volume)["Mountpoint"]
    t0 = time.monotonic()
    with open(dest, "wb") as fh:
        write_volumes_tar(fh, {"volume": mp})
    return dict(path=dest, size=os.path.getsize(dest), volume_size=dir_size(mp),
                duration=round(time.monotonic() - t0, 6))


def restore_volume(client, volume, src, create=True, max_bytes=None):
    """Create ``volume`` (if missing) and fill its Mountpoint from the tar ``src`` (``max_bytes``: see
    extract_volumes_tar)."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    created = False
    try:
        info = client.api.inspect_volume(volume)
    except NotFound:
        if not create:
            raise MigrationError("Volume %s does not exist on host %s." % (volume, hostname())) from None
        info = client.api.create_volume(name=volume)
        created = True
    t0 = time.monotonic()
    with open(src, "rb") as fh:
        members = extract_volumes_tar(fh, {"volume": info["Mountpoint"]}, max_bytes=max_bytes)
    return dict(created=created, members=members, volume_size=dir_size(info["Mountpoint"]),
                duration=round(time.monotonic() - t0, 6))
