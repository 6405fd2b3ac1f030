#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: relocation_gate
short_description: Hold a staged migration until its relocation may start
description:
  - Waits, on the host it runs on (the controller in C(playbooks/migrate.yml)), until a file's content matches
    the regular expression O(open), polling it every O(interval) seconds. It ends with a failure when the content
    matches O(abandon) first, or when O(timeout) passes.
  - O(watch) adds further files, each with its own O(watch[].open) and O(watch[].abandon), applied to that file
    only. Each poll reads every file; an abandon match in any file wins over an open match in any file, and among
    several files that match the same way the first one decides (O(path), then O(watch) in order).
  - With it, C(playbooks/migrate.yml) does the whole pre-relocation ahead of time (image on the target, container
    created, m3's first checkpoint copied) and relocates at the instant the gate opens, for example when the UE
    that the app serves enters the target's zone (C(playbooks/follow.yml) in ahead mode uses the event source's
    state file). A failed gate makes the migration roll back, and the app keeps serving on the source.
  - With O(check_only=true) it only checks its arguments (the regular expressions compile, every path is absolute
    and its folder exists, each O(watch) entry has O(watch[].open) or O(watch[].abandon)) and returns at once,
    every problem in one message, so that bad input is refused before the migration changes anything.
version_added: 0.3.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: In check mode, as with O(check_only=true), the arguments are checked and nothing is read or waited
      for.
  diff_mode:
    support: none
    description: No diff; the module only reads files.
  idempotent:
    support: full
    description: It only reads files.
options:
  path:
    description: Absolute path of the file to watch. A missing file is "not open yet".
    type: path
    required: true
  open:
    description: Python regular expression (searched in the content of O(path)) that opens the gate.
    type: str
    required: true
  abandon:
    description: Python regular expression that, found in the content of O(path), gives up the wait (a failure).
    type: str
  watch:
    description:
      - Further files watched in the same polls as O(path), each with its own regular expressions, which are
        searched in that file's content only (so two files may use the same key with different meanings).
      - Each entry needs O(watch[].open), O(watch[].abandon) or both.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path of the file. A missing file matches nothing (yet).
        type: path
        required: true
      open:
        description: Python regular expression that, found in this file's content, opens the gate.
        type: str
      abandon:
        description: Python regular expression that, found in this file's content, gives up the wait (a failure).
        type: str
  timeout:
    description: Seconds to wait at most (a failure after them).
    type: float
    default: 300
  interval:
    description: Seconds between two polls (each poll reads every file).
    type: float
    default: 0.05
  check_only:
    description: Only check the arguments, do not wait.
    type: bool
    default: false
  wait:
    description:
      - V(false) reads every file once and returns at once, without waiting for O(open) - it fails (C(abandoned))
        only if an O(abandon) expression matches now, else it says C(open) or C(pending). C(playbooks/migrate.yml)
        uses it during a staged pre-relocation, so that a hop the UE no longer heads for is given up before the
        image is copied instead of after the whole staging.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Relocate when the UE's state file says it entered zone02, give up if it enters another zone
  mec.migration.relocation_gate:
    path: /var/tmp/mec-follow/10.100.0.1.json
    open: '"zone": "zone02"'
    abandon: '"zone": "(?!zone01"|zone02")'
    timeout: 120
  delegate_to: localhost

- name: Relocate also when the predictor says the handover is imminent, give up when it predicts another zone
  mec.migration.relocation_gate:
    path: /var/tmp/mec-follow/10.100.0.1.json
    open: '"zone": "zone02"'
    abandon: '"zone": "(?!zone01"|zone02")'
    watch:
      - path: /var/tmp/mec-follow/10.100.0.1.approach.json
        open: '"relocate_to": "zone02"'
        abandon: '"to_zone": "(?!zone02")'
    timeout: 120
  delegate_to: localhost
"""

RETURN = r"""
outcome:
  description: C(open), or C(checked) with O(check_only) and in check mode, or with O(wait=false) C(pending) when
    neither expression matches yet. A failure says C(abandoned), C(timeout) or C(bad_input).
  returned: always
  type: str
waited:
  description: Seconds waited.
  returned: always
  type: float
opened_at:
  description: Unix time at which the open content was read (the relocation starts right after).
  returned: when the gate opened (not with O(wait=false))
  type: float
decided_by:
  description: The path (O(path) or one of O(watch)) whose content opened or abandoned the gate; null after a
    timeout, with O(check_only) and in check mode.
  returned: always
  type: str
  sample: /var/tmp/mec-follow/10.100.0.1.approach.json
content:
  description: The content (at most 512 characters) of the file named by RV(decided_by); after a timeout, the last
    content read of O(path).
  returned: when that file was read
  type: str
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname


class Watched:
    """One watched file and its own compiled expressions (``open_re`` and ``abandon_re`` may each be None)."""

    def __init__(self, path, open_re=None, abandon_re=None):
        self.path, self.open_re, self.abandon_re = path, open_re, abandon_re


