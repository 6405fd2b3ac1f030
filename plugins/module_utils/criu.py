# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""CRIU around the engine (m3): the runtime's CRIU configuration file (the policy for established TCP
connections), CRIU's own logs (why a dump or restore failed, and where its time went), and what the
preflight can see before a dump that CRIU would refuse.

The container runtime (runc) hands CRIU the configuration file ``/etc/criu/runc.conf`` on every dump and
restore (unless the container's ``org.criu.config`` annotation names another); its settings override the
engine's. ``docker checkpoint`` has no option for established TCP connections, so this file is where the
policy lives.
"""

from __future__ import annotations

import os
import re
import stat
import threading
import time

RUNC_CRIU_CONFIG = "/etc/criu/runc.conf"

# policy -> the CRIU options that carry it. A connection still in a listening socket's queue (in flight,
# not yet accepted: frequent under a probe or any busy client) fails a dump too unless skip-in-flight drops
# it (its client sees a reset and retries), so the policies that let clients stay connected drop those.
# CRIU locks the container's network (iptables rules run in its namespace) during a dump and a restore so
# that the TCP connections it saves or restores see no packet meanwhile; with close no connection's state
# is saved or restored, so the lock protects nothing and only costs time: a client that knocks during the
# restore has its SYN dropped (it waits a second to send it again) instead of being refused at once.
TCP_POLICIES = {
    "close": ("tcp-close", "skip-in-flight", "network-lock skip"),  # no state kept: clients reconnect
    "established": ("tcp-established", "skip-in-flight"),  # state kept: only where the restore has the same address
    "refuse": (),                                          # CRIU's default: a dump with a connection fails
}
TCP_OPTIONS = ("tcp-close", "tcp-established", "skip-in-flight", "network-lock")
CONFIG_MARK = "# Managed by mec.migration (module criu_config)"

CAP_SYS_RESOURCE = 24
BENIGN_ERRORS = ("rlimit: Can't setup RLIMIT_NOFILE for self",)

_LOG_LINE = re.compile(r"^\((?P<t>\d+\.\d+)\)\s+(?:(?P<pid>\d+):\s+)?(?P<text>.*)$")
_ERROR = re.compile(r"^\s*(Error|Warn)\s*(\([^)]*\))?\s*:?", re.I)
_LOG_PATH = re.compile(r"(/[^\s:'\"]+\.log)\b")


class PolicyError(ValueError):
    pass


def validate_tcp_policy(policy):
    """The policy, or PolicyError naming the valid values."""
    if policy not in TCP_POLICIES:
        raise PolicyError("Unknown TCP policy %r for CRIU: valid values are %s (close: established connections "
                          "are dumped without their state and restored closed, clients reconnect; established: "
                          "their state is kept, for a restore at the same address; refuse: a dump with an "
                          "established connection fails)." % (policy, ", ".join(sorted(TCP_POLICIES))))
    return policy


def render_config(policy, extra_options=None):
    """Text of the runtime's CRIU configuration file for ``policy`` (plus ``extra_options``, CRIU long options
    without their leading dashes, one per line)."""
    validate_tcp_policy(policy)
    lines = [CONFIG_MARK, "# tcp policy: %s" % policy] + list(TCP_POLICIES[policy])
    for opt in extra_options or []:
        opt = opt.strip().lstrip("-")
        if not opt or "\n" in opt:
            continue
        if opt.split()[0] in TCP_OPTIONS:
            raise PolicyError("Set the TCP option with the policy, not as an extra option: %s" % opt)
        lines.append(opt)
    return "\n".join(lines) + "\n"


def policy_of_config(text):
    """The TCP policy a configuration file's text gives CRIU (``refuse`` when it names none)."""
    options = set(ln.strip().lstrip("-").split()[0] for ln in (text or "").splitlines()
                  if ln.strip() and not ln.strip().startswith("#"))
    if "tcp-close" in options:
        return "close"
    if "tcp-established" in options:
        return "established"
    return "refuse"


def read_text(path):
    try:
        with open(path) as fh:
            return fh.read()
    except (IOError, OSError):
        return None


