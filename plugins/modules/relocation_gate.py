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
  - With it, C(playbooks/migrate.yml) does the whole pre-relocation ahead of time (image on the target, container
    created, m3's first checkpoint copied) and relocates at the instant the gate opens, for example when the UE
    that the app serves enters the target's zone (C(playbooks/follow.yml) in ahead mode uses the event source's
    state file). A failed gate makes the migration roll back, and the app keeps serving on the source.
  - With O(check_only=true) it only checks its arguments (the regular expressions compile, the file's folder
    exists) and returns at once, so that bad input is refused before the migration changes anything.
version_added: 0.3.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: In check mode the arguments are checked and the file is read once; nothing waits.
  diff_mode:
    support: none
    description: No diff; the module only reads the file.
  idempotent:
    support: full
    description: It only reads the file.
options:
  path:
    description: Absolute path of the file to watch. A missing file is "not open yet".
    type: path
    required: true
  open:
    description: Python regular expression (searched in the file's content) that opens the gate.
    type: str
    required: true
  abandon:
    description: Python regular expression that, found first, gives up the wait (a failure).
    type: str
  timeout:
    description: Seconds to wait at most (a failure after them).
    type: float
    default: 300
  interval:
    description: Seconds between two reads of the file.
    type: float
    default: 0.05
  check_only:
    description: Only check the arguments, do not wait.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Relocate when the UE's state file says it entered zone02, give up if it enters another zone
  mec.migration.relocation_gate:
    path: /var/tmp/mec-follow/10.100.0.1.json
    open: '"zone": "zone02"'
    abandon: '"zone": "(?!zone01"|zone02")'
    timeout: 120
  delegate_to: localhost
"""

RETURN = r"""
outcome:
  description: C(open), or C(checked) with O(check_only) and in check mode. A failure says C(abandoned) or
    C(timeout).
  returned: always
  type: str
waited:
  description: Seconds waited.
  returned: always
  type: float
opened_at:
  description: Unix time at which the open content was read (the relocation starts right after).
  returned: when the gate opened
  type: float
content:
  description: The file's content that decided (at most 512 characters).
  returned: when the file was read
  type: str
"""

import os
import re
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname


def read(path):
    """The file's content, or None when it does not exist (yet); a torn read is read again next time."""
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            return handle.read(65536)
    except FileNotFoundError:
        return None


def wait_gate(path, open_re, abandon_re=None, timeout=300.0, interval=0.05, clock=time.monotonic,
              sleep=time.sleep):
    """Wait until ``path``'s content matches ``open_re`` ('open') or ``abandon_re`` ('abandoned'), or ``timeout``
    passes ('timeout'). Abandon wins when both match. Returns (outcome, waited seconds, content)."""
    start = clock()
    content = None
    while True:
        content = read(path)
        if content is not None:
            if abandon_re is not None and abandon_re.search(content):
                return "abandoned", clock() - start, content
            if open_re.search(content):
                return "open", clock() - start, content
        waited = clock() - start
        if waited >= timeout:
            return "timeout", waited, content
        sleep(min(interval, max(0.0, timeout - waited)))


def main():
    module = AnsibleModule(argument_spec=dict(
        path=dict(type="path", required=True),
        open=dict(type="str", required=True),
        abandon=dict(type="str"),
        timeout=dict(type="float", default=300.0),
        interval=dict(type="float", default=0.05),
        check_only=dict(type="bool", default=False),
    ), supports_check_mode=True)
    p = module.params
    problems = []
    compiled = {}
    for key in ("open", "abandon"):
        if p[key] is None:
            continue
        if not p[key]:
            problems.append("%s must not be empty" % key)
            continue
        try:
            compiled[key] = re.compile(p[key])
        except re.error as exc:
            problems.append("%s=%r is not a regular expression (%s)" % (key, p[key], exc))
    if not os.path.isabs(p["path"]):
        problems.append("path=%s must be absolute" % p["path"])
    elif not os.path.isdir(os.path.dirname(p["path"])):
        problems.append("the folder of path=%s does not exist on %s" % (p["path"], hostname()))
    if not 0 < p["timeout"] <= 86400:
        problems.append("timeout=%s must be more than 0 and at most 86400 seconds" % p["timeout"])
    if not 0.001 <= p["interval"] <= 60:
        problems.append("interval=%s must be from 0.001 to 60 seconds" % p["interval"])
    if problems:
        module.fail_json(msg="Bad relocation gate, nothing was changed: %s." % "; ".join(problems),
                         outcome="bad_input", waited=0.0)
    if p["check_only"] or module.check_mode:
        module.exit_json(changed=False, outcome="checked", waited=0.0)
    outcome, waited, content = wait_gate(p["path"], compiled["open"], compiled.get("abandon"), p["timeout"],
                                         p["interval"])
    result = dict(changed=False, outcome=outcome, waited=round(waited, 6))
    if content is not None:
        result["content"] = content[:512]
    if outcome == "open":
        module.exit_json(opened_at=time.time(), **result)
    if outcome == "abandoned":
        module.fail_json(msg="The relocation gate was abandoned after %.1f s: %s on %s matched abandon=%r before "
                             "open=%r (for a staged hop: the UE went elsewhere). The migration is rolled back; "
                             "the app keeps serving on the source." % (waited, p["path"], hostname(), p["abandon"],
                                                                       p["open"]), **result)
    module.fail_json(msg="The relocation gate did not open within %s s: %s on %s never matched open=%r. The "
                         "migration is rolled back; the app keeps serving on the source." % (
                             p["timeout"], p["path"], hostname(), p["open"]), **result)


if __name__ == "__main__":
    main()
