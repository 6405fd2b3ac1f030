#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: migration_journal
short_description: A migration's journal and the app's lock on a MEC host
description:
  - Keeps, on each host, C(<root>/runs/<run_id>.json), the run's journal (phase reached, what the run may have
    changed on this host, the source's restart policy, ...), and C(<root>/locks/<app>.lock), the app's lock
    (run id, host, controller, start time; no process id, since the controller may be another machine).
  - Files are written atomically (temporary file, fsync, rename, fsync of the directory); the lock is made
    with C(O_EXCL), so of two runs of the same app only one gets it.
  - O(action=begin) takes the lock and writes the first entry; refused, changing nothing, when another run
    holds the lock (the message names it and how to recover), when O(run_id) has a journal already, or when
    one of O(artifacts) exists (a reused run id).
  - O(action=update) records a phase or step, O(changes) and O(data); O(action=finish) closes the run with
    O(outcome) and releases the lock; O(action=release) only releases the lock if O(run_id) holds it;
    O(action=read) returns the lock and the app's journals.
version_added: 0.2.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Reports what the action would change; no journal or lock is written or removed. O(action=begin) still
      fails when another run holds the app's lock.
  diff_mode:
    support: none
    description: No diff; RV(journal) and RV(lock) return the journal and the lock.
  idempotent:
    support: partial
    description: C(begin) again by the run that holds the lock, C(finish), C(release) and C(read) are idempotent;
      each C(update) appends a step.
options:
  action:
    description: What to do.
    type: str
    choices: [begin, update, finish, release, read]
    required: true
  app:
    description: The app (container name) the lock is for.
    type: str
    required: true
  run_id:
    description: The run; required except for O(action=read).
    type: str
  phase:
    description: Phase reached (O(action=update); with O(action=begin), the phase recorded right after the first
      entry, in the same call), for example C(pre_relocation), C(relocation), C(target_running).
    type: str
  step:
    description: Step within the phase (O(action=update)).
    type: str
  outcome:
    description: How the run ended (O(action=finish)).
    type: str
    choices: [done, rolled_back, failed]
  changes:
    description: What the run may change (or did change) on this host, merged into the journal's C(changes)
      (for example C(workdir), C(tarball), C(image), C(container), C(volumes), C(checkpoints)).
    type: dict
  data:
    description: Other fields merged into the journal (strategy, role, restart policy, ...).
    type: dict
  artifacts:
    description: Paths the run will make; O(action=begin) is refused if one exists (a reused run id).
    type: list
    elements: path
    default: []
  root:
    description: Directory of the journals and locks.
    type: path
    default: /var/lib/mec-migration
  work_root:
    description:
      - With O(action=read), the recovery's own work root (never the journal's). Every unfinished run's journal
        must name only what that run made (its work folder under O(work_root), its image
        C(mec-migration/<app>:<run_id>), the app's container, checkpoints named after the run, the volumes recorded
        when it began), or the read fails naming every problem and nothing is recovered.
      - Unset, the journals are listed as they are (no recovery check).
    type: path
  workdir:
    description:
      - O(action=begin) - the run's work directory, made right after the lock is taken, in the same call, as a private
        folder (mode 0700, owned by the user the module runs as, no link; its missing parents made 0700 too). A
        folder that exists already, or cannot be made private, makes the begin fail; the lock it took is released
        and the journal closed (C(failed)).
      - Give it in O(artifacts) too, so that a reused run id is refused before anything is made.
    type: path
"""

EXAMPLES = r"""
- name: Take the lock and begin the journal
  mec.migration.migration_journal:
    action: begin
    app: v2x-app
    run_id: 20261126T130330Z-3f9a1c2e
    data: {strategy: m2, role: source}
    artifacts: [/var/lib/mec-migration/work/20261126T130330Z-3f9a1c2e]
    workdir: /var/lib/mec-migration/work/20261126T130330Z-3f9a1c2e
    phase: pre_relocation

- name: Close the run and release the lock
  mec.migration.migration_journal:
    action: finish
    app: v2x-app
    run_id: 20261126T130330Z-3f9a1c2e
    outcome: done
"""

RETURN = r"""
journal:
  description: The run's journal on this host (C(null) if it has none).
  returned: unless O(action=read) without O(run_id)
  type: dict
lock:
  description: The app's lock on this host (C(null) if free).
  returned: always
  type: dict
journals:
  description: The app's journals on this host, oldest first.
  returned: O(action=read)
  type: list
  elements: dict
