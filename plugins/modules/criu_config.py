#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: criu_config
short_description: Set the container runtime's CRIU configuration (the policy for established TCP connections)
description:
  - Writes the CRIU configuration file that the container runtime (runc) hands CRIU on every dump and restore
    (C(/etc/criu/runc.conf), unless a container's C(org.criu.config) annotation names another). Its settings
    override the engine's, and it is the only way to give C(docker checkpoint) and C(docker start --checkpoint)
    a CRIU option.
  - O(tcp_policy=close) (the default) dumps established TCP connections without their state and restores them
    closed, so that a service with connected clients can be checkpointed and its clients reconnect to the new
    host (keeping them is impossible across hosts, the app lives at another address).
    O(tcp_policy=established) keeps their state, for a restore at the same address (the same host).
    O(tcp_policy=refuse) is CRIU's default, a dump fails while a connection is established.
  - V(close) and V(established) also drop connections still in flight (in a listening socket's queue, not yet
    accepted; C(skip-in-flight)), which would fail the dump too; their clients see a reset and retry.
  - V(close) also skips CRIU's network lock (iptables rules in the container's network namespace while it dumps
    or restores), which protects only connections whose state is kept; a client knocking during the restore is
    then refused at once instead of having its SYN dropped.
  - Listening sockets are dumped and restored in every policy.
  - A file not written by this module is replaced only with O(force=true), so that a host's own CRIU settings are
    not lost silently.
version_added: 0.2.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: Compares the file with the wanted content and reports the change; the file is not written.
  diff_mode:
    support: full
    description: The diff shows the file's content before and after.
  idempotent:
    support: full
    description: The file is written only when its content differs.
options:
  tcp_policy:
    description: What CRIU does with established TCP connections.
    type: str
    choices: [close, established, refuse]
    default: close
  extra_options:
    description: More CRIU long options (without the leading dashes), one per item, for example V(ghost-limit 10M).
    type: list
    elements: str
    default: []
  path:
    description: The runtime's CRIU configuration file.
    type: path
    default: /etc/criu/runc.conf
  force:
    description: Replace a file that this module did not write.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Established connections are closed at a dump, clients reconnect (strategy m3)
  mec.migration.criu_config:
    tcp_policy: close
"""

RETURN = r"""
path:
  description: The configuration file.
  returned: always
  type: str
tcp_policy:
  description: The policy the file now gives CRIU.
  returned: always
  type: str
previous_policy:
  description: The policy the file gave CRIU before (V(refuse) when there was no file).
  returned: always
  type: str
content:
  description: The file's content.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.mec.migration.plugins.module_utils.criu import (
    CONFIG_MARK, PolicyError, policy_of_config, read_text, render_config, write_atomic)
from ansible_collections.mec.migration.plugins.module_utils.docker_client import hostname


def main():
    module = AnsibleModule(argument_spec=dict(
        tcp_policy=dict(type="str", choices=["close", "established", "refuse"], default="close"),
        extra_options=dict(type="list", elements="str", default=[]),
        path=dict(type="path", default="/etc/criu/runc.conf"),
        force=dict(type="bool", default=False),
    ), supports_check_mode=True)
    p = module.params
    try:
        want = render_config(p["tcp_policy"], p["extra_options"])
    except PolicyError as exc:
        module.fail_json(msg=str(exc))
    have = read_text(p["path"])
    result = dict(path=p["path"], tcp_policy=p["tcp_policy"], previous_policy=policy_of_config(have),
                  content=want, changed=have != want)
    if have is not None and have != want and CONFIG_MARK not in have and not p["force"]:
        module.fail_json(msg="%s on host %s was not written by mec.migration (it holds: %s). Merge its options "
                             "into extra_options and set force=true, or move it aside."
                             % (p["path"], hostname(), " ".join(have.split())[:200]), **result)
    if module._diff:
        result["diff"] = dict(before=have or "", after=want, before_header=p["path"], after_header=p["path"])
    if result["changed"] and not module.check_mode:
        try:
            write_atomic(p["path"], want)
        except OSError as exc:
            module.fail_json(msg="Could not write %s on host %s: %s" % (p["path"], hostname(), exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
