#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
module: app_phase
short_description: Tell a migration-aware MEC app which migration phase began
description:
  - Calls the app's phase endpoint over HTTP, for example C(GET /changePhase?inMigration=1), so that the app
    stops writing to its container file system and writes to its volume instead (the seed's section 4.2.3).
version_added: 0.1.0
author: mec.migration developers (@mec-migration)
attributes:
  check_mode:
    support: full
    description: In check mode the endpoint is not called.
  diff_mode:
    support: none
    description: No diff; the module changes nothing on the host, it only calls the app's endpoint.
  idempotent:
    support: none
    description: Each call notifies the app again; the app decides whether anything changes.
options:
  url:
    description: The phase endpoint.
    type: str
    required: true
  method:
    description: HTTP method.
    type: str
    default: GET
  status_code:
    description: Accepted HTTP status codes.
    type: list
    elements: int
    default: [200]
  timeout:
    description: Seconds to wait for the answer.
    type: int
    default: 5
  validate_certs:
    description: Verify TLS certificates.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Tell the app that pre-relocation began
  mec.migration.app_phase:
    url: "http://127.0.0.1:8080/changePhase?inMigration=1"
"""

RETURN = r"""
status:
  description: HTTP status code of the answer.
  returned: unless check mode
  type: int
body:
  description: First 2 KiB of the answer's body.
  returned: unless check mode
  type: str
duration:
  description: Seconds the call took.
  returned: always
  type: float
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError

from ansible_collections.mec.migration.plugins.module_utils.docker_client import fail, hostname
from ansible_collections.mec.migration.plugins.module_utils.relocation import notify_phase


def main():
    module = AnsibleModule(argument_spec=dict(
        url=dict(type="str", required=True),
        method=dict(type="str", default="GET"),
        status_code=dict(type="list", elements="int", default=[200]),
        timeout=dict(type="int", default=5),
        validate_certs=dict(type="bool", default=True),
    ), supports_check_mode=True)
    p = module.params
    if module.check_mode:
        module.exit_json(changed=True, duration=0.0)
    try:
        res = notify_phase(p["url"], timeout=p["timeout"], method=p["method"], validate_certs=p["validate_certs"])
    except HTTPError as exc:
        res = dict(status=exc.code, body=exc.read().decode("utf-8", "replace")[:2048], duration=0.0)
    except Exception as exc:
        fail(module, "The app's phase endpoint %s did not answer from host %s: %s" % (p["url"], hostname(), exc),
             exc=exc)
    if res["status"] not in p["status_code"]:
        module.fail_json(msg="The app's phase endpoint %s answered %s (expected %s)." % (
            p["url"], res["status"], ", ".join(str(s) for s in p["status_code"])), **res)
    module.exit_json(changed=True, **res)


if __name__ == "__main__":
    main()
