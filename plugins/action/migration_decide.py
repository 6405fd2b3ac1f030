# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Action plugin mec.migration.migration_decide: finish, roll back or leave undecided a run that stopped after its
preflight, in the controller's process (plugins/module_utils/migration_run.py's end_action); documentation in
plugins/modules/migration_decide.py."""
from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.mec.migration.plugins.module_utils.migration_run import (
    already_migrated, end_action, host_problems, preflight_problems, refusal, unfinished_runs)

display = Display()

ARGUMENT_SPEC = {
    "step": {"type": "str", "choices": ["read", "preflight", "end"], "default": "end"},
    "source_host": {"type": "str"},
    "target_host": {"type": "str"},
    "source": {"type": "raw"},
    "target": {"type": "raw"},
    "source_relocation": {"type": "raw"},
    "target_relocation": {"type": "raw"},
    "target_journaled": {"type": "bool", "default": True},
    "app": {"type": "str"},
    "state_root": {"type": "str", "default": "/var/lib/mec-migration"},
    "recover": {"type": "bool", "default": False},
    "fact": {"type": "str", "default": "migration_end_action"},
    "registered": {"type": "str"},
}


def registered_results(hostvars, hosts, name):
    """The variable ``name`` that each of ``hosts`` registered, read as it was stored (HostVars.raw_get): a module's
    result is data, never a template, and passing it as a templated argument instead walked all of it through the
    templating engine (container_info's result grows with the app's journals: ~0.2 s of CPU a run on a lab app with
    a few hundred past runs). None for a host that has not registered it."""
    results = []
    for host in hosts:
        try:
            results.append(hostvars.raw_get(host).get(name))
        except KeyError:
            results.append(None)
    return results


def host_state(result):
    """{running, unreachable, failed} of a container_info result (None: never asked)."""
    if not isinstance(result, dict):
        return {"unreachable": True}
    container = result.get("container") or {}
    return {"running": bool(container.get("running")), "unreachable": bool(result.get("unreachable")),
            "failed": bool(result.get("failed"))}


def source_relocated(result):
    """The source's half of the relocation went through (it reported when it stopped the app)."""
    return (isinstance(result, dict) and not result.get("failed") and not result.get("skipped")
            and not result.get("unreachable") and result.get("stopped_at") is not None)


def half_unknown(result):
    """The target's half of the relocation never reported (not run, or its host unreachable): it may have started
    the app. A half that reported its failure did not leave it running."""
    return not isinstance(result, dict) or not result or bool(result.get("unreachable"))


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(self._task.args)
        if validation.error_messages:
            result.update(failed=True, msg="migration_decide: %s" % "; ".join(validation.error_messages))
            return result
        args = validation.validated_parameters
        if args["registered"]:
            if args["step"] not in ("read", "preflight") or args["source"] is not None or args["target"] is not None:
                result.update(failed=True, msg="migration_decide: registered goes with step read or preflight, "
                                               "instead of source and target")
                return result
            args["source"], args["target"] = registered_results(
                (task_vars or {})["hostvars"], (args["source_host"], args["target_host"]), args["registered"])
        if args["step"] == "read":
            return self._read(result, args)
        if args["step"] == "preflight":
            problems = preflight_problems((args["source_host"], args["source"]), (args["target_host"], args["target"]))
            if problems:
                result.update(failed=True, msg=" ".join(problems))
            else:
                result.update(changed=False, msg="both hosts passed the preflight")
            return result
        action = end_action(host_state(args["source"]), host_state(args["target"]),
                            relocated=source_relocated(args["source_relocation"]),
                            target_half_unknown=half_unknown(args["target_relocation"]),
                            target_journaled=args["target_journaled"])
        result.update(changed=False, action=action, ansible_facts={args["fact"]: action},
                      msg="%s: %s" % (args["fact"], action))
        return result

    def _read(self, result, args):
        """After both hosts were read (the container, the app's lock and journals): a host that could not be read
        fails the run; a run that holds the app or left it unfinished refuses it (unless recover); an app that runs
        on the target and not on the source is already migrated (fact migration_already_migrated)."""
        reads = [(args["source_host"], args["source"]), (args["target_host"], args["target"])]
        problems = host_problems(reads)
        if problems:
            result.update(failed=True, msg=" ".join(problems))
            return result
        unfinished = unfinished_runs(reads)
        if unfinished and not args["recover"]:
            result.update(failed=True, unfinished=unfinished,
                          msg=refusal(args["app"], unfinished, reads, args["state_root"]))
            return result
        done = not unfinished and already_migrated(args["source"], args["target"])
        if done:
            display.display("%s already runs on the target %s and not on the source %s: already migrated, nothing "
                            "to do." % (args["app"], args["target_host"], args["source_host"]))
        result.update(changed=False, unfinished=unfinished, already_migrated=done,
                      ansible_facts={"migration_unfinished": unfinished, "migration_already_migrated": done})
        return result