def write_atomic(path, text, mode=0o644):
    d = os.path.dirname(path)
    os.makedirs(d, mode=0o755, exist_ok=True)
    tmp = os.path.join(d, ".%s.tmp.%d" % (os.path.basename(path), os.getpid()))
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    os.rename(tmp, path)


# --------------------------------------------------------------------------- logs

def log_errors(text, limit=12):
    """CRIU's ``Error``/``Warn`` lines of a log (timestamps and pids dropped), the errors first; when there
    are none, the last lines. At most ``limit`` lines."""
    errors, warnings, tail = [], [], []
    for raw in (text or "").splitlines():
        m = _LOG_LINE.match(raw.strip())
        body = m.group("text") if m else raw.strip()
        if not body:
            continue
        tail.append(body)
        e = _ERROR.match(body)
        if e:
            (errors if e.group(1).lower() == "error" else warnings).append(body)
    # printed on every run of a host without CAP_SYS_RESOURCE, also by runs that succeed
    real = [e for e in errors if not any(b in e for b in BENIGN_ERRORS)]
    errors = real or errors
    picked = errors or warnings or tail[-3:]
    if errors and warnings:
        picked = errors + [w for w in warnings if "consider" in w or "--" in w]
    seen, out = set(), []
    for line in picked:
        if line not in seen:
            seen.add(line)
            out.append(line)
    return out[:limit]


# Markers of a dump's phases in CRIU's own log (criu/cr-dump.c), in order.
DUMP_MARKS = (
    ("start", re.compile(r"^Version: ")),
    ("freeze", re.compile(r"^(Freezing|freezing) ")),
    ("frozen", re.compile(r"^(Seized task|Collect mappings)")),
    ("pages", re.compile(r"^(Dumping pages|Transferring pages|dump_pages)")),
    ("pages_done", re.compile(r"^(Writing image inventory|Dumping finished|Unfreezing tasks)")),
    ("done", re.compile(r"^(Dumping finished successfully|Unfreezing tasks into|Finishing dump)")),
)
RESTORE_MARKS = (
    ("start", re.compile(r"^Version: ")),
    ("forking", re.compile(r"^Forking task|^Restoring resources|^Run late stage hook")),
    ("done", re.compile(r"^Restore finished successfully")),
)


def log_phases(text, marks=DUMP_MARKS):
    """``{phase: seconds since CRIU started}`` of the first line of each phase found in a CRIU log, plus
    ``total`` (the last timestamp)."""
    phases, last = {}, None
    for raw in (text or "").splitlines():
        m = _LOG_LINE.match(raw.strip())
        if not m:
            continue
        t = float(m.group("t"))
        last = t
        for name, rx in marks:
            if name not in phases and rx.search(m.group("text")):
                phases[name] = t
    if last is not None:
        phases["total"] = last
    return phases


# CRIU's notifications that the runtime answers by running the container's OCI hooks before CRIU goes on (runc:
# setup-namespaces runs the prestart and createRuntime hooks; Docker's prestart hook, libnetwork-setkey, sets up the
# container's network namespace there). A log line "Running <name> scripts" and its "RPC" line are followed, once
# the runtime answered, by the next step's line: the gap is the runtime's time in the hooks.
_SCRIPTS = re.compile(r"^Running (?P<name>[\w-]+) scripts$")


def restore_timing(text, ended_at=None):
    """A restore log read for the downtime's stages, or None without timestamped lines: ``total`` (seconds from
    CRIU's start to its last line), ``hooks`` ({notification: seconds} the runtime spent answering it, for those
    CRIU logged a later line after), ``own`` (total minus the hooks: CRIU's own work) and, given ``ended_at`` (the
    epoch time of the log's last line, e.g. the file's mtime), ``started_at`` (ended_at minus total)."""
    lines = []
    for raw in (text or "").splitlines():
        m = _LOG_LINE.match(raw.strip())
        if m:
            lines.append((float(m.group("t")), m.group("text").strip()))
    if not lines:
        return None
    total = lines[-1][0]
    hooks = {}
    for i, (t, body) in enumerate(lines):
        m = _SCRIPTS.match(body)
        if not m:
            continue
        after = next((t2 for t2, b2 in lines[i + 1:] if b2 != "RPC"), None)
        if after is not None:
            hooks[m.group("name")] = round(hooks.get(m.group("name"), 0.0) + after - t, 6)
    out = dict(total=round(total, 6), hooks=hooks, own=round(total - sum(hooks.values()), 6))
    if ended_at is not None:
        out.update(started_at=ended_at - total, ended_at=ended_at)
    return out


