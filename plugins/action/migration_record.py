# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""Action plugin mec.migration.migration_record: the run's record built, checked and written in the controller's
process (no module process: it saved ~0.7 s per run); the options, the documentation and the one-line summary are
the module's (plugins/modules/migration_record.py), the record's schema plugins/module_utils/records.py."""
from __future__ import annotations

import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.mec.migration.plugins.module_utils.records import (
    build_record, problems, record_name, write_record)
from ansible_collections.mec.migration.plugins.modules.migration_record import ARGUMENT_SPEC, summary

display = Display()


def _plain(value):
    """The value as plain JSON types (the engine's templated values may be str/dict/list subclasses)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        validation = ArgumentSpecValidator(ARGUMENT_SPEC).validate(_plain(dict(self._task.args)))
        if validation.error_messages:
            result.update(failed=True, msg="migration_record: %s" % "; ".join(validation.error_messages))
            return result
        p = validation.validated_parameters
        record = build_record(p)
        bad = problems(record)
        if bad:
            result.update(failed=True, record=record,
                          msg="The record of run %s does not fit %s (a bug in the record's inputs; nothing was "
                              "written): %s" % (p["run_id"], record["schema"], "; ".join(bad)))
            return result
        path = os.path.join(p["results_dir"], record_name(record))
        if not self._task.check_mode:
            try:
                path = write_record(p["results_dir"], record)
            except OSError as exc:
                result.update(failed=True, record=record, path=path,
                              msg="Cannot write the record %s on the controller: %s. Set results_dir to a directory "
                                  "you can write (-e results_dir=...)." % (path, exc))
                return result
        msg = summary(record, path)
        display.display("%s %s" % (p["app"], msg))
        result.update(changed=True, record=record, path=path, msg=msg)
        return result
