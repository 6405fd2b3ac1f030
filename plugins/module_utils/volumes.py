# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The app's named volumes as one tar stream: written on the source, extracted safely on the target."""

from __future__ import annotations

import os
import tarfile
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import clear_dir, dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


STREAM_CHUNK = 1024 * 1024


def _tar_extract(tf, member, dest):
    if hasattr(tarfile, "data_filter"):
        tf.extract(member, dest, set_attrs=True, numeric_owner=True, filter="tar")
    else:  # Python < 3.11.4 (Debian 12 has 3.11.2)
        tf.extract(member, dest, set_attrs=True, numeric_owner=True)


def write_volumes_tar(fileobj, volumes, stream=False):
    """Write ``{key: mountpoint}`` as one tar (members ``<key>/...``) into ``fileobj``."""
    with tarfile.open(fileobj=fileobj, mode="w|" if stream else "w", bufsize=STREAM_CHUNK if stream else 10240,
                      format=tarfile.PAX_FORMAT) as tf:
        for vol, mp in sorted(volumes.items()):
            tf.add(mp, arcname=vol, recursive=True)


def extract_volumes_tar(fileobj, volumes, stream=False):
    """Extract a tar made by ``write_volumes_tar`` into the mountpoints of ``{key: mountpoint}``."""
    for mp in volumes.values():
        clear_dir(mp)
    count = 0
    with tarfile.open(fileobj=fileobj, mode="r|" if stream else "r", bufsize=STREAM_CHUNK if stream else 10240) as tf:
        for member in tf:
            vol, _sep, rest = member.name.partition("/")
            if vol not in volumes:
                raise MigrationError("The volume stream holds %s, which is not a volume mount of the container "
                                     "(expected one of %s)." % (vol, ", ".join(sorted(volumes)) or "none"))
            if not rest:
                continue  # the volume's root directory itself
            if rest.startswith("/") or ".." in rest.split("/"):
                raise MigrationError("Unsafe path in the volume stream: %s" % member.name)
            member.name = rest
            _tar_extract(tf, member, volumes[vol])
            count += 1
    return count


def archive_volume(client, volume, dest):
    """Tar of the volume's Mountpoint into ``dest``."""
    mp = client.api.inspect_volume(volume)["Mountpoint"]
    t0 = time.monotonic()
    with open(dest, "wb") as fh:
        write_volumes_tar(fh, {"volume": mp})
    return dict(path=dest, size=os.path.getsize(dest), volume_size=dir_size(mp),
                duration=round(time.monotonic() - t0, 6))


def restore_volume(client, volume, src, create=True):
    """Create ``volume`` (if missing) and fill its Mountpoint from the tar ``src``."""
    from ansible_collections.mec.migration.plugins.module_utils.docker_client import NotFound
    created = False
    try:
        info = client.api.inspect_volume(volume)
    except NotFound:
        if not create:
            raise MigrationError("Volume %s does not exist on host %s." % (volume, hostname()))
        info = client.api.create_volume(name=volume)
        created = True
    t0 = time.monotonic()
    with open(src, "rb") as fh:
        members = extract_volumes_tar(fh, {"volume": info["Mountpoint"]})
    return dict(created=created, members=members, volume_size=dir_size(info["Mountpoint"]),
                duration=round(time.monotonic() - t0, 6))