def log_paths(message):
    """Paths of ``*.log`` files that an error message names (containerd names CRIU's log)."""
    return list(dict.fromkeys(_LOG_PATH.findall(message or "")))


LOG_NAMES = ("criu-dump.log", "criu-restore.log", "dump.log", "restore.log")


def log_dirs(container_id):
    """The folders where containerd and runc have CRIU write its logs of a container's dump or restore."""
    return [
        # containerd 1.6's runc shim: CRIU works in the task's work folder (the bundle's "work" link points there)
        "/var/lib/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/%s" % container_id,
        "/var/lib/containerd/io.containerd.runtime.v2.task/moby/%s" % container_id,
        "/run/docker/containerd/daemon/io.containerd.runtime.v2.task/moby/%s" % container_id,
        "/run/containerd/io.containerd.runtime.v2.task/moby/%s" % container_id,
        "/run/containerd/io.containerd.runtime.v2.task/moby/%s/criu-work" % container_id,
        "/run/containerd/runc/moby/%s/criu.work" % container_id,
        "/run/docker/runtime-runc/moby/%s/criu.work" % container_id,
    ]


def candidate_logs(container_id, names=LOG_NAMES):
    """Where containerd and runc leave CRIU's logs of a container's last dump or restore, newest first."""
    found = []
    for d in log_dirs(container_id):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p):
                found.append(p)
    return sorted(found, key=lambda p: os.path.getmtime(p), reverse=True)


class LogKeeper(object):
    """Holds CRIU's logs of one engine call open while the call runs (a thread looks for them every
    ``interval`` seconds): when a start from a checkpoint fails, containerd removes the task's folder, and with it
    CRIU's log, before the engine answers, so that the log's path in the engine's error names nothing. A log held
    open stays readable after its removal. ``logs()``: ``[(path, text)]`` of the logs seen, the newest first."""

    def __init__(self, container_id, names=LOG_NAMES, interval=0.005, dirs=None):
        self.paths = [os.path.join(d, n) for d in (dirs or log_dirs(container_id)) for n in names]
        self.interval = interval
        self.held = {}  # (st_dev, st_ino) -> (path, fd, first seen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="criu-log-keeper", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._look()  # a log written after the thread's last look
        return False

    def _look(self):
        for p in self.paths:
            try:
                fd = os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                continue
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if key in self.held or not stat.S_ISREG(st.st_mode):
                os.close(fd)
            else:
                self.held[key] = (p, fd, time.monotonic())

    def _run(self):
        while not self._stop.is_set():
            self._look()
            self._stop.wait(self.interval)

    def logs(self):
        out = []
        for p, fd, _seen in sorted(self.held.values(), key=lambda h: h[2], reverse=True):
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            out.append((p, b"".join(chunks).decode("utf-8", "replace")))
        return out

    def close(self):
        for _p, fd, _seen in self.held.values():
            os.close(fd)
        self.held.clear()


def failure_report(message, container_id=None, since=None, kept=None):
    """``(log_path, error_lines)`` for a failed dump or restore: the log the message names, else the newest of
    the container's CRIU logs written since ``since`` (epoch seconds), else the newest of ``kept`` (``[(path,
    text)]``, a LogKeeper's: the logs the engine has removed). ``(None, [])`` when none is readable."""
    paths = log_paths(message)
    if container_id:
        paths += [p for p in candidate_logs(container_id) if p not in paths]
    for p in paths:
        try:
            if since is not None and os.path.getmtime(p) < since - 1:
                continue
        except OSError:
            continue
        text = read_text(p)
        if text:
            return p, log_errors(text)
    for p, text in kept or ():
        if text:
            return "%s (removed by the engine; kept while it ran)" % p, log_errors(text)
    return None, []


# --------------------------------------------------------------------------- what the preflight can see

def bounding_set(pid="self"):
    """The capability bounding set of a process (an int bit mask), or None."""
    text = read_text("/proc/%s/status" % pid) or ""
    m = re.search(r"^CapBnd:\s*([0-9a-fA-F]+)$", text, re.M)
    return int(m.group(1), 16) if m else None


