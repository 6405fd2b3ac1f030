# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""A migration's journal and lock on one MEC host.

``<root>/runs/<run_id>.json`` says how far a run got and what it may have changed on this host (written
ahead of the change, atomically: a temporary file, fsync, rename, fsync of the directory), so that a run whose
controller died can be finished or undone (playbooks/recover.yml). ``<root>/locks/<app>.lock`` holds the run
that migrates the app; it names no process, because the controller may be another machine. The lock is
made with O_EXCL, so two runs cannot both hold it.
"""

from __future__ import annotations

import json
import os
import re
import time

SCHEMA = "mec.migration/journal/v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FINAL_PHASES = ("done", "rolled_back", "failed")


class JournalError(Exception):
    """A refused journal operation, with a message for the user."""


def check_name(kind, value):
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise JournalError("Bad %s %r: use 1-128 letters, digits, '_', '.' or '-', starting with a letter or a "
                           "digit." % (kind, value))
    return value


def runs_dir(root):
    return os.path.join(root, "runs")


def locks_dir(root):
    return os.path.join(root, "locks")


def journal_path(root, run_id):
    return os.path.join(runs_dir(root), check_name("run_id", run_id) + ".json")


def lock_path(root, app):
    return os.path.join(locks_dir(root), check_name("app", app) + ".lock")


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path, data):
    """Write ``data`` to ``path`` so that a reader sees the old or the new content, never a part."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(directory)


def read_json(path):
    """The JSON in ``path`` or None; an unreadable file is reported, not hidden."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise JournalError("%s is not valid JSON (%s): look at it, then remove it by hand." % (path, exc)) from exc


def read_lock(root, app):
    return read_json(lock_path(root, app))


def read_journal(root, run_id):
    return read_json(journal_path(root, run_id))


def app_journals(root, app):
    """The journals of ``app`` on this host, oldest first."""
    out = []
    directory = runs_dir(root)
    if not os.path.isdir(directory):
        return out
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        data = read_json(os.path.join(directory, name))
        if isinstance(data, dict) and data.get("app") == app:
            out.append(data)
    return sorted(out, key=lambda j: (j.get("started_at") or 0, j.get("run_id") or ""))


def unfinished(journals):
    return [j for j in journals if j.get("phase") not in FINAL_PHASES]


def lock_message(lock, app, host, root="/var/lib/mec-migration"):
    return ("%s is being migrated by run %s (started %s from controller %s; its journal on %s is "
            "%s). If that run is no longer running (its controller died or was "
            "stopped), finish or undo it with: ansible-playbook -i <inventory> playbooks/recover.yml -e app=%s "
            "(or run migrate.yml again with -e migration_recover=true)." % (
                app, lock.get("run_id"), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(lock.get("started_at") or 0)),
                lock.get("controller") or "?", host, journal_path(root, lock.get("run_id") or "unknown"), app))


def begin(root, run_id, app, data, artifacts, host, now=None, changes=None):
    """Take the app's lock for ``run_id`` and write its first journal entry.

    Refused when another run holds the lock, when ``run_id`` has a journal already (a reused id) or when one
    of ``artifacts`` (paths the run would make) exists. Returns ``(changed, journal, lock)``.
    """
    now = time.time() if now is None else now
    jpath, lpath = journal_path(root, run_id), lock_path(root, app)
    lock = read_json(lpath)
    journal = read_json(jpath)
    if lock is not None and lock.get("run_id") == run_id and journal is not None:
        return False, journal, lock  # taken by this very run already
    if lock is not None:
        raise JournalError(lock_message(lock, app, host, root))
    if journal is not None:
        raise JournalError("The run id %s was used before on host %s (journal %s, phase %s): give another run_id, "
                           "or leave run_id unset for a fresh one." % (run_id, host, jpath, journal.get("phase")))
    for path in artifacts or []:
        if os.path.lexists(path):
            raise JournalError("The run id %s was used before on host %s: %s exists. Give another run_id (or "
                               "remove %s)." % (run_id, host, path, path))
    lock = dict(run_id=run_id, app=app, started_at=now, host=host, controller=(data or {}).get("controller"))
    os.makedirs(locks_dir(root), mode=0o700, exist_ok=True)
    try:
        fd = os.open(lpath, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        other = read_json(lpath) or {}
        raise JournalError(lock_message(other, app, host, root)) from None
    with os.fdopen(fd, "w") as fh:
        json.dump(lock, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    _fsync_dir(locks_dir(root))
    journal = dict(schema=SCHEMA, run_id=run_id, app=app, host=host, started_at=now, updated_at=now,
                   phase="preflight", steps=[dict(phase="preflight", at=now)], changes=dict(changes or {}),
                   outcome=None)
    journal.update(data or {})
    try:
        write_json_atomic(jpath, journal)
    except BaseException:
        os.unlink(lpath)
        raise
    return True, journal, lock


def _merge(journal, phase, step, changes, data, now):
    if phase:
        journal["phase"] = phase
    if phase or step:
        journal.setdefault("steps", []).append(dict((k, v) for k, v in (("phase", journal["phase"]), ("step", step),
                                                                        ("at", now)) if v is not None))
    for key, value in (changes or {}).items():
        journal.setdefault("changes", {})[key] = value
    journal.update(data or {})
    journal["updated_at"] = now
    return journal


def update(root, run_id, phase=None, step=None, changes=None, data=None, now=None):
    """Record a phase (or a step of it), what may change, and data. Returns the journal."""
    now = time.time() if now is None else now
    path = journal_path(root, run_id)
    journal = read_json(path)
    if journal is None:
        raise JournalError("Run %s has no journal here (%s): it did not begin on this host." % (run_id, path))
    if journal.get("phase") in FINAL_PHASES and phase not in FINAL_PHASES:
        raise JournalError("Run %s is over (phase %s): its journal takes no more steps." % (run_id, journal["phase"]))
    write_json_atomic(path, _merge(journal, phase, step, changes, data, now))
    return journal


def release(root, app, run_id):
    """Remove the app's lock if ``run_id`` holds it. Returns whether it was removed."""
    path = lock_path(root, app)
    lock = read_json(path)
    if lock is None or lock.get("run_id") != run_id:
        return False
    os.unlink(path)
    _fsync_dir(os.path.dirname(path))
    return True


def finish(root, run_id, app, outcome, data=None, now=None):
    """Close the run (``outcome`` done, rolled_back or failed) and release its lock.

    Returns ``(changed, journal, released)``; a run without a journal here only has its lock released.
    """
    if outcome not in FINAL_PHASES:
        raise JournalError("outcome must be one of %s, not %r." % (", ".join(FINAL_PHASES), outcome))
    now = time.time() if now is None else now
    path = journal_path(root, run_id)
    journal = read_json(path)
    changed = False
    if journal is not None and (journal.get("phase") != outcome or data):
        journal = _merge(journal, outcome, None, None, data, now)
        journal["outcome"] = outcome
        journal["finished_at"] = now
        write_json_atomic(path, journal)
        changed = True
    released = release(root, app, run_id)
    return changed or released, journal, released
