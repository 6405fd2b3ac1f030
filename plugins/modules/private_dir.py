#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""A root-only folder (work, state, socket or build folder), made 0700 and checked on every use."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: private_dir
short_description: Make a private folder (mode 0700, ours) or stop when someone else could own or swap it
description:
  - Makes O(path) and its missing parents with mode 0700 (when O(create) is true), then checks, without following
    links, that O(path) is a real directory (not a symlink), owned by the user the module runs as, with no
    group or other permission bits, and that its existing parents belong to root or that user and are not
    writable by others (unless sticky, like C(/tmp)), as written and once links are resolved.
  - A folder that fails the check stops the play with a message naming the path, the owner and mode found and
    what to do (remove it or fix its owner or mode). A folder someone else owns, or that group or others may
    write to, is never chmod-ed or chown-ed into shape, since someone else may have put something in it; a folder
    of the user's own that nobody else could write into (for example 0755, as earlier versions made them) is
    tightened to 0700 (reported as a change).
  - Used for the folders the collection works in as root (the CRIU build folder and the role's state folder, the
    migration's work root, the SSH control sockets); a folder that someone else created first must not receive
    root's files or be trusted for what is in it.
version_added: 0.3.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Nothing is made or tightened; an existing O(path) is checked, a missing one (or one that would be
      tightened to 0700) is reported as a change.
  diff_mode:
    support: none
    description: No diff.
  idempotent:
    support: full
    description: A folder that passes the check is left as it is; one tightened to 0700 is left as it is next time.
options:
  path:
    description: The folder.
    type: path
    required: true
  create:
    description: Make O(path) and its missing parents (mode 0700) when they do not exist; false fails on a missing
      folder.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: The CRIU build folder is root's alone
  mec.migration.private_dir:
    path: /var/lib/mec-migration/build/criu
"""

RETURN = r"""
path:
  description: The folder's absolute path.
  returned: always
  type: str
  sample: /var/lib/mec-migration/build/criu
mode:
  description: The folder's mode (octal), C(null) in check mode when it does not exist yet.
  returned: always
  type: str
  sample: "0700"
"""

import os
import socket
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.mec.migration.plugins.module_utils.fsutil import PrivateDirError, private_dir


def main():
    module = AnsibleModule(argument_spec=dict(path=dict(type="path", required=True),
                                              create=dict(type="bool", default=True)),
                           supports_check_mode=True)
    path = os.path.abspath(module.params["path"])
    existed = os.path.lexists(path)
    before = stat.S_IMODE(os.lstat(path).st_mode) if existed else None
    try:
        if module.check_mode and not existed:
            module.exit_json(changed=True, path=path, mode=None)
        if module.check_mode and before is not None and before & 0o077 and not before & 0o022:
            module.exit_json(changed=True, path=path, mode="%04o" % before)  # would be tightened to 0700
        private_dir(path, create=module.params["create"])
    except PrivateDirError as exc:
        module.fail_json(msg="%s (host %s)" % (exc, socket.gethostname()), path=exc.path or path)
    mode = stat.S_IMODE(os.lstat(path).st_mode)
    module.exit_json(changed=not existed or mode != before, path=path, mode="%04o" % mode)


if __name__ == "__main__":
    main()