def has_capability(mask, cap):
    return mask is not None and bool(mask & (1 << cap))


def namespace_pids(pid):
    """The pids (as this host sees them) of every process in the PID namespace of process ``pid``."""
    try:
        ns = os.readlink("/proc/%s/ns/pid" % pid)
    except OSError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink("/proc/%s/ns/pid" % entry) == ns:
                pids.append(int(entry))
        except OSError:
            continue
    return sorted(pids)


def process_ids(pid):
    """The real and effective uid of a process, or None."""
    text = read_text("/proc/%s/status" % pid) or ""
    m = re.search(r"^Uid:\s*(\d+)\s+(\d+)", text, re.M)
    return (int(m.group(1)), int(m.group(2))) if m else None


def process_name(pid):
    return (read_text("/proc/%s/comm" % pid) or "?").strip()


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
              "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN",
              "0B": "CLOSING"}


def tcp_connections(pid):
    """``[(state, local, remote)]`` of the TCP sockets in the network namespace of process ``pid``, read from
    ``/proc/<pid>/net/tcp{,6}`` (addresses in the kernel's hex form, ports decimal)."""
    out = []
    for name in ("tcp", "tcp6"):
        text = read_text("/proc/%s/net/%s" % (pid, name)) or ""
        for line in text.splitlines()[1:]:
            parts = line.split()
            if len(parts) < 4:
                continue
            local, remote, st = parts[1], parts[2], parts[3].upper()
            lport = int(local.rsplit(":", 1)[1], 16)
            rport = int(remote.rsplit(":", 1)[1], 16)
            out.append((TCP_STATES.get(st, st), "%s:%d" % (local.rsplit(":", 1)[0], lport),
                        "%s:%d" % (remote.rsplit(":", 1)[0], rport)))
    return out


def dump_obstacles(info, pids, bounding=None, tcp_policy="close"):
    """What would make CRIU refuse to dump a container, found cheaply before anything changes.

    ``info`` is the container's inspect data, ``pids`` its processes (host pids), ``bounding`` this host's
    capability bounding set. Returns a list of sentences (empty: nothing found)."""
    problems = []
    name = (info.get("Name") or "?").lstrip("/")
    cfg = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    if cfg.get("Tty"):
        problems.append("Container %s has a terminal (docker run -t): CRIU cannot checkpoint a container whose "
                        "terminal belongs to the engine; run it without -t." % name)
    mode = host.get("NetworkMode") or ""
    if mode == "host" or mode.startswith("container:"):
        problems.append("Container %s shares a network namespace (network mode %s): CRIU checkpoints only a "
                        "container with a network namespace of its own." % (name, mode))
    if (host.get("PidMode") or "") == "host" or (host.get("PidMode") or "").startswith("container:"):
        problems.append("Container %s shares a PID namespace (pid mode %s): CRIU checkpoints only a container "
                        "with a PID namespace of its own." % (name, host.get("PidMode")))
    if bounding is not None and not has_capability(bounding, CAP_SYS_RESOURCE):
        non_root = []
        for pid in pids:
            ids = process_ids(pid)
            if ids and (ids[0] != 0 or ids[1] != 0):
                non_root.append("%s (pid %s, uid %s)" % (process_name(pid), pid, ids[1]))
        if non_root:
            problems.append(
                "Container %s runs non-root processes (%s) on a host whose capability bounding set lacks "
                "CAP_SYS_RESOURCE: CRIU can dump only root processes there. Run the app as root on such hosts "
                "(for the local lab: mec_apps_user: \"0\"; for your own container: docker run --user 0), or "
                "migrate between hosts that have CAP_SYS_RESOURCE (not in a container started without it)."
                % (name, ", ".join(non_root[:5])))
    if tcp_policy == "refuse" and pids:
        est = [c for c in tcp_connections(pids[0]) if c[0] == "ESTABLISHED"]
        if est:
            problems.append("Container %s has %d established TCP connection(s) and the TCP policy is refuse: the "
                            "dump would fail. Use migration_criu_tcp=close (clients reconnect) or wait until "
                            "they close." % (name, len(est)))
    return problems
