# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Host-to-host transport of a migration: SSH options, scp/rsync copies, remote commands, the relocation
stream's connection."""

from __future__ import annotations

import os
import re
import socket
import time

from ansible_collections.mec.migration.plugins.module_utils.docker_client import LANG_C, hostname
from ansible_collections.mec.migration.plugins.module_utils.fsutil import dir_size
from ansible_collections.mec.migration.plugins.module_utils.module_glue import MigrationError


DEFAULT_SSH_OPTIONS = [
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "LogLevel=ERROR",
    "-o", "ConnectTimeout=10",
    # One master connection per run: pre-relocation opens it, relocation reuses it.
    "-o", "ControlMaster=auto",
    "-o", "ControlPath=/var/tmp/mec-migration/ssh-%r@%h:%p",
    "-o", "ControlPersist=300",
]


def ssh_base(module, ssh_options=None):
    opts = list(DEFAULT_SSH_OPTIONS if ssh_options is None else ssh_options)
    if any(o.startswith("ControlPath=") for o in opts):
        os.makedirs("/var/tmp/mec-migration", mode=0o700, exist_ok=True)
    return opts


def run_checked(module, argv, what):
    binary = module.get_bin_path(argv[0], required=True)
    rc, out, err = module.run_command([binary] + list(argv[1:]), environ_update=LANG_C)
    if rc != 0:
        raise MigrationError("%s failed on host %s (rc=%s): %s" % (what, hostname(), rc, (err or out).strip()),
                             rc=rc, stdout=out, stderr=err)
    return out


RSYNC_STATS = {
    "files_transferred": r"Number of regular files transferred: ([\d,]+)",
    "total_file_size": r"Total file size: ([\d,]+) bytes",
    "transferred_file_size": r"Total transferred file size: ([\d,]+) bytes",
    "literal_data": r"Literal data: ([\d,]+) bytes",
    "matched_data": r"Matched data: ([\d,]+) bytes",
    "bytes_sent": r"Total bytes sent: ([\d,]+)",
    "bytes_received": r"Total bytes received: ([\d,]+)",
}


def parse_rsync_stats(text):
    """The figures of ``rsync --stats`` as integers."""
    stats = {}
    for key, pattern in RSYNC_STATS.items():
        m = re.search(pattern, text)
        if m:
            stats[key] = int(m.group(1).replace(",", ""))
    return stats


def transfer(module, method, src, dest_host, dest_path, user="root", ssh_options=None, delete=True):
    """Copy ``src`` to ``user@dest_host:dest_path`` with scp or rsync (over ssh), host to host."""
    opts = ssh_base(module, ssh_options)
    remote = "%s@%s:%s" % (user, dest_host, dest_path)
    t0 = time.monotonic()
    stats = {}
    if method == "scp":
        run_checked(module, ["scp", "-q", "-r"] + opts + [src, remote], "scp of %s to %s" % (src, dest_host))
        size = dir_size(src) if os.path.isdir(src) else os.path.getsize(src)
        stats = dict(bytes_sent=size)
    elif method == "rsync":
        ssh_bin = module.get_bin_path("ssh", required=True)
        rsh = " ".join([ssh_bin] + opts)
        argv = ["rsync", "-a", "--stats", "-e", rsh]
        if delete:
            argv.append("--delete")
        out = run_checked(module, argv + [src, remote], "rsync of %s to %s" % (src, dest_host))
        stats = parse_rsync_stats(out)
    else:
        raise MigrationError("Unknown transfer method %s (valid: scp, rsync)." % method)
    return dict(method=method, duration=round(time.monotonic() - t0, 6), stats=stats,
                transferred_bytes=stats.get("bytes_sent", 0))


def ssh_command(module, dest_host, argv, user="root", ssh_options=None, what=None):
    """Run ``argv`` on ``dest_host`` over ssh (list argv; each word quoted for the remote shell)."""
    import shlex
    opts = ssh_base(module, ssh_options)
    return run_checked(module, ["ssh"] + opts + ["%s@%s" % (user, dest_host), " ".join(shlex.quote(a) for a in argv)],
                what or "ssh %s %s" % (dest_host, argv[0]))


def connect_retry(host, port, deadline):
    last = None
    while time.monotonic() < deadline:
        try:
            return socket.create_connection((host, port), timeout=5)
        except OSError as exc:
            last = exc
            time.sleep(0.005)
    raise MigrationError("Could not connect to the target's receiver at %s:%s: %s" % (host, port, last))


def wait_remote_ready(module, host, path, deadline, user="root", ssh_options=None):
    """Poll (over the run's shared ssh connection) until ``path`` exists on ``host``."""
    import shlex
    ssh_bin = module.get_bin_path("ssh", required=True)
    argv = [ssh_bin] + ssh_base(module, ssh_options) + ["%s@%s" % (user, host), "test -e %s" % shlex.quote(path)]
    while True:
        rc, _out, err = module.run_command(argv, environ_update=LANG_C)
        if rc == 0:
            return
        if rc == 255 or time.monotonic() > deadline:
            raise MigrationError("The target %s did not get ready for the relocation (%s): %s" % (
                host, path, (err or "timed out").strip()))
        time.sleep(0.02)
