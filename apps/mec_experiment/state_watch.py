"""The app's state at the source's stop: a file of its volume, read on the source host (host side, the
container may be stopped) every 50 ms while the migration runs.

The migration removes the source's volume once the target runs (migration_cleanup), so the value at the
stop cannot be read afterwards; its last reading before the volume went is it (nothing writes to the volume
after the app stopped)."""

from __future__ import annotations

import shlex
import subprocess
import threading
import time

from .lab import cli, ssh, ssh_argv

PERIOD = 0.05


class VolumeFileWatch:
    """Read ``path`` (relative to the volume mounted at ``mount`` in ``container``) on ``host`` every 50 ms
    until ``stop()``; ``readings`` are its non-empty contents, in order (a file being replaced is left out)."""

    def __init__(self, host, container, mount, path, limit=1800):
        found = ssh(host, "%s inspect -f '{{range .Mounts}}{{if eq .Destination \"%s\"}}{{.Source}}{{end}}"
                          "{{end}}' %s" % (cli(host), mount, shlex.quote(container)))
        self.source = found.stdout.strip()
        if found.returncode != 0 or not self.source.startswith("/"):
            raise RuntimeError("no volume at %s in %s on %s: %s" % (mount, container, host["address"],
                                                                    (found.stderr or found.stdout).strip()))
        file = shlex.quote(self.source.rstrip("/") + "/" + path)
        script = ("i=0; while [ $i -lt %d ]; do c=$(cat %s 2>/dev/null | tr -d '\\n'); echo \"=$c\"; sleep %s;"
                  " i=$((i+1)); done" % (int(limit / PERIOD), file, PERIOD))
        self._proc = subprocess.Popen(ssh_argv(host, script), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
        self.readings = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.readings and time.monotonic() < deadline:
            time.sleep(0.05)

    def _read(self):
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            if line.startswith("=") and len(line) > 1:
                self.readings.append(line[1:])

    def stop(self):
        _end(self._proc, self._thread)
        return self.readings

    def last(self):
        return self.readings[-1] if self.readings else None


class LogFollow:
    """``docker logs -f`` (or ``podman logs -f``) of ``container`` on ``host`` from now until the container stops (or
    ``stop()``): the app's own log lines as the source wrote them up to its stop."""

    def __init__(self, host, container):
        self._proc = subprocess.Popen(ssh_argv(host, "%s logs -f --tail 5 %s 2>&1" % (cli(host),
                                                                                      shlex.quote(container))),
                                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True)
        self.lines = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        for line in self._proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self, wait=5.0):
        self._thread.join(wait)  # the stream ends with the container
        _end(self._proc, self._thread)
        return self.lines


def _end(proc, thread):
    """Stop a reader's ssh process (terminate, kill after 10 s) and let its thread finish reading."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    thread.join(5)