def read(path):
    """The file's content, or None when it does not exist (yet); a torn read is read again next time."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except FileNotFoundError:
        return None


def decide(contents, watched):
    """('abandoned' | 'open', the deciding Watched) for one poll's ``contents`` (one per ``watched``, None for a
    missing file), or (None, None). Any abandon match wins over any open match; within each, the first file wins."""
    for kind, attr in (("abandoned", "abandon_re"), ("open", "open_re")):
        for content, entry in zip(contents, watched):
            regex = getattr(entry, attr)
            if content is not None and regex is not None and regex.search(content):
                return kind, entry
    return None, None


def wait_gate(watched, timeout=300.0, interval=0.05, clock=time.monotonic, sleep=time.sleep):
    """Poll every file of ``watched`` (a list of Watched, the main file first) until one poll decides (see
    ``decide``) or ``timeout`` passes ('timeout'). Returns (outcome, waited seconds, deciding Watched or None,
    content: the decider's, or after a timeout the first file's last content)."""
    start = clock()
    while True:
        contents = [read(entry.path) for entry in watched]
        outcome, entry = decide(contents, watched)
        if outcome is not None:
            return outcome, clock() - start, entry, contents[watched.index(entry)]
        waited = clock() - start
        if waited >= timeout:
            return "timeout", waited, None, contents[0]
        sleep(min(interval, max(0.0, timeout - waited)))


def check_entry(label, path, patterns, problems):
    """Append to ``problems`` what is wrong with one watched file (``label`` names it in the messages) and return
    its compiled ``patterns`` ({'open': str or None, 'abandon': ...}) as a dict of the given ones."""
    compiled = {}
    for key, pattern in patterns.items():
        if pattern is None:
            continue
        if not pattern:
            problems.append("%s%s must not be empty" % (label, key))
            continue
        try:
            compiled[key] = re.compile(pattern)
        except re.error as exc:
            problems.append("%s%s=%r is not a regular expression (%s)" % (label, key, pattern, exc))
    if not os.path.isabs(path):
        problems.append("%spath=%s must be absolute" % (label, path))
    elif not os.path.isdir(os.path.dirname(path)):
        problems.append("the folder of %spath=%s does not exist on %s" % (label, path, hostname()))
    return compiled


def check_arguments(params):
    """(list of Watched, problems): the main file first, then ``watch`` in order; every problem of every entry."""
    problems = []
    compiled = check_entry("", params["path"], {"open": params["open"], "abandon": params["abandon"]}, problems)
    watched = [Watched(params["path"], compiled.get("open"), compiled.get("abandon"))]
    for index, entry in enumerate(params["watch"] or []):
        label = "watch[%d]." % index
        patterns = {"open": entry.get("open"), "abandon": entry.get("abandon")}
        if all(pattern is None for pattern in patterns.values()):
            problems.append("%s (path=%s) needs open, abandon or both" % (label[:-1], entry["path"]))
        compiled = check_entry(label, entry["path"], patterns, problems)
        watched.append(Watched(entry["path"], compiled.get("open"), compiled.get("abandon")))
    if not 0 < params["timeout"] <= 86400:
        problems.append("timeout=%s must be more than 0 and at most 86400 seconds" % params["timeout"])
    if not 0.001 <= params["interval"] <= 60:
        problems.append("interval=%s must be from 0.001 to 60 seconds" % params["interval"])
    return watched, problems


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        open=dict(type="str", required=True),
        abandon=dict(type="str"),
        watch=dict(type="list", elements="dict", default=[], options=dict(
            path=dict(type="path", required=True),
            open=dict(type="str"),
            abandon=dict(type="str"),
        )),
        timeout=dict(type="float", default=300.0),
        interval=dict(type="float", default=0.05),
        check_only=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
    ), supports_check_mode=True)
    p = module.params
    watched, problems = check_arguments(p)
    if problems:
        module.fail_json(msg="Bad relocation gate, nothing was changed: %s." % "; ".join(problems),
                         outcome="bad_input", waited=0.0, decided_by=None)
    if p["check_only"] or module.check_mode:
        module.exit_json(changed=False, outcome="checked", waited=0.0, decided_by=None)
    if p["wait"]:
        outcome, waited, decider, content = wait_gate(watched, p["timeout"], p["interval"])
    else:  # one look: has the gate been abandoned already?
        contents = [read(entry.path) for entry in watched]
        outcome, decider = decide(contents, watched)
        outcome, waited = outcome or "pending", 0.0
        content = contents[watched.index(decider)] if decider else contents[0]
    result = dict(changed=False, outcome=outcome, waited=round(waited, 6),
                  decided_by=decider.path if decider else None)
    if content is not None:
        result["content"] = content[:512]
    if outcome == "open" and p["wait"]:
        module.exit_json(opened_at=time.time(), **result)
    if outcome in ("open", "pending"):
        module.exit_json(**result)
    if outcome == "abandoned":
        module.fail_json(msg="The relocation gate was abandoned after %.1f s: %s on %s matched abandon=%r (an "
                             "abandon match wins over any open; for a staged hop: the UE went elsewhere). The "
                             "migration is rolled back; the app keeps serving on the source." % (
                                 waited, decider.path, hostname(), decider.abandon_re.pattern), **result)
    opens = ", ".join("%s (open=%r)" % (w.path, w.open_re.pattern) for w in watched if w.open_re is not None)
    module.fail_json(msg="The relocation gate did not open within %s s: on %s, no file matched its open: %s. The "
                         "migration is rolled back; the app keeps serving on the source." % (
                             p["timeout"], hostname(), opens), **result)


if __name__ == "__main__":
    main()
