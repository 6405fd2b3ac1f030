# -*- coding: utf-8 -*-
# Copyright: mec.migration developers
# Apache License 2.0
"""The linear strategy run by Mitogen for Ansible when the ``mitogen`` package is installed, shipped in the
collection so that it needs no ANSIBLE_STRATEGY_PLUGINS, no ansible.cfg and works from an installed collection
with any inventory; without ``mitogen`` it is ansible-core's linear strategy, with a warning that says so."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mitogen_linear
short_description: ansible-core's linear strategy, run by Mitogen for Ansible when it is installed
description:
  - Runs the play like ansible-core's C(linear) strategy (every host runs each task before the next task starts),
    with the C(mitogen) package's connection layer (Mitogen for Ansible, C(mitogen_linear)) when that package is
    installed on the controller, the same as Mitogen's own C(mitogen_linear) strategy but found by its FQCN
    C(mec.migration.mitogen_linear), so it needs no C(ANSIBLE_STRATEGY_PLUGINS) setting and no C(ansible.cfg).
  - Mitogen keeps one Python interpreter per host for the whole play and sends each module to it, instead of one
    SSH command and one new Python process (with the module's AnsiballZ payload) per task.
  - When C(mitogen) cannot be imported (not installed, or an Ansible release it does not support) the play runs
    with ansible-core's C(linear) strategy and a warning names the cause and what to install; nothing else changes.
  - The migration play (C(mec.migration.migrate), C(playbooks/migrate.yml)) uses it by default; C(-e
    migration_play_strategy=linear) turns Mitogen off for a run.
author: mec.migration developers (@mec-migration)
notes:
  - Install Mitogen on the controller with C(pip install mitogen) (C(scripts/bootstrap.sh) does, from
    C(requirements.txt)); the managed hosts need nothing but Python.
"""

# DOCUMENTATION first, the layout ansible-doc and ansible-test expect
import ctypes  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402

from ansible.executor.process import worker  # noqa: E402
from ansible.plugins.strategy.linear import StrategyModule as LinearStrategyModule  # noqa: E402
from ansible.utils.display import Display  # noqa: E402

display = Display()

try:
    import ansible_mitogen.loaders  # noqa: F401 - checks that Mitogen supports this ansible-core release
    import ansible_mitogen.strategy
except Exception as e:  # ImportError, or Mitogen's AnsibleError for an ansible-core release it does not support
    MITOGEN_ERROR = "%s: %s" % (type(e).__name__, e)
    StrategyMixin = object
else:
    MITOGEN_ERROR = None
    StrategyMixin = ansible_mitogen.strategy.StrategyMixin


def _workers_die_with(parent):
    """Makes each worker forked from now on die with ``parent`` (this ansible-playbook process): ansible-core's
    workers start their own session (WorkerProcess._detach: os.setsid), so a kill of ansible-playbook's process
    group does not reach them, and a worker waiting on Mitogen's connection process for a task's result would wait
    forever once ansible-playbook was killed (SIGKILL: seen in the fault campaign's dead-controller runs). Linux
    prctl(PR_SET_PDEATHSIG); elsewhere nothing changes. Returns the function that undoes it."""
    original = getattr(worker.WorkerProcess, "_detach", None)
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None
    if original is None or prctl is None:  # an ansible-core without _detach (no own session), or not Linux
        return lambda: None

    def _detach(self):
        original(self)
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    worker.WorkerProcess._detach = _detach

    def undo():
        worker.WorkerProcess._detach = original
    return undo


def _lighter_connection_process():
    """Cuts CPU that Mitogen's connection process spends anew in every ansible-playbook run, before the play's first
    module can start on a host (measured on the lab: ~0.55 s of compiling and ~0.3 s of minifying per m2 run of A2,
    docs/overhead.md):

    - it compiles every module_utils file once *per module* to find what the module imports
      (``ansible_mitogen.module_finder``; an m2 run compiles 368 files for 54 distinct ones) and once more to find
      what a requested module imports (``mitogen.master``): each distinct source is now compiled once a process;
    - it strips comments and docstrings from its own modules before sending them to a host (``mitogen.minify``),
      which saves a few kilobytes on the wire: they are now sent as they are (Mitogen's child contexts already send
      ``mitogen.core`` unminified to their own children).

    Only the calls of these two Mitogen modules are replaced (their module-level name ``compile``, and
    ``minimize_source``); a code object is immutable and compiling the same source with the same arguments gives
    the same result, so the scans find the same imports. Returns the function that undoes it."""
    import mitogen.core
    import mitogen.master
    import mitogen.minify
    import ansible_mitogen.module_finder

    compiled = {}

    def compile_once(source, filename, mode, *args, **kwargs):
        key = (source, filename, mode, args, tuple(sorted(kwargs.items())))
        code = compiled.get(key)
        if code is None:
            code = compiled[key] = compile(source, filename, mode, *args, **kwargs)
        return code

    originals = [(ansible_mitogen.module_finder, "compile", getattr(ansible_mitogen.module_finder, "compile", None)),
                 (mitogen.master, "compile", getattr(mitogen.master, "compile", None)),
                 (mitogen.minify, "minimize_source", mitogen.minify.minimize_source)]
    ansible_mitogen.module_finder.compile = compile_once
    mitogen.master.compile = compile_once
    mitogen.minify.minimize_source = mitogen.core.to_text  # the same contract (text in, text out), nothing stripped

    def undo():
        for module, name, original in originals:
            if original is None:
                delattr(module, name)  # the builtin again
            else:
                setattr(module, name, original)
    return undo


if MITOGEN_ERROR is None:
    class StrategyModule(StrategyMixin, LinearStrategyModule):
        """Mitogen's mitogen_linear: its StrategyMixin over ansible-core's linear strategy."""

        def run(self, iterator, play_context, result=0):
            display.vv("mec.migration.mitogen_linear: the play runs with Mitogen for Ansible")
            undo = _workers_die_with(os.getpid())
            undo_lighter = _lighter_connection_process()
            try:
                return super().run(iterator, play_context)
            finally:
                undo_lighter()
                undo()
else:
    class StrategyModule(LinearStrategyModule):
        """Mitogen could not be imported: ansible-core's linear strategy, with a warning."""

        def run(self, iterator, play_context, result=0):
            display.warning(
                "mec.migration.mitogen_linear: Mitogen for Ansible could not be loaded (%s), so this play runs with "
                "ansible-core's linear strategy (slower: one SSH command and one Python start per task). Install it "
                "on the controller with `pip install mitogen` (scripts/bootstrap.sh does), or set "
                "-e migration_play_strategy=linear to run linear without this warning." % MITOGEN_ERROR)
            return super().run(iterator, play_context)
