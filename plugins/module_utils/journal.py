# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""A migration's journal and lock on one MEC host.

``<root>/runs/<run_id>.json`` says how far a run got and what it may have changed on this host (written
ahead of the change, atomically: a temporary file, fsync, rename, fsync of the directory), so that a run whose
controller died can be finished or undone (playbooks/recover.yml). ``<root>/locks/<app>.lock`` holds the run
that migrates the app; it names no process, because the controller may be another machine. The lock is
made with O_EXCL, so two runs cannot both hold it.

Recovery acts only on what the run made (check_recoverable): the journal's paths must lie in the run's own work
folder (the work root the recovery is configured with, plus the run id), its image must be the run's own
(``mec-migration/<app>:<run id lower>``), its volumes among those recorded when the run began. A journal that is
not valid JSON blocks only its own app (app_journals skips, and reports, those of other apps).
"""

from __future__ import annotations

import json
import os
import re
import time

from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, private_dir

SCHEMA = "mec.migration/journal/v1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
FINAL_PHASES = ("done", "rolled_back", "failed")
PROTECTED_KEYS = ("schema", "run_id", "app", "start_changes")


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


def checked_dir(path, create=False):
    """``path`` (a journals' or locks' folder) after fsutil.private_dir's check (root-only, 0700, its parents not
    someone else's), made when ``create``; None when it does not exist and is not to be made. Checked on every use:
    whoever owns these folders decides what a recovery removes."""
    if not create and not os.path.lexists(path):
        return None
    try:
        return private_dir(path, create=create)
    except PrivateDirError as exc:
        raise JournalError("The migration's state folder is not safe to use: %s" % exc) from exc


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
    checked_dir(directory, create=True)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    with os.fdopen(fd, "w") as fh:
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
    path = lock_path(root, app)
    checked_dir(locks_dir(root))  # a missing folder: no lock (read_json says None)
    return read_json(path)


def read_journal(root, run_id):
    path = journal_path(root, run_id)
    checked_dir(runs_dir(root))
    return read_json(path)


def _names_app(path, app, lock):
    """Whether an unreadable journal at ``path`` is ``app``'s: its app's lock names its run, or its text
    names the app (as the JSON writer spells it)."""
    run_id = os.path.basename(path)[:-len(".json")]
    if isinstance(lock, dict) and lock.get("run_id") == run_id:
        return True
    try:
        with open(path, "rb") as fh:
            raw = fh.read(1 << 20)
    except OSError:
        return False
    needle = json.dumps(app).encode("utf-8")
    return any(p in raw for p in (b'"app": ' + needle, b'"app":' + needle))


def app_journals(root, app, unreadable=None):
    """The journals of ``app`` on this host, oldest first.

    A journal that cannot be read (not JSON, not an object) stops only its own app: when it is ``app``'s (the
    app's lock names its run, or its text names the app) a JournalError says so; otherwise it is skipped and its
    path appended to ``unreadable`` (when a list is given), so that another app's corrupt journal never blocks
    the listing or the recovery of this one."""
    out = []
    directory = checked_dir(runs_dir(root))
    if directory is None:
        return out
    lock = None
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            data = read_json(path)
            if data is not None and not isinstance(data, dict):
                raise JournalError("%s holds %s, not a journal object: look at it, then remove it by hand."
                                   % (path, type(data).__name__))
        except (JournalError, OSError, UnicodeDecodeError) as exc:
            if lock is None:
                try:
                    lock = read_lock(root, app) or {}
                except JournalError:
                    lock = {}
            if _names_app(path, app, lock):
                raise JournalError("The journal %s of %s cannot be read (%s); %s's recovery stops until it is "
                                   "repaired or removed by hand (other apps are not affected)."
                                   % (path, app, exc, app)) from exc
            if unreadable is not None:
                unreadable.append(path)
            continue
        if isinstance(data, dict) and data.get("app") == app:
            out.append(data)
    return sorted(out, key=lambda j: (j.get("started_at") or 0, j.get("run_id") or ""))


def run_image(app, run_id):
    """The image a run commits or imports: ``mec-migration/<app>:<run_id lower>``."""
    return "mec-migration/%s:%s" % (app, run_id.lower())


VOLUME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_recoverable(journal, app, work_root, run_id=None, app_volumes=None):
    """Refuse (JournalError naming every problem) a journal whose paths, image, container, checkpoints or
    volumes are not the run's own, before a recovery removes or restores any of them. Returns the journal.

    ``work_root`` is the recovery's own setting (never the journal's): the journal's work folder and tarball
    must be ``<work_root>/<run_id>`` or below it, and that folder must not be a symlink. The image must be
    ``run_image(app, run_id)``; the container ``app``; the checkpoints named after the run; the volumes among
    those the journal recorded when the run began (``start_changes``) and, when ``app_volumes`` is given (the
    app's volumes as the engine lists them), among those too."""
    if not isinstance(journal, dict):
        raise JournalError("A journal of %s is not an object; recovery refuses it." % app)
    run_id = run_id or journal.get("run_id")
    problems = []
    if journal.get("app") != app:
        problems.append("it is the journal of app %r, not of %s" % (journal.get("app"), app))
    if journal.get("run_id") != run_id or not isinstance(run_id, str) or not NAME_RE.match(run_id):
        problems.append("its run id %r is not the run %r" % (journal.get("run_id"), run_id))
        run_id = None
    if not isinstance(work_root, str) or not os.path.isabs(work_root):
        raise JournalError("The recovery's work root %r is not an absolute path." % (work_root,))
    changes = journal.get("changes") or {}
    if not isinstance(changes, dict):
        problems.append("its changes are not an object")
        changes = {}
    run_dir = os.path.join(os.path.normpath(work_root), run_id) if run_id else None
    for label, value in (("changes.workdir", changes.get("workdir")), ("changes.tarball", changes.get("tarball")),
                         ("workdir", journal.get("workdir"))):
        if value is None:
            continue
        if (not isinstance(value, str) or run_dir is None or os.path.normpath(value) != value
                or not (value == run_dir or value.startswith(run_dir + "/"))):
            problems.append("%s %r is not in the run's work folder %s" % (label, value, run_dir))
    if run_dir and os.path.islink(run_dir):
        problems.append("the run's work folder %s is a symlink" % run_dir)
    for label, value in (("changes.image", changes.get("image")), ("image", journal.get("image"))):
        if value is not None and (run_id is None or value != run_image(app, run_id)):
            problems.append("%s %r is not the run's image %s" % (label, value, run_image(app, run_id or "?")))
    if changes.get("container") is not None and changes.get("container") != app:
        problems.append("changes.container %r is not the app %s" % (changes.get("container"), app))
    checkpoints = changes.get("checkpoints")
    checkpoints = [] if checkpoints is None else list(checkpoints) if isinstance(checkpoints, list) else [checkpoints]
    if journal.get("final_checkpoint") is not None:
        checkpoints.append(journal.get("final_checkpoint"))
    for name in checkpoints:
        if not (isinstance(name, str) and run_id and NAME_RE.match(name) and name.startswith(run_id + "-")):
            problems.append("checkpoint %r is not named after the run" % (name,))
    volumes = changes.get("volumes")
    if volumes is not None:
        start = journal.get("start_changes")
        began = (start or {}).get("volumes") if isinstance(start, dict) else None
        if not isinstance(volumes, list):
            problems.append("changes.volumes is not a list")
            volumes = []
        for vol in volumes:
            if not isinstance(vol, str) or not VOLUME_RE.match(vol):
                problems.append("volume %r is not a volume name" % (vol,))
            elif not isinstance(began, list) or vol not in began:
                problems.append("volume %s was not recorded when the run began (%s)"
                                % (vol, ", ".join(began) if isinstance(began, list) else "no record"))
            elif app_volumes is not None and vol not in app_volumes:
                problems.append("volume %s is not one of %s's volumes (%s)"
                                % (vol, app, ", ".join(app_volumes) or "none"))
    if problems:
        raise JournalError("Recovery refuses run %s of %s: its journal names what the run did not make: %s. Nothing "
                           "was changed; look at the journal (%s under the state root) and undo the run by hand."
                           % (run_id or journal.get("run_id"), app, "; ".join(problems),
                              "runs/%s.json" % (run_id or journal.get("run_id"))))
    return journal


def recoverable_journals(root, app, work_root, unreadable=None, app_volumes=None):
    """``app_journals`` whose unfinished runs passed ``check_recoverable`` (a refused one raises JournalError)."""
    journals = app_journals(root, app, unreadable=unreadable)
    for journal in unfinished(journals):
        check_recoverable(journal, app, work_root, app_volumes=app_volumes)
    return journals


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
    lock = read_lock(root, app)
    journal = read_journal(root, run_id)
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
    checked_dir(locks_dir(root), create=True)
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
    # what the run may change as it said when it began: later entries may not add volumes to it
    journal["start_changes"] = dict(changes or {})
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
    # who the run is and what it said it would change when it began are not for later entries to rewrite
    journal.update((k, v) for k, v in (data or {}).items() if k not in PROTECTED_KEYS)
    journal["updated_at"] = now
    return journal


def update(root, run_id, phase=None, step=None, changes=None, data=None, now=None):
    """Record a phase (or a step of it), what may change, and data. Returns the journal."""
    now = time.time() if now is None else now
    path = journal_path(root, run_id)
    journal = read_journal(root, run_id)
    if journal is None:
        raise JournalError("Run %s has no journal here (%s): it did not begin on this host." % (run_id, path))
    if journal.get("phase") in FINAL_PHASES and phase not in FINAL_PHASES:
        raise JournalError("Run %s is over (phase %s): its journal takes no more steps." % (run_id, journal["phase"]))
    began = (journal.get("start_changes") or {}).get("volumes") or []
    added = [v for v in ((changes or {}).get("volumes") or []) if v not in began]
    if "start_changes" in journal and added:
        raise JournalError("Run %s recorded the volumes %s when it began; it cannot add %s to its journal (a "
                           "recovery would remove them)." % (run_id, ", ".join(began) or "none", ", ".join(added)))
    write_json_atomic(path, _merge(journal, phase, step, changes, data, now))
    return journal


def release(root, app, run_id):
    """Remove the app's lock if ``run_id`` holds it. Returns whether it was removed."""
    path = lock_path(root, app)
    lock = read_lock(root, app)
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
    journal = read_journal(root, run_id)
    changed = False
    if journal is not None and (journal.get("phase") != outcome or data):
        journal = _merge(journal, outcome, None, None, data, now)
        journal["outcome"] = outcome
        journal["finished_at"] = now
        write_json_atomic(path, journal)
        changed = True
    released = release(root, app, run_id)
    return changed or released, journal, released
