# A callback for tests/benchmarks/migrate_overhead.py (not shipped in the collection): it counts, per playbook run,
# the tasks the play evaluated (every task start, skipped ones included) and the remote round trips (a task that ran
# a module on a managed host through its connection: counted once per task, as the hosts run it at once, and once
# per loop item, as the items run one after the other), and writes them as JSON to $MEC_TASK_COUNT_FILE.
# A task is not a remote round trip when every host skipped it, when it ran on the controller (delegated to
# localhost, or a local connection), or when its action never leaves the controller (CONTROLLER_ACTIONS).
import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: mec_task_count
type: aggregate
short_description: counts the tasks evaluated and the remote round trips of a playbook run
description:
  - Writes {tasks, remote_round_trips, per_task} as JSON to the file named by MEC_TASK_COUNT_FILE.
options: {}
"""

# actions that run in the controller's process only (no module is sent to a host)
CONTROLLER_ACTIONS = {
    "set_fact", "debug", "assert", "fail", "meta", "include_tasks", "import_tasks", "include_role", "import_role",
    "include_vars", "validate_argument_spec", "pause", "add_host", "group_by", "set_stats",
    "migration_input", "migration_decide", "migration_record",
}


def _short(action):
    return (action or "").rsplit(".", 1)[-1]


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "mec_task_count"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tasks = []

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.tasks.append({"name": task.get_name(), "action": _short(task.action), "remote": 0, "hosts": {}})

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _remote_items(self, result, skipped=False):
        if skipped or not self.tasks:
            return 0
        task = result._task
        if _short(task.action) in CONTROLLER_ACTIONS:
            return 0
        res = result._result
        items = res.get("results") if isinstance(res.get("results"), list) and task.loop is not None else None
        if items is not None:
            return sum(1 for r in items if isinstance(r, dict) and not r.get("skipped")
                       and not self._local(r.get("_ansible_delegated_vars"), result))
        return 0 if self._local(res.get("_ansible_delegated_vars"), result) else 1

    @staticmethod
    def _local(delegated, result):
        if delegated:
            return (delegated.get("ansible_delegated_host") in ("localhost", "127.0.0.1")
                    or delegated.get("ansible_connection") == "local")
        return result._host.get_vars().get("ansible_connection") == "local" or result._host.name == "localhost"

    def _record(self, result, status, skipped=False):
        if not self.tasks:
            return
        entry = self.tasks[-1]
        entry["hosts"][result._host.name] = status
        entry["remote"] = max(entry["remote"], self._remote_items(result, skipped))

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped", skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("MEC_TASK_COUNT_FILE")
        if not path:
            return
        with open(path, "w") as fh:
            json.dump({"tasks": len(self.tasks),
                       "skipped": sum(1 for t in self.tasks if t["hosts"] and set(t["hosts"].values()) == {"skipped"}),
                       "remote_round_trips": sum(t["remote"] for t in self.tasks),
                       "per_task": self.tasks}, fh, indent=1)
