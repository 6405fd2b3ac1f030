# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Action plugin mec.migration.migration_input: the migration's input checked on the controller, in the
controller's process (no module is sent anywhere); documentation in plugins/modules/migration_input.py."""
from __future__ import annotations

import datetime
import os
import secrets
import socket

import yaml
from ansible.plugins.action import ActionBase

from ansible_collections.mec.migration.plugins.module_utils.migration_run import input_problems
from ansible_collections.mec.migration.plugins.modules.relocation_gate import check_arguments

SPEC = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "migration", "meta", "argument_specs.yml")


def role_options(path=SPEC):
    """The options of the role's entry point main, as meta/argument_specs.yml declares them."""
    with open(path) as fh:
        return yaml.safe_load(fh)["argument_specs"]["main"]["options"]


def gate_argument_problems(gate):
    """What mec.migration.relocation_gate's check_only finds in migration_relocation_gate (its regular expressions
    compile, every path is absolute and its folder exists here, the timeout), checked in this process."""
    try:
        timeout = float(gate.get("timeout", 300))
    except (TypeError, ValueError):
        return ["timeout=%s must be a number of seconds" % gate.get("timeout")]
    params = {"path": os.path.expanduser(str(gate["path"])), "open": gate["open"], "abandon": gate.get("abandon"),
              "watch": [dict(w, path=os.path.expanduser(str(w["path"]))) for w in gate.get("watch") or []],
              "timeout": timeout, "interval": 0.05}
    return check_arguments(params)[1]


def fresh_run_id(now=None):
    """The time and 32 random bits, e.g. 20261126T130330Z-3f9a1c2e."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return "%s-%08x" % (now.strftime("%Y%m%dT%H%M%SZ"), secrets.randbits(32))


class ActionModule(ActionBase):
    TRANSFERS_ARGS = frozenset()
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        values = {}
        for name in role_options():
            if name in task_vars:
                values[name] = self._templar.template(task_vars[name])
        strategies = self._templar.template(task_vars.get("migration_strategies", {}))
        transfers = self._templar.template(task_vars.get("migration_transfers", []))
        aliases = self._templar.template(task_vars.get("migration_transfer_aliases", {}))
        problems = input_problems(values, strategies, transfers, aliases) or self._inventory_problems(values, task_vars)
        gate = values.get("migration_relocation_gate") or {}
        if not problems and gate:
            bad = gate_argument_problems(gate)
            if bad:
                result.update(failed=True, problems=bad,
                              msg="Bad relocation gate, nothing was changed: %s." % "; ".join(bad))
                return result
        if problems:
            result.update(failed=True, problems=problems,
                          msg="Bad input, nothing was changed: %s" % " ".join(problems))
            return result
        run_id = values.get("migration_run_id")
        started_at = datetime.datetime.now(datetime.timezone.utc)
        facts = {
            # a given run id is refused later if it was used before
            "migration_run_id": str(run_id) if run_id is not None else fresh_run_id(started_at),
            "migration_started_at": started_at.timestamp(),
            # the relocation stream's secret: 32 random bytes, only for the two hosts
            "migration_stream_secret": secrets.token_hex(32),
            # the controller's name, kept in the hosts' journals (who ran the run)
            "migration_controller": socket.gethostname(),
        }
        transfer = values.get("migration_transfer")
        if transfer in aliases:
            result["warnings"] = ["DEPRECATION: transfer=%s is deprecated: it is called %s now (an authenticated TCP "
                                  "stream); %s is still accepted as an alias."
                                  % (transfer, aliases[transfer], transfer)]
        result.update(changed=False, ansible_facts=facts, run_id=facts["migration_run_id"],
                      msg="input checked: run %s" % facts["migration_run_id"])
        # the result carries the stream's secret: never shown, not even with -v
        result["_ansible_no_log"] = True
        return result

    def _inventory_problems(self, values, task_vars):
        """The hop's two hosts: one in group source and one in group target (or migration_source_host and
        migration_target_host), different hosts at different addresses."""
        groups = task_vars.get("groups") or {}
        hostvars = task_vars.get("hostvars") or {}
        source = values.get("migration_source_host") or (groups.get("source") or [None])[0]
        target = values.get("migration_target_host") or (groups.get("target") or [None])[0]
        good = ((values.get("migration_source_host") or len(groups.get("source") or []) == 1)
                and (values.get("migration_target_host") or len(groups.get("target") or []) == 1)
                and source != target)
        if good:
            def address(host):
                return self._templar.template(hostvars[host].get("ansible_host", host)) if host in hostvars else host
            good = address(source) != address(target)
        if good:
            return []
        return ["The inventory must have exactly one host in group source and one in group target, and they must be "
                "different hosts (source=%s, target=%s), or migration_source_host and migration_target_host must name "
                "two different hosts of it." % (list(groups.get("source") or []), list(groups.get("target") or []))]