unfinished:
  description: The app's journals that did not reach done, rolled_back or failed, oldest first.
  returned: O(action=read)
  type: list
  elements: dict
released:
  description: Whether the lock was released.
  returned: O(action=finish) and O(action=release)
  type: bool
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils import journal as jr
from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, private_dir


def _host():
    return socket.gethostname()


def run(module, p):
    root, app, run_id = p["root"], p["app"], p["run_id"]
    jr.check_name("app", app)
    if p["action"] != "read":
        if not run_id:
            raise jr.JournalError("action=%s needs run_id." % p["action"])
        jr.check_name("run_id", run_id)
    lock = jr.read_lock(root, app)
    if p["action"] == "read":
        unreadable = []
        journals = (jr.recoverable_journals(root, app, p["work_root"], unreadable=unreadable) if p["work_root"]
                    else jr.app_journals(root, app, unreadable=unreadable))
        return dict(changed=False, lock=lock, journals=journals, unfinished=jr.unfinished(journals),
                    journal=jr.read_journal(root, run_id) if run_id else None, unreadable=unreadable)
    journal = jr.read_journal(root, run_id)
    if p["action"] == "begin":
        if lock is not None and lock.get("run_id") == run_id and journal is not None:
            return dict(changed=False, journal=journal, lock=lock)
        if module.check_mode:
            if lock is not None:
                raise jr.JournalError(jr.lock_message(lock, app, _host(), root))
            return dict(changed=True, journal=journal, lock=lock)
        changed, journal, lock = jr.begin(root, run_id, app, p["data"], p["artifacts"], _host(),
                                          changes=p["changes"])
        if changed and p["workdir"]:
            try:
                private_dir(p["workdir"])
            except (PrivateDirError, OSError) as exc:
                jr.finish(root, run_id, app, "failed", data=dict(error="work directory: %s" % exc))
                raise jr.JournalError("Cannot make the run's work directory on host %s: %s. The lock this run took "
                                      "was released; nothing else was changed." % (_host(), exc)) from exc
        if changed and p["phase"]:
            journal = jr.update(root, run_id, phase=p["phase"])
        return dict(changed=changed, journal=journal, lock=lock)
    if p["action"] == "update":
        if module.check_mode:
            return dict(changed=True, journal=journal, lock=lock)
        return dict(changed=True, journal=jr.update(root, run_id, phase=p["phase"], step=p["step"],
                                                    changes=p["changes"], data=p["data"]), lock=lock)
    if p["action"] == "finish":
        if not p["outcome"]:
            raise jr.JournalError("action=finish needs outcome (done, rolled_back or failed).")
        if module.check_mode:
            holds = lock is not None and lock.get("run_id") == run_id
            return dict(changed=holds or (journal is not None and journal.get("phase") != p["outcome"]),
                        journal=journal, lock=lock, released=holds)
        changed, journal, released = jr.finish(root, run_id, app, p["outcome"], data=p["data"])
        return dict(changed=changed, journal=journal, lock=jr.read_lock(root, app), released=released)
    holds = lock is not None and lock.get("run_id") == run_id
    released = holds and (module.check_mode or jr.release(root, app, run_id))
    return dict(changed=bool(released), journal=journal, lock=jr.read_lock(root, app) if not module.check_mode
                else lock, released=bool(released))


def main():
    module = AnsibleModule(argument_spec=dict(
        action=dict(type="str", choices=["begin", "update", "finish", "release", "read"], required=True),
        work_root=dict(type="path"),
        app=dict(type="str", required=True),
        run_id=dict(type="str"),
        phase=dict(type="str"),
        step=dict(type="str"),
        outcome=dict(type="str", choices=list(jr.FINAL_PHASES)),
        changes=dict(type="dict"),
        data=dict(type="dict"),
        artifacts=dict(type="list", elements="path", default=[]),
        root=dict(type="path", default="/var/lib/mec-migration"),
        workdir=dict(type="path"),
    ), supports_check_mode=True)
    try:
        res = run(module, module.params)
    except jr.JournalError as exc:
        module.fail_json(msg="%s (host %s)" % (exc, _host()) if _host() not in str(exc) else str(exc),
                         host=_host())
    except (OSError, ValueError) as exc:
        module.fail_json(msg="The migration journal on host %s failed: %s: %s" % (_host(), type(exc).__name__, exc),
                         host=_host())
    module.exit_json(**res)


if __name__ == "__main__":
    main()
