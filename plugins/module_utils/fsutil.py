# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""File-system helpers of the migration: sizes, free space, streaming to a file, emptying a directory,
root-only private directories."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat

try:
    import pwd
except ImportError:  # pragma: no cover - not on POSIX
    pwd = None


class PrivateDirError(Exception):
    """A directory that must be private (real directory, ours, mode without group/other bits) is not."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


def _owner_name(uid):
    if pwd is not None:
        try:
            return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
        except KeyError:
            pass
    return "uid %d" % uid


def _kind(st):
    mode = st.st_mode
    for test, name in ((stat.S_ISLNK, "a symlink"), (stat.S_ISDIR, "a directory"), (stat.S_ISREG, "a regular file"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def _describe(st):
    return "%s owned by %s with mode %04o" % (_kind(st), _owner_name(st.st_uid), stat.S_IMODE(st.st_mode))


def _check_ancestor(path, me):
    """An existing ancestor must be owned by root or us, and not writable by others unless sticky (like /tmp):
    otherwise its owner (or anyone) could rename our private directory away and put theirs in its place."""
    st = os.lstat(path)
    if st.st_uid not in (0, me):
        raise PrivateDirError(path, (
            "%s is %s: someone else owns a parent of the private folder and could replace what is below it; "
            "use a folder whose parents belong to root (the default /var/lib/mec-migration or /run/mec-migration), "
            "or fix its owner (chown root %s)") % (path, _describe(st), path))
    if stat.S_ISDIR(st.st_mode) and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
        raise PrivateDirError(path, (
            "%s is %s: a parent of the private folder that others may write to (and it has no sticky bit), so they "
            "could replace what is below it; use a folder whose parents are not writable by others, or fix its mode "
            "(chmod go-w %s)") % (path, _describe(st), path))


def private_dir(path, create=True):
    """Make sure ``path`` is a private directory and return its absolute path.

    With ``create``, missing directories (the final one and its parents) are made with mode 0700. Then, with
    ``lstat`` (never following a link), the final directory must be a real directory (no symlink), owned by the
    current user, with no group/other permission bits; its existing parents must be owned by root or the current
    user and not writable by others (unless sticky, like /tmp), both as written and once links are resolved.
    Anything else raises ``PrivateDirError`` naming the path, what was found and what to do. A folder someone else
    made, or that group/other may write to, is reported, never chmod-ed or chown-ed into shape; only a folder of
    ours that nobody else could write into (e.g. 0755, as earlier versions made them) is tightened to 0700.
    """
    if not path:
        raise PrivateDirError(path, "a private folder was asked for with an empty path")
    path = os.path.abspath(path)
    me = os.geteuid()
    if create:
        missing = []
        probe = path
        while not os.path.lexists(probe):
            missing.append(probe)
            parent = os.path.dirname(probe)
            if parent == probe:
                break
            probe = parent
        for new in reversed(missing):
            try:
                os.mkdir(new, 0o700)
            except FileExistsError:
                continue  # made meanwhile by someone: the checks below judge it
            except OSError as exc:
                raise PrivateDirError(new, "cannot create the private folder %s: %s" % (new, exc.strerror)) from exc
            os.chmod(new, 0o700)  # the umask may have taken bits away, never added; set exactly 0700
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise PrivateDirError(path, "the private folder %s does not exist; create it (mode 0700, owned by %s)"
                              % (path, _owner_name(me))) from None
    if not stat.S_ISDIR(st.st_mode):
        raise PrivateDirError(path, (
            "%s must be a private directory but is %s; someone may have planted it: remove it (check what it is "
            "first) and run again") % (path, _describe(st)))
    if st.st_uid != me:
        raise PrivateDirError(path, (
            "%s must be a private directory owned by %s but is %s; someone else may have created it before the "
            "first run: remove it (check its content first) or fix its owner (chown %d %s; chmod 0700 %s), and run "
            "again") % (path, _owner_name(me), _describe(st), me, path, path))
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PrivateDirError(path, (
            "%s must be private (no group/other permissions) but is %s, writable by others; fix its mode (chmod 0700 "
            "%s) after checking nobody else put anything in it, and run again") % (path, _describe(st), path))
    if st.st_mode & 0o077:
        # ours, and nobody else could ever write into it (an earlier version made it 0755): tightened, through a
        # descriptor of the very directory checked above
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        try:
            fst = os.fstat(fd)
            if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
                raise PrivateDirError(path, "%s was replaced while it was checked; run again" % path)
            os.fchmod(fd, stat.S_IMODE(fst.st_mode) & 0o7700)
        finally:
            os.close(fd)
    parent = os.path.dirname(path)
    seen = set()
    for ancestor_of in (parent, os.path.realpath(parent)):
        probe = ancestor_of
        while True:
            if probe not in seen:
                seen.add(probe)
                _check_ancestor(probe, me)
            up = os.path.dirname(probe)
            if up == probe:
                break
            probe = up
    return path


def dir_size(path):
    """Bytes of the regular files below ``path`` (0 if it does not exist)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total


def free_bytes(path):
    """Free bytes on the file system of ``path`` (or its closest existing parent)."""
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return st.f_bavail * st.f_frsize


def stream_to_file(chunks, path):
    size = 0
    with open(path, "wb") as fh:
        for chunk in chunks:
            fh.write(chunk)
            size += len(chunk)
    return size


def clear_dir(path):
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.unlink(full)


def sha256_of(path):
    """SHA-256 of a file's content, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
