#!/usr/bin/python3
# Copyright: mec.migration developers
# Apache License 2.0
"""Checkpoint (export) and restore (import) a throwaway counter with Podman, and prove its memory survived.

Run on the host by roles/podman_engine/tasks/check.yml (ansible.builtin.script). Builds a tiny image from the host's
own dash and sleep (no registry), runs a counter that keeps its count in memory and prints it every 0.1 s, checkpoints
it with --export and --print-stats, removes the container, restores it with --import and --print-stats, and reads
its log: the log came along with the archive, and the count goes on from the last number in one unbroken run (the
counter starts at the host's uptime in seconds times 1000, so a fresh start would begin at another number). Prints
one JSON object (the stats of both steps, the counts, the wall times) and exits 0; on any failure it prints the JSON
with "error" and exits 1.
Everything it makes (container, image, archive) is removed at the end.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

NAME = "mec-podman-engine-check"
IMAGE = "localhost/mec-podman-engine-check:latest"
# Starts at the host's uptime in whole seconds times 1000 (dash has no random source): a fresh start of the same
# command later would begin at another number, a restored counter goes on from its last one.
COUNTER = "read up rest < /proc/uptime; i=$((${up%.*} * 1000)); while :; do i=$((i+1)); echo $i; sleep 0.1; done"


class CheckError(Exception):
    pass


def podman(*args, timeout=120):
    proc = subprocess.run(["podman"] + list(args), capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, LANG="C"))
    if proc.returncode != 0:
        raise CheckError("podman %s failed (rc=%d): %s" % (" ".join(args), proc.returncode,
                                                           (proc.stderr or proc.stdout).strip()[-2000:]))
    return proc.stdout


def libraries(binaries):
    out = set()
    for binary in binaries:
        proc = subprocess.run(["ldd", binary], capture_output=True, text=True, env=dict(os.environ, LANG="C"))
        for word in proc.stdout.split():
            if word.startswith("/") and ".so" in word:
                out.add(word)
    return sorted(out)


def build_image(work):
    root = os.path.join(work, "root")
    binaries = [shutil.which("dash") or "/bin/dash", shutil.which("sleep") or "/bin/sleep"]
    os.makedirs(os.path.join(root, "bin"))
    for binary in binaries:
        shutil.copy2(binary, os.path.join(root, "bin", os.path.basename(binary)))
    for lib in libraries(binaries):
        dest = os.path.join(root, lib.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(lib, dest)
    archive = os.path.join(work, "root.tar")
    subprocess.run(["tar", "-C", root, "-cf", archive, "."], check=True)
    podman("import", archive, IMAGE)


def counts(log):
    return [int(x) for x in log.split() if x.isdigit()]


def wait_lines(minimum, timeout=20):
    """The counter's numbers once it has printed ``minimum`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        seen = counts(podman("logs", NAME))
        if len(seen) >= minimum:
            return seen
        if time.monotonic() > deadline:
            raise CheckError("the counter printed %d numbers, not %d, within %d s" % (len(seen), minimum, timeout))
        time.sleep(0.1)


def check(work):
    build_image(work)
    # --ulimit host: raise no limit (hosts without CAP_SYS_RESOURCE refuse it); --network none: nothing to restore
    podman("run", "--detach", "--name", NAME, "--ulimit", "host", "--network", "none", IMAGE, "/bin/dash", "-c",
           COUNTER)
    wait_lines(10)
    archive = os.path.join(work, "checkpoint.tar")
    started = time.monotonic()
    checkpoint_stats = json.loads(podman("container", "checkpoint", "--export", archive, "--print-stats", NAME))
    checkpoint_wall = time.monotonic() - started
    at_checkpoint = counts(podman("logs", NAME))
    state = podman("container", "inspect", "--format", "{{.State.Status}}", NAME).strip()
    if state != "exited":
        raise CheckError("after the checkpoint the container is %s, not exited" % state)
    podman("rm", NAME)
    started = time.monotonic()
    restore_stats = json.loads(podman("container", "restore", "--import", archive, "--print-stats"))
    restore_wall = time.monotonic() - started
    last = at_checkpoint[-1]
    after = wait_lines(len(at_checkpoint) + 5)
    # The log comes with the archive; the count goes on from the last number in one unbroken run.
    if after[:len(at_checkpoint)] != at_checkpoint or after != list(range(after[0], after[0] + len(after))):
        raise CheckError("the restored counter did not go on from %d: its log is %s ... %s (a fresh start would "
                         "begin at another number)" % (last, after[:2], after[-3:]))
    return {
        "podman_version": podman("--version").strip(),
        "count_at_checkpoint": last,
        "count_after_restore": after[-1],
        "archive_bytes": os.path.getsize(archive),
        "checkpoint_wall_seconds": round(checkpoint_wall, 3),
        "restore_wall_seconds": round(restore_wall, 3),
        "checkpoint": checkpoint_stats,
        "restore": restore_stats,
    }


def main():
    work = tempfile.mkdtemp(prefix="mec-podman-check-")  # mode 0700, root's
    result, rc = {}, 0
    try:
        subprocess.run(["podman", "rm", "--force", "--ignore", NAME], capture_output=True)
        result = check(work)
    except (CheckError, subprocess.SubprocessError, OSError, ValueError) as exc:
        result, rc = {"error": str(exc)}, 1
    finally:
        subprocess.run(["podman", "rm", "--force", "--ignore", NAME], capture_output=True)
        subprocess.run(["podman", "rmi", "--force", IMAGE], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return rc


if __name__ == "__main__":
    sys.exit(main())
