#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: file_transfer
short_description: Copy a file or directory from this MEC host to another one with scp or rsync over SSH
description:
  - Runs on the source host and copies straight to the target host (never through the controller).
  - V(rsync) sends only what changed (the seed's checkpoint delta) and reports the figures of C(rsync --stats).
  - SSH runs with C(BatchMode), checks the peer's host key (C(StrictHostKeyChecking=yes)) and shares a master
    connection (C(ControlPersist)), so later transfers of the same run skip the handshake. Its control sockets
    live in C(/run/mec-migration/ssh), made with mode 0700 and checked before every use (a real directory owned
    by the user the module runs as, no group or other access, parents not someone else's); a folder that fails
    the check stops the module before ssh runs.
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Reports a transfer without connecting to O(dest_host); nothing is copied.
  diff_mode:
    support: none
    description: No diff; V(rsync) reports what it sent in RV(stats).
  idempotent:
    support: partial
    description: V(rsync) reports C(changed=false) when no file had to be sent; V(scp) always copies.
options:
  src:
    description: File or directory on this host (a trailing C(/) on a directory sends its content with rsync).
    type: path
    required: true
  dest_host:
    description: Address of the receiving host.
    type: str
    required: true
  dest:
    description: Path on the receiving host.
    type: str
    required: true
  method:
    description: Tool to copy with.
    type: str
    choices: [scp, rsync]
    default: scp
  user:
    description: SSH user on the receiving host.
    type: str
    default: root
  ssh_options:
    description: >-
      Options for ssh, as a list of arguments; default is batch mode, strict host key checking and a shared master
      connection. The folder of a C(ControlPath) given here must be a fixed absolute path (C(%) tokens only in the
      socket's name); it is checked like the default one.
    type: list
    elements: str
  delete:
    description: With rsync, delete files at O(dest) that O(src) lacks.
    type: bool
    default: true
requirements:
  - ssh, scp and rsync on this host; rsync on the receiving host for O(method=rsync)
"""

EXAMPLES = r"""
- name: Copy the image tarball to the target
  mec.migration.file_transfer:
    src: /var/lib/mec-migration/work/run1/image.tar
    dest_host: 172.30.77.12
    dest: /var/lib/mec-migration/work/run1/image.tar
"""

RETURN = r"""
method:
  description: The tool used.
  returned: always
  type: str
duration:
  description: Seconds the copy took.
  returned: always
  type: float
transferred_bytes:
  description: Bytes sent (rsync's "Total bytes sent", or the file size for scp).
  returned: always
  type: int
stats:
  description: >-
    The figures of C(rsync --stats) (files_transferred, total_file_size, transferred_file_size, literal_data,
    matched_data, bytes_sent, bytes_received).
  returned: always
  type: dict
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.module_glue import run_guarded
from ansible_collections.mec.migration.plugins.module_utils.transport import transfer


def main():
    module = AnsibleModule(argument_spec=dict(
        src=dict(type="path", required=True),
        dest_host=dict(type="str", required=True),
        dest=dict(type="str", required=True),
        method=dict(type="str", choices=["scp", "rsync"], default="scp"),
        user=dict(type="str", default="root"),
        ssh_options=dict(type="list", elements="str"),
        delete=dict(type="bool", default=True),
    ), supports_check_mode=True)
    p = module.params
    if not os.path.exists(p["src"]):
        module.fail_json(msg="%s does not exist on this host." % p["src"])
    if module.check_mode:
        module.exit_json(changed=True, method=p["method"], duration=0.0, transferred_bytes=0, stats={})
    res = run_guarded(module, transfer, module, p["method"], p["src"], p["dest_host"], p["dest"], user=p["user"],
                      ssh_options=p["ssh_options"], delete=p["delete"])
    changed = True
    if p["method"] == "rsync" and "files_transferred" in res["stats"]:
        changed = res["stats"]["files_transferred"] > 0
    module.exit_json(changed=changed, **res)


if __name__ == "__main__":
    main()
